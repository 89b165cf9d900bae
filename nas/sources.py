"""Your own images: a folder of class folders, a CSV of `path,label`, or an NPZ -> one uint8 array.

Every image is decoded once, converted to one colour mode (grey when all are grey, else RGB) and
resized to one square side, then cached as .npy files under ~/.cache/nas/images/<key>/, keyed by the
files' names, sizes and modification times, and opened memory-mapped: a second run starts in seconds.
The content sha256 (names and bytes) is kept for provenance.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nas.errors import UsageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
MAX_DEFAULT_SIZE = 64  # pixels: the default side is the images' median, at most this (CPU training cost)
CACHE_VERSION = 1  # bump when the decoding changes, so old caches are not read


@dataclass
class Source:
    """Decoded images by split: "train" always, "val" and "test" when the data names them."""

    images: dict[str, np.ndarray]  # split -> uint8 [N, C, S, S]
    labels: dict[str, np.ndarray]  # split -> int64 [N]
    classes: list[str]
    sha256: str  # of the files' names and contents
    notes: list[str] = field(default_factory=list)  # conversions and left-out files, to tell the user

    @property
    def channels(self) -> int:
        return self.images["train"].shape[1]

    @property
    def image_size(self) -> int:
        return self.images["train"].shape[2]


def cache_root() -> Path:
    from nas.config import CACHE_DIR

    return CACHE_DIR.parent / "images"


# ---------------------------------------------------------------- listing the files

def list_folder(root: Path) -> tuple[dict[str, list], list[str]]:
    """{split: [(path, class index)]}, class names. `root/<class>/...`, or `root/train|val|test/<class>/...`."""
    split_dirs = {s: root / s for s in ("train", "val", "test") if (root / s).is_dir()}
    if "train" not in split_dirs:
        split_dirs = {"train": root}
    elif set(split_dirs) == {"train"} and not _class_dirs(root / "train"):
        split_dirs = {"train": root}
    classes = [d.name for d in _class_dirs(split_dirs["train"])]
    if not classes:
        raise UsageError(f"--data {root}: no class folders; put each class's images in a folder of its own "
                         f"(cats/1.png, dogs/2.png), or give a CSV or NPZ")
    listing = {}
    for split, folder in split_dirs.items():
        extra = [d.name for d in _class_dirs(folder) if d.name not in classes]
        if extra:
            raise UsageError(f"--data {folder}: class folder {extra[0]!r} is not among train's classes "
                             f"({', '.join(classes)}); rename it or add it to train/")
        listing[split] = [(p, i) for i, name in enumerate(classes) for p in _files(folder / name)]
    for i, name in enumerate(classes):
        if not any(label == i for _, label in listing["train"]):
            raise UsageError(f"--data {split_dirs['train'] / name}: the class folder {name!r} holds no files; "
                             f"add images or remove the folder")
    return listing, classes


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


def _files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def list_csv(path: Path) -> tuple[dict[str, list], list[str]]:
    """Rows of `path,label` (a header row is allowed); paths relative to the CSV's folder."""
    try:
        rows = [r for r in csv.reader(path.read_text().splitlines()) if r]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise UsageError(f"--data {path}: cannot read it as a CSV of path,label ({e})") from None
    if rows and rows[0][:2] == ["path", "label"]:
        rows = rows[1:]
    bad = next((i for i, r in enumerate(rows) if len(r) < 2 or not r[0].strip() or not r[1].strip()), None)
    if bad is not None:
        raise UsageError(f"--data {path}: row {bad + 1} is not 'path,label'; every row names a file and its class")
    labels = [r[1].strip() for r in rows]
    if all(label.lstrip("-").isdigit() for label in labels):
        numbers = [int(label) for label in labels]
        if min(numbers, default=0) < 0:
            raise UsageError(f"--data {path}: label {min(numbers)} is out of range; numeric labels are 0, 1, 2, ...")
        classes = [str(i) for i in range(max(numbers, default=-1) + 1)]
        index = numbers
    else:
        classes = sorted(set(labels))
        index = [classes.index(label) for label in labels]
    files = [path.parent / r[0].strip() for r in rows]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise UsageError(f"--data {path}: {len(missing)} listed file(s) do not exist, e.g. {', '.join(missing[:3])}; "
                         f"paths are relative to the CSV's folder")
    return {"train": list(zip(files, index))}, classes


# ---------------------------------------------------------------- decoding

