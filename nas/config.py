"""Every knob in one place, with its unit. Frozen dataclasses, validated once.

A recipe is plain data: the search samples one per trial (see `spaces.sample`),
`nas train` builds one from flags, and an export stores it beside the arch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from nas.errors import UsageError

CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "nas" / "datasets"


@dataclass(frozen=True)
class Augment:
    """Batched, per-sample augmentation applied on the device (see nas/augment.py)."""

    crop_pad: int = 2  # pixels of zero padding for random translation; 0 = off
    flip: bool = True  # random horizontal flip with probability 1/2
    cutout: int = 0  # side in pixels of a random erased square; 0 = off
    cutmix: float = 0.0  # probability that a sample gets a random box pasted from its batch neighbour; 0 = off
    resized_crop: float = 0.0  # smallest area fraction of a random-resized crop (e.g. 0.35 for photos); 0 = off


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
            (0 <= self.augment.resized_crop <= 1, "augment resized_crop must be an area fraction in [0, 1]"),
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
    """'crop=2,flip=1,cutout=8,cutmix=0.5,resized_crop=0.35' -> {'crop_pad': 2, 'flip': True, 'cutout': 8, ...}."""
    names = {"crop": "crop_pad", "crop_pad": "crop_pad", "flip": "flip", "cutout": "cutout", "cutmix": "cutmix",
             "resized_crop": "resized_crop"}
    fractions = ("cutmix", "resized_crop")
    out = {}
    for part in filter(None, text.split(",")):
        key, _, value = part.partition("=")
        number = value.replace(".", "", 1) if key in fractions else value
        if key not in names or not number.isdigit():
            raise UsageError(f"{flag} {text!r}: expected e.g. crop=2,flip=1,cutout=8,cutmix=0.5,resized_crop=0.35")
        out[names[key]] = float(value) if key in fractions else bool(int(value)) if key == "flip" else int(value)
    return out


def _reject_unknown(values: dict, cls, where: str) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UsageError(f"unknown key {unknown[0]!r} in {where}; known keys: {', '.join(sorted(known))}")


@dataclass(frozen=True)
class DataConfig:
    """Which images, and how the 60,000 training images are split."""

    dataset: str = "fashion-mnist"  # fashion-mnist, mnist, kmnist, or a path: image folder, .csv or .npz
    data_dir: str | None = None  # folder of the four IDX files; None = look in the usual places
    val_size: int | None = None  # images held out of the training images for validation (stratified); None = 1/6
    image_size: int | None = None  # own images: side they are resized to; None = their median side, at most 64
    skip_bad: bool = False  # own images: leave unreadable files out (counted) instead of refusing the data
    split_seed: int = 0  # seeds the train/validation split; fixed so every trial sees the same split
    subset: float = 1.0  # fraction of the training split to train on (stratified); validation stays whole


SAMPLERS = ("tpe", "nsga2", "random")


@dataclass(frozen=True)
class Budget:
    """How much one rung trains a trial: epochs over a fraction of the 50,000 training images, or, with
    `seconds` (the top rung, by the clock), as much of that fraction as the network trains in that time."""

    epochs: int
    subset: float  # fraction of the training split, in (0, 1]
    seconds: float | None = None  # by the clock: every trial trains this long, whatever its speed

    @property
    def images(self) -> float:
        """Images seen, in units of the training split: the budget's cost (for the clock: at the speed
        that sets its seconds)."""
        return self.epochs * self.subset

    def to_dict(self) -> dict:
        """As stored: `seconds` only when set, so that the studies and trials made before it read the same."""
        return {"epochs": self.epochs, "subset": self.subset} | ({"seconds": self.seconds} if self.seconds else {})

    def __str__(self) -> str:
        if self.seconds:
            return f"{self.seconds:.0f} s on {self.subset:.0%}"
        return f"{self.epochs} epoch{'s' if self.epochs != 1 else ''} on {self.subset:.0%}"


def relative_budgets(first: Budget, eta: float, rungs: int) -> tuple[Budget, ...]:
    """Hyperband's ladder: rung k trains eta^k times rung 0's images, on more of the training split first
    (its whole split from the rung where eta^k * first.subset reaches 1), then for more epochs. Every rung
    then costs about as much as rung 0 in all, since it trains 1/eta^k of the trials."""
    budgets = []
    for k in range(1, rungs + 1):
        images = first.images * eta ** k
        subset = min(1.0, round(first.subset * eta ** k, 3))
        budgets.append(Budget(max(1, round(images / subset)), subset))
    return tuple(budgets)


def parse_epochs(text: str, flag: str) -> tuple[int, ...]:
    """'2,3' -> (2, 3); '' -> ()."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not all(p.isdigit() for p in parts):
        raise UsageError(f"{flag} {text!r}: write epochs as whole numbers separated by commas, e.g. 2,3")
    return tuple(sorted(set(map(int, parts))))


