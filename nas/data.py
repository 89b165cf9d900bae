"""The images: strict IDX reading of the built-in sets, own images (nas/sources.py), the splits.

Everything lives in memory as uint8 tensors on the training device (Fashion-MNIST is
47 MB), so an epoch never touches the disk or a DataLoader. The test split is loaded
only when a caller asks for it (`nas train --test`, export, evaluate).
"""

from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from nas.config import CACHE_DIR, CLASSES, DataConfig, Inputs, builtin_inputs
from nas.errors import NasError, UsageError

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")

FILES = {  # split -> (images file, labels file), the official names
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
EXPECTED_COUNT = {"train": 60_000, "test": 10_000}

TORCHVISION_CLASS = {"fashion-mnist": "FashionMNIST", "mnist": "MNIST", "kmnist": "KMNIST"}


@dataclass
class Split:
    images: torch.Tensor  # uint8 [N, C, S, S]
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
    inputs: Inputs = field(default_factory=builtin_inputs)
    notes: list[str] = field(default_factory=list)  # what was converted or held out, to tell the user


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
    images = images[:, None] if images.ndim == 3 else images
    return Split(torch.from_numpy(np.array(images)).to(device),  # a copy: a memory-mapped cache is read-only
                 torch.from_numpy(labels.astype(np.int64)).to(device))


def is_builtin(dataset: str) -> bool:
    return dataset in CLASSES


def load(config: DataConfig = DataConfig(), device: str | torch.device = "cpu", with_test: bool = False,
         final: bool = False) -> Splits:
    """The train and validation splits (and the test split only when `with_test`).

    final: train on all training images (train + validation, as a final model does once every
    choice is made); `val` is then None. `config.subset` still applies (tests train on a sliver)."""
    if not 0 < config.subset <= 1:
        raise UsageError(f"--subset {config.subset} must be a fraction in (0, 1]")
    pool = _builtin_pool(config, with_test) if is_builtin(config.dataset) else _own_pool(config)
    images, labels = pool["images"], pool["labels"]
    val_size = round(len(labels) / 6) if config.val_size is None else config.val_size  # 10,000 of 60,000
    if "val_images" in pool:  # the data named its own validation split
        train_idx, val_idx = np.arange(len(labels)), None
    elif not 0 < val_size < len(labels):
        raise UsageError(f"--val-size {val_size} must be between 1 and {len(labels) - 1}")
    else:
        train_idx, val_idx = stratified_split(labels, val_size, config.split_seed)
    val = (_to_split(pool["val_images"], pool["val_labels"], device) if val_idx is None
           else _to_split(images[val_idx], labels[val_idx], device))
    if final and val_idx is not None:
        train_idx, val = np.sort(np.concatenate([train_idx, val_idx])), None
    elif final:  # the data's own validation folder joins the training images
        images = np.concatenate([images, pool["val_images"]])
        labels = np.concatenate([labels, pool["val_labels"]])
        train_idx, val = np.arange(len(labels)), None
    inputs = pool["inputs"] if is_builtin(config.dataset) else _measured(pool["inputs"], images[train_idx])
    if config.subset < 1:
        keep = round(config.subset * len(train_idx))
        _, chosen = stratified_split(labels[train_idx], keep, config.split_seed + 1)
        train_idx = train_idx[chosen]
    device = torch.device(device)
    train = _to_split(images[train_idx], labels[train_idx], device)
    test = _to_split(pool["test_images"], pool["test_labels"], device) if with_test else None
    return Splits(train=train, val=val, test=test, classes=list(inputs.classes), files=pool["files"],
                  inputs=inputs, notes=pool["notes"])


def _builtin_pool(config: DataConfig, with_test: bool) -> dict:
    folder = data_dir_for(config)
    images, labels, files = read_split(folder, "train")
    pool = {"images": images, "labels": labels, "files": files, "inputs": builtin_inputs(config.dataset), "notes": []}
    if with_test:
        pool["test_images"], pool["test_labels"], test_files = read_split(folder, "test")
        files.update(test_files)
    return pool


def _own_pool(config: DataConfig) -> dict:
    """Own images: their test split, or one held out (stratified, seeded) from what they give."""
    from nas import sources

    source = sources.read(config.dataset, config.image_size, config.skip_bad)
    images, labels, notes = source.images["train"], source.labels["train"], list(source.notes)
    if "test" in source.images:
        test_images, test_labels = source.images["test"], source.labels["test"]
    else:
        rest, held = stratified_split(labels, round(len(labels) / 7), config.split_seed + 2)
        test_images, test_labels, images, labels = images[held], labels[held], images[rest], labels[rest]
        notes.append(f"held out {len(held)} test images (1/7, stratified, seeded): nothing reads them before export")
    pool = {"images": images, "labels": labels, "test_images": test_images, "test_labels": test_labels,
            "files": {Path(config.dataset).name: source.sha256}, "notes": notes,
            "inputs": Inputs(source.channels, source.image_size, tuple(source.classes), (), ())}
    if "val" in source.images:
        pool["val_images"], pool["val_labels"] = source.images["val"], source.labels["val"]
    return pool


def _measured(inputs: Inputs, images: np.ndarray) -> Inputs:
    """Per-channel mean and std (0-255) of the whole training split, before any --subset."""
    pixels = images.transpose(1, 0, 2, 3).reshape(inputs.channels, -1).astype(np.float64)
    return Inputs(inputs.channels, inputs.size, inputs.classes, tuple(round(float(m), 3) for m in pixels.mean(1)),
                  tuple(round(max(float(s), 1e-3), 3) for s in pixels.std(1)))


def record(config: DataConfig, splits: Splits) -> dict:
    """Which data a study ran on, stored in its settings: a re-run on other data is refused."""
    return {"files_sha256": splits.files, "inputs": splits.inputs.to_dict(),
            "val_images": len(splits.val) if splits.val is not None else None}


def load_test(config: DataConfig = DataConfig()) -> tuple[Split, dict[str, str]]:
    """Only the test split (and its files' checksums): for checking an exported model."""
    if is_builtin(config.dataset):
        images, labels, files = read_split(data_dir_for(config), "test")
        return _to_split(images, labels, torch.device("cpu")), files
    pool = _own_pool(config)
    return _to_split(pool["test_images"], pool["test_labels"], torch.device("cpu")), pool["files"]
