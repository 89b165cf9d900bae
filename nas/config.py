"""Every knob in one place, with its unit. Frozen dataclasses, validated once.

A recipe is plain data: the search samples one per trial (see `spaces.sample`),
`nas train` builds one from flags, and an export stores it beside the arch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from nas.errors import UsageError


@dataclass(frozen=True)
class Augment:
    """Batched, per-sample augmentation applied on the device (see nas/augment.py)."""

    crop_pad: int = 2  # pixels of zero padding for random translation; 0 = off
    flip: bool = True  # random horizontal flip with probability 1/2
    cutout: int = 0  # side in pixels of a random erased square; 0 = off
    cutmix: float = 0.0  # probability that a sample gets a random box pasted from its batch neighbour; 0 = off


@dataclass(frozen=True)
class Recipe:
    """How a model is trained. Defaults are the measured fast recipe for 28x28 images."""

    epochs: int = 10  # full passes over the training split
    batch_size: int = 256  # images per optimiser step
    optimizer: str = "sgd"  # "sgd" (Nesterov momentum) or "adamw"
    lr: float = 0.2  # peak learning rate per 256 images; scaled linearly with batch_size
    momentum: float = 0.9  # SGD momentum / AdamW beta1
    weight_decay: float = 5e-4  # decoupled for AdamW, L2 for SGD; not applied to BN/bias
    schedule: str = "onecycle"  # "onecycle" (linear up, linear down) or "cosine" (warm-up then cosine)
    warmup: float = 0.15  # fraction of all steps spent warming up
    label_smoothing: float = 0.1  # cross-entropy target smoothing
    ema: float = 0.99  # per-step decay of the weight average used for evaluation; 0 = off
    tta_flip: bool = True  # evaluate on the image and its mirror, average the logits
    progressive_from: int = 0  # progressive resizing: train at this side (pixels) first, growing to full size; 0 = off
    augment: Augment = field(default_factory=Augment)
    seed: int = 0  # seeds weights, batch order and augmentation

    def __post_init__(self):
        checks = [
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.optimizer in ("sgd", "adamw"), "optimizer must be 'sgd' or 'adamw'"),
            (self.lr > 0, "lr must be > 0"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (self.schedule in ("onecycle", "cosine"), "schedule must be 'onecycle' or 'cosine'"),
            (0 <= self.warmup < 1, "warmup must be a fraction in [0, 1)"),
            (0 <= self.label_smoothing < 1, "label_smoothing must be in [0, 1)"),
            (0 <= self.ema < 1, "ema must be a decay in [0, 1)"),
            (self.augment.crop_pad >= 0 and self.augment.cutout >= 0, "augment sizes must be >= 0"),
            (0 <= self.augment.cutmix <= 1, "augment cutmix must be a probability in [0, 1]"),
            (self.progressive_from == 0 or self.progressive_from >= 8,
             "progressive_from must be 0 (off) or >= 8 pixels"),
        ]
        for ok, rule in checks:
            if not ok:
                raise UsageError(f"bad training recipe: {rule} (got {self})")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "Recipe":
        """Build from plain data; unknown keys are errors, missing keys take the defaults."""
        values = dict(values)
        aug = values.pop("augment", {}) or {}
        _reject_unknown(values, cls, "recipe")
        _reject_unknown(aug, Augment, "recipe.augment")
        return cls(**values, augment=Augment(**aug))

    def replace(self, **changes) -> "Recipe":
        return dataclasses.replace(self, **changes)


def parse_augment(text: str, flag: str) -> dict:
    """'crop=2,flip=1,cutout=8,cutmix=0.5' -> {'crop_pad': 2, 'flip': True, 'cutout': 8, 'cutmix': 0.5}."""
    names = {"crop": "crop_pad", "crop_pad": "crop_pad", "flip": "flip", "cutout": "cutout", "cutmix": "cutmix"}
    out = {}
    for part in filter(None, text.split(",")):
        key, _, value = part.partition("=")
        number = value.replace(".", "", 1) if key == "cutmix" else value
        if key not in names or not number.isdigit():
            raise UsageError(f"{flag} {text!r}: expected e.g. crop=2,flip=1,cutout=8,cutmix=0.5")
        out[names[key]] = float(value) if key == "cutmix" else bool(int(value)) if key == "flip" else int(value)
    return out


def _reject_unknown(values: dict, cls, where: str) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UsageError(f"unknown key {unknown[0]!r} in {where}; known keys: {', '.join(sorted(known))}")


@dataclass(frozen=True)
class DataConfig:
    """Which images, and how the 60,000 training images are split."""

    dataset: str = "fashion-mnist"  # fashion-mnist, mnist or kmnist
    data_dir: str | None = None  # folder of the four IDX files; None = look in the usual places
    val_size: int = 10_000  # images held out of the training file for validation (stratified)
    split_seed: int = 0  # seeds the train/validation split; fixed so every trial sees the same split
    subset: float = 1.0  # fraction of the training split to train on (stratified); validation stays whole