def parse_budgets(text: str) -> tuple[Budget, ...]:
    """'6x0.4,9x0.8,22x1' -> three Budgets; 'none' -> no promotions."""
    if text.strip() == "none":
        return ()
    budgets = []
    for part in text.split(","):
        epochs, _, subset = part.strip().partition("x")
        try:
            budget = Budget(int(epochs), float(subset))
        except ValueError:
            budget = None
        if budget is None or budget.epochs < 1 or not 0 < budget.subset <= 1:
            raise UsageError(f"--budgets {text!r}: write EPOCHSxFRACTION per rung, e.g. 6x0.4,9x0.8,22x1, "
                             f"or none")
        budgets.append(budget)
    return tuple(budgets)


@dataclass(frozen=True)
class SearchConfig:
    """`nas search`: which space, where the study lives, its limits, fidelity and pruning."""

    space: str  # name in search_spaces/ or a path to a .yaml file
    study: str  # study name; also names the default SQLite file studies/<study>.db
    storage: str  # Optuna storage URL
    trials: int | None  # trials trained at rung 0 (completed or pruned) the study should hold; None: until `minutes`
    objectives: tuple[str, ...] = ("accuracy", "macs", "latency")
    max_params: float | None = 10e6  # the seed's limit; None = no limit
    max_macs: float | None = None  # multiply-adds per image
    max_latency_ms: float | None = None  # batch-1 latency, milliseconds
    # rung 0, where every trial starts: 1 epoch (a one-cycle schedule of its own) on 15% of the training split,
    # 7,500 images; promoted: 1 epoch on 45%, then 1 on all. 100 trials then fit an hour on 2 cores
    # (benchmarks/README.md, "the main job")
    epochs: int = 1
    subset: float = 0.15
    # epochs of rung 0 at which a trial may be stopped early; none by default: mid-schedule, at the one-cycle's
    # peak lr, a score ranks batch size and lr more than the network (benchmarks/README.md, "pruning epochs")
    prune_epochs: tuple[int, ...] = ()
    eta: float = 3.0  # keep (and promote) the top 1/eta of each rung and pruning epoch
    rungs: int = 2  # promotion rungs above rung 0, each training eta times the images of the one below
    # the top rung trains every trial for the same time, not the same epochs: as long as its epoch budget takes
    # at the median speed of rung 0's trials. The front then ranks what a network learns in equal time, which is
    # how `nas export` trains it (for minutes); depthwise networks train 6-12x slower per image on a CPU, won the
    # top rung at equal epochs, then got 9 epochs in a 25-minute export (benchmarks/README.md, "the main job")
    top_clock: bool = True
    budgets: tuple[Budget, ...] | None = None  # rungs 1, 2, ... spelt out; None: relative_budgets(rung 0, eta, rungs)
    n_min: int = 5  # trials that must reach a pruning epoch before it prunes
    sampler: str = "tpe"  # one of SAMPLERS
    seed: int = 0  # seeds the sampler and every trial's recipe
    with_presets: bool = False  # train the space's presets (those inside the limits) as reference trials first
    minutes: float | None = None  # the whole search's time budget: no trial or promotion starts after it
    device: str = "auto"  # cpu, cuda, cuda:N; auto = a GPU if there is one
    latency_backend: str = "onnxruntime"  # what the latency objective is timed with
    latency_threads: int = 1  # threads of the latency timing (batch 1, as deployed)
    latency_as: str = "fp32"  # "int8": latency objective and limit timed on the trial's int8 model (nas/quantize.py)
    data: DataConfig = field(default_factory=DataConfig)

    def __post_init__(self):
        if self.trials is None and self.minutes is None:
            raise UsageError("give --trials N, --minutes M, or both: a search needs an end")
        if self.trials is not None and self.trials < 1:
            raise UsageError(f"--trials {self.trials}: must be at least 1")
        if self.sampler not in SAMPLERS:
            raise UsageError(f"--sampler {self.sampler!r}: choose one of {', '.join(SAMPLERS)}")
        if self.epochs < 1 or not 0 < self.subset <= 1:
            raise UsageError("--epochs must be >= 1 and --subset a fraction in (0, 1]")
        if self.minutes is not None and not self.minutes > 0:
            raise UsageError(f"--minutes {self.minutes:g}: must be > 0")
        if self.eta < 2:
            raise UsageError(f"eta {self.eta:g}: must be >= 2 (the top 1/eta of a rung goes on)")
        if any(not 1 <= e < self.epochs for e in self.prune_epochs):
            raise UsageError(f"--prune-at {','.join(map(str, self.prune_epochs))}: pruning epochs must lie in "
                             f"1..{self.epochs - 1}, before rung 0's last epoch (--epochs {self.epochs})")
        if self.rungs < 0:
            raise UsageError(f"--rungs {self.rungs}: must be >= 0 (0: no promotions)")
        if self.latency_as not in ("fp32", "int8") or (self.latency_as == "int8" and self.latency_backend != "onnxruntime"):
            raise UsageError(f"--latency-as {self.latency_as}: choose fp32 or int8 (int8 with the onnxruntime "
                             f"latency backend only)")
        first = Budget(self.epochs, self.subset)
        if self.budgets is None:
            object.__setattr__(self, "budgets", relative_budgets(first, self.eta, self.rungs))
        for lower, higher in zip((first, *self.budgets), self.budgets):
            if higher.images <= lower.images:
                raise UsageError(f"--budgets: {higher} trains no more than the rung below it ({lower}); "
                                 f"each rung must grow, e.g. 6x0.4,9x0.8,22x1")

    def limits(self) -> dict[str, float]:
        named = {"params": self.max_params, "macs": self.max_macs, "latency_ms": self.max_latency_ms}
        return {k: v for k, v in named.items() if v is not None}

    def settings(self, space_file: Path, data: dict) -> dict:
        """What must not change when a study is continued; stored on the study. `data`: data.record()."""
        return {"space": Path(space_file).stem, "space_sha256": hashlib.sha256(Path(space_file).read_bytes()).hexdigest(),
                "objectives": list(self.objectives), "limits": self.limits(),
                "fidelity": {"epochs": self.epochs, "subset": self.subset, "val_size": self.data.val_size,
                             "split_seed": self.data.split_seed, "dataset": self.data.dataset,
                             "image_size": self.data.image_size, "skip_bad": self.data.skip_bad},
                "data": data,
                "pruning": {"epochs": list(self.prune_epochs), "eta": self.eta, "n_min": self.n_min},
                "promotions": [b.to_dict() for b in self.budgets],
                **({"top_rung": "clock"} if self.top_clock and self.budgets else {}),
                # "int8" only when set, so that studies made before it continue
                "latency": {"backend": self.latency_backend, "threads": self.latency_threads, "as_deployed": True,
                            **({"int8": True} if self.latency_as == "int8" else {})}}