def _probe(path: Path) -> tuple[int, int, bool] | None:
    """(height, width, colour) from the file's header, or None when it is not a readable image."""
    from PIL import Image, UnidentifiedImageError

    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return None
    try:
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            return im.height, im.width, im.mode not in ("1", "L", "LA", "I", "I;16", "F", "P") or _palette_colour(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return None


def _palette_colour(im) -> bool:
    if im.mode != "P":
        return False
    rgb = np.asarray(im.convert("RGB"))
    return not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]))


def _decode(path: Path, channels: int, size: int) -> np.ndarray:
    """uint8 [channels, size, size]: decoded, converted, resized (antialiased bilinear, aspect not kept)."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("L" if channels == 1 else "RGB")
        if im.size != (size, size):
            im = im.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=None)
        array = np.asarray(im, dtype=np.uint8)
    return array[None] if channels == 1 else array.transpose(2, 0, 1)


def default_size(sides: list[int]) -> int:
    return int(min(MAX_DEFAULT_SIZE, np.median(sides)))


def decode_listing(listing: dict[str, list], classes: list[str], where: Path, image_size: int | None,
                   skip_bad: bool, progress=None) -> Source:
    """Probe every file, choose the colour mode and size, decode into arrays."""
    probes = {split: [(p, label, _probe(p)) for p, label in files] for split, files in listing.items()}
    bad = [str(p) for files in probes.values() for p, _, info in files if info is None]
    notes = []
    if bad and not skip_bad:
        raise UsageError(f"--data {where}: {len(bad)} file(s) are not readable images (PNG, JPEG, BMP, WebP), e.g. "
                         f"{', '.join(bad[:3])}; remove them, or pass --skip-bad to leave them out")
    if bad:
        notes.append(f"left out {len(bad)} unreadable file(s) (--skip-bad), e.g. {bad[0]}")
    good = {split: [(p, label, info) for p, label, info in files if info] for split, files in probes.items()}
    everything = [info for files in good.values() for _, _, info in files]
    if not everything:
        raise UsageError(f"--data {where}: no images found (PNG, JPEG, BMP or WebP); check the path")
    colour = any(c for _, _, c in everything)
    channels = 3 if colour else 1
    if colour and not all(c for _, _, c in everything):
        notes.append(f"{sum(not c for _, _, c in everything)} grey image(s) converted to RGB")
    sizes = {(h, w) for h, w, _ in everything}
    size = image_size or default_size([max(h, w) for h, w, _ in everything])
    if len(sizes) > 1 or sizes != {(size, size)}:
        notes.append(f"{len(sizes)} image size(s) resized to {size}x{size}")
    images, labels = {}, {}
    for split, files in good.items():
        images[split] = np.zeros((len(files), channels, size, size), dtype=np.uint8)
        labels[split] = np.array([label for _, label, _ in files], dtype=np.int64)
        for i, (p, _, _) in enumerate(files):
            images[split][i] = _decode(p, channels, size)
            if progress:
                progress()
    sha = hashlib.sha256()
    for p, _, _ in sorted((f for files in good.values() for f in files), key=lambda f: str(f[0])):
        sha.update(str(p.relative_to(where if where.is_dir() else where.parent)).encode())
        sha.update(p.read_bytes())
    return Source(images, labels, classes, sha.hexdigest(), notes)


def _check_classes(source: Source, where: Path) -> None:
    present = np.unique(source.labels["train"])
    if len(present) < 2:
        raise UsageError(f"--data {where}: only one class ({source.classes[present[0]] if len(present) else '-'}); "
                         f"a classifier needs at least two")


# ---------------------------------------------------------------- NPZ

def read_npz(path: Path, image_size: int | None) -> Source:
    """x_train, y_train, x_test, y_test: uint8 images NHW or NHWC (1 or 3 channels), integer labels."""
    try:
        raw = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise UsageError(f"--data {path}: cannot read it as an .npz ({e})") from None
    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in raw.files]
    if missing:
        raise UsageError(f"--data {path}: missing array(s) {', '.join(missing)}; an .npz needs x_train, y_train, "
                         f"x_test, y_test")
    images, labels = {}, {}
    for split in ("train", "test"):
        x, y = raw[f"x_{split}"], raw[f"y_{split}"].astype(np.int64).reshape(-1)
        if x.dtype != np.uint8 or x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[3] not in (1, 3)):
            raise UsageError(f"--data {path}: x_{split} must be uint8 N x H x W or N x H x W x C with C 1 or 3 "
                             f"(got {x.dtype} {x.shape})")
        if len(x) != len(y):
            raise UsageError(f"--data {path}: x_{split} has {len(x)} images but y_{split} {len(y)} labels")
        images[split] = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
        labels[split] = y
    classes = [str(c) for c in raw["classes"]] if "classes" in raw.files else \
        [str(i) for i in range(int(max(labels["train"].max(), labels["test"].max())) + 1)]
    for split, y in labels.items():
        if y.min() < 0 or y.max() >= len(classes):
            raise UsageError(f"--data {path}: y_{split} holds label {y.min() if y.min() < 0 else y.max()}, out of "
                             f"range 0-{len(classes) - 1}; labels index the classes")
    if images["train"].shape[1:] != images["test"].shape[1:]:
        raise UsageError(f"--data {path}: x_train and x_test differ in shape ({images['train'].shape[1:]} vs "
                         f"{images['test'].shape[1:]})")
    notes = []
    side = images["train"].shape[2:]
    size = image_size or default_size([max(side)])
    if side != (size, size):
        images = {s: _resize(a, size) for s, a in images.items()}
        notes.append(f"images of {side[0]}x{side[1]} resized to {size}x{size}")
    source = Source(images, labels, classes, hashlib.sha256(path.read_bytes()).hexdigest(), notes)
    _check_classes(source, path)
    return source


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    import torch
    from torchvision.transforms.v2 import functional as F

    return F.resize(torch.from_numpy(images), [size, size], antialias=True).numpy()


# ---------------------------------------------------------------- the cache and the entry point

def cache_key(listing: dict[str, list], classes: list[str], image_size: int | None, skip_bad: bool) -> str:
    stamp = [[split, str(p), *_size_and_time(p), label] for split, files in sorted(listing.items()) for p, label in files]
    blob = json.dumps([CACHE_VERSION, classes, image_size, skip_bad, stamp])
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _size_and_time(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def _save(folder: Path, source: Source) -> None:
    tmp = folder.with_name(folder.name + ".partial")
    tmp.mkdir(parents=True, exist_ok=True)
    for split in source.images:
        np.save(tmp / f"{split}-images.npy", source.images[split])
        np.save(tmp / f"{split}-labels.npy", source.labels[split])
    (tmp / "meta.json").write_text(json.dumps({"classes": source.classes, "sha256": source.sha256,
                                               "notes": source.notes, "splits": sorted(source.images)}))
    try:
        tmp.rename(folder)  # whole or absent: a killed decode leaves only .partial, redone next time
    except OSError:  # another process finished the same decode first: keep its copy
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


def _load(folder: Path) -> Source:
    meta = json.loads((folder / "meta.json").read_text())
    images = {s: np.load(folder / f"{s}-images.npy", mmap_mode="r") for s in meta["splits"]}
    labels = {s: np.load(folder / f"{s}-labels.npy") for s in meta["splits"]}
    return Source(images, labels, meta["classes"], meta["sha256"], meta["notes"])


def read(path: str | Path, image_size: int | None = None, skip_bad: bool = False, progress=None) -> Source:
    """The images at `path` (a folder, a .csv or an .npz), decoded or from the cache."""
    where = Path(path)
    if image_size is not None and not 8 <= image_size <= 512:
        raise UsageError(f"--image-size {image_size}: give a side between 8 and 512 pixels")
    if where.suffix.lower() == ".npz" and where.is_file():
        source = read_npz(where, image_size)
    elif where.suffix.lower() == ".csv" and where.is_file():
        source = _cached(where, *list_csv(where), image_size, skip_bad, progress)
    elif where.is_dir():
        source = _cached(where, *list_folder(where), image_size, skip_bad, progress)
    else:
        raise UsageError(f"--data {path}: not a folder, .csv or .npz (nor a built-in set: fashion-mnist, mnist, "
                         f"kmnist)")
    return source


def _cached(where: Path, listing, classes, image_size, skip_bad, progress) -> Source:
    folder = cache_root() / cache_key(listing, classes, image_size, skip_bad)
    if (folder / "meta.json").is_file():
        return _load(folder)
    source = decode_listing(listing, classes, where, image_size, skip_bad, progress)
    _check_classes(source, where)
    _save(folder, source)
    return _load(folder)
