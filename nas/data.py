"""The images: strict IDX reading, where to find the files, the train/validation/test splits.

Everything lives in memory as uint8 tensors on the training device (Fashion-MNIST is
47 MB), so an epoch never touches the disk or a DataLoader. The test split is loaded
only when a caller asks for it (`nas train --test`, export, evaluate).
"""

from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nas.config import DataConfig
from nas.errors import NasError, UsageError

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "nas" / "datasets"

FILES = {  # split -> (images file, labels file), the official names
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
EXPECTED_COUNT = {"train": 60_000, "test": 10_000}

CLASSES = {
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
    "mnist": [str(i) for i in range(10)],
    "kmnist": ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"],
}
# Fashion-MNIST's training-set pixel statistics (0-255), built into every model (`nas data` prints them)
PIXEL_MEAN, PIXEL_STD = 72.94, 90.02
TORCHVISION_CLASS = {"fashion-mnist": "FashionMNIST", "mnist": "MNIST", "kmnist": "KMNIST"}


@dataclass
class Split:
    images: torch.Tensor  # uint8 [N, 1, 28, 28]
    labels: torch.Tensor  # int64 [N]

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class Splits:
    train: Split
    val: Split | None  # None in final training (train + validation merged)
    test: Split | None  # None unless asked for: nothing that selects may read it
    classes: list[str]
    files: dict[str, str]  # file name -> sha256, for provenance


# ---------------------------------------------------------------- IDX reading

def read_idx(path: Path, ndim: int, count: int | None = None, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Read one IDX file (gzipped or not) and check magic, dimensions, counts and length."""
    fix = "re-install it (apt-get install --reinstall dataset-fashion-mnist) or point --data-dir at good files"
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise NasError(f"cannot read {path}: {e}; {fix}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise NasError(f"{path} is not an IDX file (bad magic number); {fix}")
    if raw[2] != 0x08:
        raise NasError(f"{path}: IDX data type 0x{raw[2]:02x} is not unsigned bytes (0x08); {fix}")
    if raw[3] != ndim:
        raise NasError(f"{path}: has {raw[3]} dimensions, expected {ndim}; {fix}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise NasError(f"{path} is truncated inside its header; {fix}")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if count is not None and dims[0] != count:
        raise NasError(f"{path}: holds {dims[0]} items, expected {count}; {fix}")
    if shape is not None and dims[1:] != shape:
        raise NasError(f"{path}: items are {dims[1:]}, expected {shape}; {fix}")
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "longer than its header says"
        raise NasError(f"{path} is {what} ({len(raw)} bytes, expected {expected}); {fix}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def find_file(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def data_dir_for(config: DataConfig) -> Path:
    """Lookup order: --data-dir / NAS_DATA_DIR, Debian's package, torchvision's download."""
    explicit = config.data_dir or os.environ.get("NAS_DATA_DIR")
    if explicit:
        folder = Path(explicit)
        if not folder.is_dir():
            raise UsageError(f"--data-dir {folder} is not a folder; give the folder holding the four IDX files")
        return folder
    if config.dataset == "fashion-mnist" and find_file(DEBIAN_DIR, FILES["train"][0]):
        return DEBIAN_DIR
    if config.dataset not in TORCHVISION_CLASS:
        raise UsageError(f"unknown dataset {config.dataset!r}; choose one of {', '.join(TORCHVISION_CLASS)}")
    return _download(config.dataset)


def _download(dataset: str) -> Path:
    import torchvision

    root = CACHE_DIR / dataset
    raw = root / TORCHVISION_CLASS[dataset] / "raw"
    if find_file(raw, FILES["train"][0]):
        return raw
    hint = ("install Debian's package (apt-get install dataset-fashion-mnist) or " if dataset == "fashion-mnist" else "")
    try:
        getattr(torchvision.datasets, TORCHVISION_CLASS[dataset])(str(root), train=True, download=True)
    except Exception as e:  # no network, mirror down, ...
        raise NasError(f"{dataset} files not found and the download failed ({type(e).__name__}); "
                       f"{hint}pass --data-dir with the four IDX files") from None
    return raw


def read_split(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
    images_name, labels_name = FILES[split]
    paths = []
    for name in (images_name, labels_name):
        path = find_file(folder, name)
        if path is None:
            raise NasError(f"missing {name}(.gz) in {folder}; install Debian's package "
                           f"(apt-get install dataset-fashion-mnist) or pass --data-dir with the four IDX files")
        paths.append(path)
    n = EXPECTED_COUNT[split]
    images = read_idx(paths[0], 3, n, (28, 28))
    labels = read_idx(paths[1], 1, n)
    if labels.max() > 9:
        raise NasError(f"{paths[1]}: label {labels.max()} is out of range 0-9; the file is corrupt")
    checksums = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}
    return images, labels, checksums


# ---------------------------------------------------------------- splits

def stratified_split(labels: np.ndarray, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (rest, held_out) with `size` held out, each class in proportion. Seeded, sorted."""
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    held = []
    for c in classes:
        idx = np.flatnonzero(labels == c)
        take = round(size * len(idx) / len(labels))
        held.append(rng.permutation(idx)[:take])
    held = np.concatenate(held)
    # rounding can miss by a few: top up or trim at random so the size is exact
    if len(held) != size:
        rest = np.setdiff1d(np.arange(len(labels)), held)
        held = (np.concatenate([held, rng.permutation(rest)[: size - len(held)]])
                if len(held) < size else rng.permutation(held)[:size])
    held = np.sort(held)
    rest = np.setdiff1d(np.arange(len(labels)), held)
    return rest, held


def _to_split(images: np.ndarray, labels: np.ndarray, device: torch.device) -> Split:
    return Split(torch.from_numpy(images.copy()).unsqueeze(1).to(device),
                 torch.from_numpy(labels.astype(np.int64)).to(device))


def load(config: DataConfig = DataConfig(), device: str | torch.device = "cpu", with_test: bool = False,
         final: bool = False) -> Splits:
    """The train and validation splits (and the test split only when `with_test`).

    final: train on all training images (train + validation, as a final model does once every
    choice is made); `val` is then None. `config.subset` still applies (tests train on a sliver)."""
    if not 0 < config.val_size < EXPECTED_COUNT["train"]:
        raise UsageError(f"--val-size {config.val_size} must be between 1 and {EXPECTED_COUNT['train'] - 1}")
    if not 0 < config.subset <= 1:
        raise UsageError(f"--subset {config.subset} must be a fraction in (0, 1]")
    folder = data_dir_for(config)
    images, labels, files = read_split(folder, "train")
    train_idx, val_idx = stratified_split(labels, config.val_size, config.split_seed)
    if final:
        train_idx = np.sort(np.concatenate([train_idx, val_idx]))
    if config.subset < 1:
        keep = round(config.subset * len(train_idx))
        _, chosen = stratified_split(labels[train_idx], keep, config.split_seed + 1)
        train_idx = train_idx[chosen]
    device = torch.device(device)
    test = None
    if with_test:
        test_images, test_labels, test_files = read_split(folder, "test")
        files.update(test_files)
        test = _to_split(test_images, test_labels, device)
    return Splits(train=_to_split(images[train_idx], labels[train_idx], device),
                  val=None if final else _to_split(images[val_idx], labels[val_idx], device),
                  test=test, classes=CLASSES[config.dataset], files=files)


def load_test(config: DataConfig = DataConfig()) -> tuple[Split, dict[str, str]]:
    """Only the test split (and its files' checksums): for checking an exported model."""
    images, labels, files = read_split(data_dir_for(config), "test")
    return _to_split(images, labels, torch.device("cpu")), files