PICKS = ("best", "knee")
EXPORT_MINUTES = 25.0  # `nas export` without --epochs or --minutes: training time, so that an export takes < 30 min


@dataclass(frozen=True)
class ExportConfig:
    """`nas export`: which trial, how long its final training is, where the files go."""

    study: str
    storage: str
    trial: int | None = None  # None: chosen by `pick`
    pick: str = "best"  # "best": most accurate on the front; "knee": see knee()
    epochs: int = 30  # final training when `minutes` is None; the search trained each trial for far fewer
    minutes: float | None = None  # train for this long instead of `epochs` (train.ByClock); `nas export`'s default
    subset: float = 1.0  # fraction of train + validation to train on (tests use a sliver)
    seed: int | None = None  # None: the trial's recipe seed
    augment: str = "final"  # see final_augment: "final", "search" (the trial's), or e.g. "crop=2,cutout=8" over it
    compile: bool = False  # torch.compile the training step: faster for some models, slower for others (README)
    device: str = "auto"  # cpu, cuda, cuda:N; auto = a GPU if there is one
    data_dir: str | None = None  # folder of the IDX files; None = look in the usual places
    out: str | None = None  # default studies/<study>/exports/trial-<n>
    force: bool = False  # replace a finished export in `out`
    latency_threads: int = 1  # threads of the latency timing (batch 1)
    int8: bool = False  # also write model.int8.onnx (nas/quantize.py), scored and timed beside model.onnx

    def __post_init__(self):
        if self.epochs < 1 or (self.minutes is not None and not self.minutes > 0) or not 0 < self.subset <= 1:
            raise UsageError("--epochs must be >= 1, --minutes > 0 and --subset a fraction in (0, 1]")


