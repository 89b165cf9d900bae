"""Search spaces are data: YAML files in search_spaces/ (or any path), validated once.

A parameter spec in a space file is one of
    a constant                    stem_kernel: 3
    a choice                      width: {choices: [16, 32, 64]}
    a range                       lr: {low: 0.05, high: 0.4, log: true}   (int when low and high are ints)
A `stage:` spec may also be a list with one spec per stage index.

Only this module calls `trial.suggest_*`. `sample` returns the plain arch dict that is the
model's identity; `sample_recipe` the training knobs and augmentation policy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from nas import models
from nas.blocks import ACTIVATIONS, BLOCKS
from nas.config import Augment, Recipe
from nas.errors import UsageError

REPO_SPACES = Path(__file__).resolve().parent.parent / "search_spaces"

# What each family's arch section may hold: top-level keys and per-stage keys. Ordered: the
# per-stage keys are drawn in this order, and `expansion` depends on `block`.
SCHEMA = {
    "resnet_like": {
        "top": ("stem_width", "stem_kernel", "activation", "stages", "dropout"),
        "stage": ("block", "depth", "width", "kernel", "se", "expansion", "downsample"),
    },
    "simple_cnn": {
        "top": ("stages", "batchnorm", "activation", "fc_layers", "fc_width", "dropout"),
        "stage": ("width", "convs"),
    },
}
ALLOWED_VALUES = {"block": set(BLOCKS), "activation": set(ACTIVATIONS)}
RECIPE_KEYS = {f for f in Recipe.__dataclass_fields__ if f not in ("augment", "seed", "epochs")}
AUGMENT_KEYS = set(Augment.__dataclass_fields__)
EXPANDING_BLOCKS = ("inverted", "bottleneck")  # blocks that use `expansion`


@dataclass
class Space:
    name: str
    path: Path
    family: str
    description: str
    arch: dict  # key -> spec; "stage" -> {key -> spec or [spec per stage]}
    recipe: dict = field(default_factory=dict)
    augment: dict = field(default_factory=dict)
    presets: dict = field(default_factory=dict)  # name -> {"arch": dict, "recipe": dict, "note": str}
    image_sizes: tuple[int, int] = (8, 64)  # sides (pixels) its networks are meant for: min, max
    stem_stride_above: int | None = None  # resnet_like: larger images get a strided stem (see stem_stride)

    def stem_stride(self, size: int) -> int:
        """The stem's stride for images of `size` pixels: halve until the first stage sees at most
        `stem_stride_above` pixels, so larger images cost about what the space's ranges were made for."""
        stride = 1
        while self.stem_stride_above and size / stride > self.stem_stride_above:
            stride *= 2
        return stride

    def check_size(self, size: int) -> None:
        """Refuse images the space was not made for (too small to downsample, too large to train on a CPU)."""
        low, high = self.image_sizes
        if not low <= size <= high:
            raise UsageError(f"space {self.name} is made for images of {low}-{high} pixels (image_sizes in "
                             f"{self.path}); these are {size}x{size}: pass --image-size between {low} and {high}, "
                             f"or use another space")


# ---------------------------------------------------------------- finding and loading

def space_dirs() -> list[Path]:
    dirs = [Path(os.environ["NAS_SPACES_DIR"])] if os.environ.get("NAS_SPACES_DIR") else []
    return dirs + [Path.cwd() / "search_spaces", REPO_SPACES]


def available() -> dict[str, Path]:
    found = {}
    for folder in reversed(space_dirs()):  # earlier folders win
        if folder.is_dir():
            found.update({p.stem: p for p in sorted(folder.glob("*.yaml"))})
    return dict(sorted(found.items()))


