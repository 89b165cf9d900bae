import gzip
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from nas import data
from nas.config import DataConfig

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def wait_for(condition, what: str, seconds: float = 180):
    """condition()'s first true value, polled every 0.1 s; fails naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.1)
    raise AssertionError(f"waited {seconds:g} s for {what}")


def first_running(storage, study_name, caught, seconds=180):
    """(study, trial): the first RUNNING trial of the study for which caught(trial) holds, polled."""
    import optuna
    from optuna.trial import TrialState

    def found():
        try:
            study = optuna.load_study(study_name=study_name, storage=storage)
        except KeyError:  # not created yet
            return None
        victim = next((t for t in study.trials if t.state == TrialState.RUNNING and caught(t)), None)
        return victim and (study, victim)

    return wait_for(found, f"a running trial of {study_name} to catch", seconds)


def write_idx(path: Path, array: np.ndarray, gz: bool = False, magic: bytes | None = None) -> Path:
    """Write an IDX file the way the official ones are laid out (big-endian dims, ubyte data)."""
    header = (magic or bytes([0, 0, 0x08, array.ndim])) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def fake_dataset(folder: Path, n_train: int = 60_000, n_test: int = 10_000, gz: bool = True) -> Path:
    """Four IDX files of noise with the official names and sizes (labels cycle through 0-9)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for split, n in (("train", n_train), ("test", n_test)):
        images_name, labels_name = data.FILES[split]
        write_idx(folder / (images_name + suffix), rng.integers(0, 256, (n, 28, 28)), gz)
        write_idx(folder / (labels_name + suffix), np.arange(n) % 10, gz)
    return folder


@pytest.fixture(scope="session")
def fashion():
    """The real Fashion-MNIST splits (Debian's dataset-fashion-mnist, installed by `make test`)."""
    return data.load(DataConfig())


@pytest.fixture(scope="session")
def small(fashion):
    """A few hundred real images: 512 to train on, 256 to validate on."""
    g = torch.Generator().manual_seed(0)
    tr = torch.randperm(len(fashion.train), generator=g)[:512]
    va = torch.randperm(len(fashion.val), generator=g)[:256]
    return data.Splits(train=data.Split(fashion.train.images[tr], fashion.train.labels[tr]),
                       val=data.Split(fashion.val.images[va], fashion.val.labels[va]),
                       test=None, classes=fashion.classes, files=fashion.files)


@pytest.fixture
def nas_cli():
    """Run the real `nas` command in a subprocess; returns CompletedProcess."""
    import subprocess

    def run(*args, **kwargs):
        return subprocess.run([sys.executable, "-m", "nas", *args], capture_output=True, text=True, **kwargs)

    return run


TINY_SPACE = str(Path(__file__).parent / "spaces" / "tiny.yaml")


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory):
    """A real search into SQLite: 2 trained trials of the tiny space and several infeasible ones (over 1.2k
    params). Returns (folder, storage URL, study name). Tests that change it copy the .db file first."""
    import subprocess

    folder = tmp_path_factory.mktemp("study")
    storage = f"sqlite:///{folder}/t.db"
    out = subprocess.run([sys.executable, "-m", "nas", "search", "--space", TINY_SPACE, "--study", "t", "--storage",
                          storage, "--trials", "2", "--epochs", "1", "--subset", "0.01", "--val-size", "500", "--budgets", "none",
                          "--max-params", "1.2k", "--seed", "1", "--jobs", "1"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return folder, storage, "t"