# ---------------------------------------------------------------- human units

OBJECTIVES = {"accuracy": "maximize", "params": "minimize", "macs": "minimize", "latency": "minimize"}


def parse_count(text: str, flag: str) -> float:
    """'1M' -> 1e6, '300k' -> 3e5, '2.5G' -> 2.5e9, '12000' -> 12000."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)\s*", str(text))
    if not m:
        raise UsageError(f"{flag} {text!r} is not a count; write e.g. 1M, 300k, 2.5G or 12000")
    return float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[m.group(2).lower()]


def parse_ms(text: str, flag: str) -> float:
    """'1ms' -> 1.0, '500us' -> 0.5, '0.002s' -> 2.0 (milliseconds)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(us|µs|ms|s)\s*", str(text))
    if not m:
        raise UsageError(f"{flag} {text!r} is not a duration; write e.g. 1ms, 500us or 0.002s")
    return float(m.group(1)) * {"us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]


def parse_objectives(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in OBJECTIVES]
    if unknown or not names:
        raise UsageError(f"unknown objective {unknown[0] if unknown else text!r}; choose from {', '.join(OBJECTIVES)}")
    if len(set(names)) != len(names):
        raise UsageError(f"--objectives {text!r} names an objective twice")
    if "accuracy" not in names:
        raise UsageError(f"--objectives {text!r} must include accuracy (costs alone need no search)")
    return ("accuracy", *(n for n in names if n != "accuracy"))  # accuracy first: values[0] everywhere


# ---------------------------------------------------------------- what a model takes

CLASSES = {
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
    "mnist": [str(i) for i in range(10)],
    "kmnist": ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"],
}
# Fashion-MNIST's training-set pixel statistics (0-255), built into every model (`nas data` prints them)
PIXEL_MEAN, PIXEL_STD = 72.94, 90.02


@dataclass(frozen=True)
class Inputs:
    """What a model takes and gives: raw pixels of this shape, scores for these classes."""

    channels: int  # 1 grey, 3 RGB
    size: int  # side of the square image, pixels
    classes: tuple[str, ...]
    mean: tuple[float, ...]  # per channel, 0-255, of the training split: built into the model
    std: tuple[float, ...]

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.channels, self.size, self.size

    def to_dict(self) -> dict:
        return {"channels": self.channels, "size": self.size, "classes": list(self.classes),
                "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: dict) -> "Inputs":
        return cls(d["channels"], d["size"], tuple(d["classes"]), tuple(d["mean"]), tuple(d["std"]))


def builtin_inputs(dataset: str = "fashion-mnist") -> Inputs:
    """The built-in sets keep Fashion-MNIST's statistics, as every model built before own data did."""
    return Inputs(1, 28, tuple(CLASSES[dataset]), (PIXEL_MEAN,), (PIXEL_STD,))