def resolve(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or os.sep in name_or_path:
        if not path.is_file():
            raise UsageError(f"space file {path} does not exist")
        return path
    spaces = available()
    if name_or_path not in spaces:
        raise UsageError(f"unknown space {name_or_path!r}; known spaces: {', '.join(spaces) or 'none'} "
                         f"(or give a path to a .yaml file)")
    return spaces[name_or_path]


def load(name_or_path: str) -> Space:
    path = resolve(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UsageError(f"{path}{where}: YAML syntax error: {getattr(e, 'problem', e)}") from None
    return validate(raw, path)


def load_all() -> list[Space]:
    return [load(str(p)) for p in available().values()]


# ---------------------------------------------------------------- validation

def _fail(path: Path, key: str, rule: str):
    raise UsageError(f"{path}: {key}: {rule}")


def _check_spec(spec, path: Path, key: str, name: str) -> None:
    allowed = ALLOWED_VALUES.get(name)
    if isinstance(spec, dict):
        extra = set(spec) - {"choices", "low", "high", "log", "step"}
        if extra:
            _fail(path, key, f"unknown key {sorted(extra)[0]!r}; a spec has either 'choices' or 'low'/'high' (+ 'log', 'step')")
        if "choices" in spec:
            choices = spec["choices"]
            if not isinstance(choices, list) or not choices:
                _fail(path, key, "choices must be a non-empty list")
            values = choices
        elif "low" in spec and "high" in spec:
            low, high = spec["low"], spec["high"]
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
                _fail(path, key, f"low and high must be numbers (got {low!r}, {high!r}; write 1.0e-5, not 1e-5)")
            if low > high:
                _fail(path, key, f"range has low > high ({low} > {high})")
            if spec.get("log") and low <= 0:
                _fail(path, key, "a log range needs low > 0")
            values = []
        else:
            _fail(path, key, "a spec needs 'choices' or both 'low' and 'high'")
    elif isinstance(spec, list):
        _fail(path, key, "a list is only allowed under 'stage:' (one spec per stage); use {choices: [...]}")
    else:
        values = [spec]
    if allowed:
        for v in values:
            if v not in allowed:
                _fail(path, key, f"unknown {name} {v!r}; known: {', '.join(sorted(allowed))}")


def validate(raw, path: Path) -> Space:
    if not isinstance(raw, dict):
        _fail(path, "(top)", "a space file is a mapping with family, arch, recipe, augment, presets")
    extra = set(raw) - {"family", "description", "image_sizes", "stem_stride_above", "arch", "recipe", "augment",
                        "presets"}
    if extra:
        _fail(path, sorted(extra)[0], "unknown key; allowed: family, description, image_sizes, stem_stride_above, "
                                      "arch, recipe, augment, presets")
    sizes = raw.get("image_sizes") or {"min": 8, "max": 64}
    if not (isinstance(sizes, dict) and set(sizes) == {"min", "max"} and
            all(isinstance(v, int) for v in sizes.values()) and 1 <= sizes["min"] <= sizes["max"]):
        _fail(path, "image_sizes", "must be {min: PIXELS, max: PIXELS} with 1 <= min <= max")
    family = raw.get("family")
    if family not in SCHEMA:
        _fail(path, "family", f"unknown family {family!r}; known: {', '.join(SCHEMA)}")
    above = raw.get("stem_stride_above")
    if above is not None and not (isinstance(above, int) and above >= 1 and raw.get("family") == "resnet_like"):
        _fail(path, "stem_stride_above", "must be a number of pixels >= 1, and only resnet_like has a stem")
    arch = raw.get("arch") or {}
    schema = SCHEMA[family]
    allowed_top = sorted({*schema["top"], "stage"})
    missing = set(allowed_top) - set(arch)
    if missing:
        _fail(path, f"arch.{sorted(missing)[0]}", f"missing; the family needs every one of {', '.join(allowed_top)}")
    for key, spec in arch.items():
        if key == "stage":
            if not isinstance(spec, dict):
                _fail(path, "arch.stage", "must be a mapping of per-stage keys")
            for skey, sspec in spec.items():
                if skey not in schema["stage"]:
                    _fail(path, f"arch.stage.{skey}", f"unknown key; allowed: {', '.join(sorted(schema['stage']))}")
                for i, one in enumerate(sspec if isinstance(sspec, list) else [sspec]):
                    _check_spec(one, path, f"arch.stage.{skey}" + (f"[{i}]" if isinstance(sspec, list) else ""), skey)
        elif key not in schema["top"]:
            _fail(path, f"arch.{key}", f"unknown key; allowed: {', '.join(allowed_top)}")
        else:
            _check_spec(spec, path, f"arch.{key}", key)
    missing_stage = set(schema["stage"]) - {"expansion"} - set(arch["stage"])
    if missing_stage:
        _fail(path, f"arch.stage.{sorted(missing_stage)[0]}", "missing")
    for section, known in (("recipe", RECIPE_KEYS), ("augment", AUGMENT_KEYS)):
        for key, spec in (raw.get(section) or {}).items():
            if key not in known:
                _fail(path, f"{section}.{key}", f"unknown key; allowed: {', '.join(sorted(known))}")
            _check_spec(spec, path, f"{section}.{key}", key)
    presets = raw.get("presets") or {}
    for name, preset in presets.items():
        if not isinstance(preset, dict) or "arch" not in preset:
            _fail(path, f"presets.{name}", "a preset needs an 'arch' mapping")
        preset["arch"] = {"family": family, **preset["arch"]}
        try:  # build it once so a broken preset is caught with its name
            models.build(preset["arch"])
            Recipe.from_dict(preset.get("recipe") or {})
        except UsageError as e:
            _fail(path, f"presets.{name}", str(e))
    return Space(name=path.stem, path=path, family=family, description=raw.get("description", ""),
                 arch=arch, recipe=raw.get("recipe") or {}, augment=raw.get("augment") or {}, presets=presets,
                 image_sizes=(sizes["min"], sizes["max"]), stem_stride_above=above)


# ---------------------------------------------------------------- sampling

def _suggest(trial, name: str, spec):
    if not isinstance(spec, dict):
        return spec
    if "choices" in spec:
        return trial.suggest_categorical(name, spec["choices"])
    low, high = spec["low"], spec["high"]
    if isinstance(low, int) and isinstance(high, int) and not spec.get("log"):
        return trial.suggest_int(name, low, high, step=spec.get("step", 1))
    if isinstance(low, int) and isinstance(high, int):
        return trial.suggest_int(name, low, high, log=True)
    return trial.suggest_float(name, float(low), float(high), log=bool(spec.get("log")), step=spec.get("step"))


def _stage_spec(space: Space, key: str, index: int):
    spec = space.arch["stage"].get(key)
    if isinstance(spec, list):
        return spec[min(index, len(spec) - 1)]
    return spec


def sample(trial, space: Space, image_size: int = 28) -> dict:
    """Draw one architecture for images of `image_size` pixels. Parameter names: top-level keys,
    `s<i>_<key>` per stage."""
    a = {k: _suggest(trial, k, v) for k, v in space.arch.items() if k != "stage"}
    stages = []
    for i in range(a.pop("stages")):
        stage = {}
        for key in SCHEMA[space.family]["stage"]:
            if key == "expansion" and stage.get("block") not in EXPANDING_BLOCKS:
                continue  # conditional: only blocks that expand get (and identify by) an expansion
            spec = _stage_spec(space, key, i)
            if spec is not None:
                stage[key] = _suggest(trial, f"s{i}_{key}", spec)
        stages.append(stage)
    if space.family == "resnet_like":
        stem = {"width": a["stem_width"], "kernel": a["stem_kernel"]}
        stride = space.stem_stride(image_size)
        if stride > 1:  # absent means 1, so the archs of small images stay as they always were
            stem["stride"] = stride
        return {"family": "resnet_like", "stem": stem, "activation": a["activation"], "stages": stages,
                "dropout": a["dropout"]}
    return {"family": "simple_cnn", "stages": stages, "batchnorm": a["batchnorm"], "activation": a["activation"],
            "fc": [a["fc_width"]] * (a["fc_layers"] - 1), "dropout": a["dropout"]}


def sample_recipe(trial, space: Space, base: Recipe = Recipe()) -> Recipe:
    """Draw the training knobs and augmentation policy the space leaves open; the rest from `base`."""
    knobs = {k: _suggest(trial, f"recipe_{k}", v) for k, v in space.recipe.items()}
    aug = {k: _suggest(trial, f"aug_{k}", v) for k, v in space.augment.items()}
    return Recipe.from_dict({**base.to_dict(), **knobs, "augment": {**base.to_dict()["augment"], **aug}})
