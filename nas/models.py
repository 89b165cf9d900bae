"""One pure builder per family: `build(arch) -> nn.Module`. The arch dict is the model's identity."""

from __future__ import annotations

import torch
from torch import nn

from nas.blocks import ACTIVATIONS, BLOCKS, Normalize, conv_bn
from nas.config import Inputs, builtin_inputs
from nas.errors import UsageError


def build_resnet_like(arch: dict, channels: int, num_classes: int) -> nn.Module:
    act = arch["activation"]
    stem = arch["stem"]
    layers = [conv_bn(channels, stem["width"], stem["kernel"], stem.get("stride", 1), act=act)]
    width = stem["width"]
    for stage in arch["stages"]:
        for i in range(stage["depth"]):
            stride = 2 if (i == 0 and stage["downsample"]) else 1
            layers.append(BLOCKS[stage["block"]](width, stage["width"], stride, stage["kernel"], act,
                                                 stage["se"], stage.get("expansion", 1)))
            width = stage["width"]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Dropout(arch.get("dropout", 0.0)), nn.Linear(width, num_classes))


def build_simple_cnn(arch: dict, channels: int, num_classes: int) -> nn.Module:
    """The seed's family: [conv(+BN)+act] x convs, max-pool; per stage; then fully connected layers."""
    act, bn = arch["activation"], arch["batchnorm"]
    layers, width = [], channels
    for stage in arch["stages"]:
        for _ in range(stage["convs"]):
            layers.append(nn.Conv2d(width, stage["width"], 3, padding=1, bias=not bn))
            if bn:
                layers.append(nn.BatchNorm2d(stage["width"]))
            layers.append(ACTIVATIONS[act]())
            width = stage["width"]
        layers.append(nn.MaxPool2d(2))
    layers.append(nn.Flatten())
    for hidden in arch["fc"]:
        layers += [nn.LazyLinear(hidden), ACTIVATIONS[act](), nn.Dropout(arch.get("dropout", 0.0))]
    layers.append(nn.LazyLinear(num_classes))
    return nn.Sequential(*layers)


FAMILIES = {"resnet_like": build_resnet_like, "simple_cnn": build_simple_cnn}


def build(arch: dict, inputs: Inputs | None = None, seed: int | None = None) -> nn.Module:
    """A fresh, randomly initialised model that takes raw pixels (float 0-255, NCHW) of `inputs.shape`
    (default: the built-in 28x28 grey sets) and scores `inputs.classes`. `model.input_shape` says which.

    seed: initial weights drawn from this seed (the global RNG is left as it was); None = global RNG."""
    inputs = inputs or builtin_inputs()
    if seed is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return build(arch, inputs)
    family = arch.get("family")
    if family not in FAMILIES:
        raise UsageError(f"arch family {family!r} is unknown; known families: {', '.join(FAMILIES)}")
    try:
        body = FAMILIES[family](arch, inputs.channels, len(inputs.classes))
    except KeyError as e:
        raise UsageError(f"arch for {family} is missing key {e.args[0]!r}") from None
    model = nn.Sequential(Normalize(inputs.mean, inputs.std), body)
    with torch.no_grad():  # materialise lazy layers and check the arch fits the input size
        try:
            model.eval()(torch.zeros(1, *inputs.shape))
        except RuntimeError as e:
            raise UsageError(f"arch does not fit a {inputs.shape} input: {str(e).splitlines()[0]}") from None
    model.input_shape = inputs.shape
    return model


class FlipTTA(nn.Module):
    """Test-time augmentation inside the deployed model: logits of the image and its mirror, averaged."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.input_shape = getattr(model, "input_shape", None)

    def forward(self, x):
        # one pass over the image and its mirror stacked into one batch: at batch 1 that costs 0.76-0.89x
        # two passes with onnxruntime (per-operator overhead weighs most in small models; benchmarks/tta_latency.py)
        logits = self.model(torch.cat([x, x.flip(3)]))
        return (logits[: x.shape[0]] + logits[x.shape[0]:]) / 2


def deployable(model: nn.Module, tta_flip: bool) -> nn.Module:
    """The model as it is shipped and timed: with the recipe's flip TTA inside when it uses one."""
    return FlipTTA(model) if tta_flip else model


def summary(arch: dict) -> str:
    """A short human-readable line for tables and trial attributes (well under 1,024 characters)."""
    if arch["family"] == "simple_cnn":
        stages = " ".join(f"{s['width']}x{s['convs']}" for s in arch["stages"])
        fc = "-".join(str(w) for w in arch["fc"]) or "none"
        return f"cnn[{stages}] fc[{fc}] {'bn ' if arch['batchnorm'] else ''}{arch['activation']}"
    stride = arch["stem"].get("stride", 1)
    parts = [f"stem{arch['stem']['width']}" + (f"/{stride}" if stride > 1 else "")]
    for s in arch["stages"]:
        block = s["block"] + (f"e{s['expansion']}" if s["block"] in ("inverted", "bottleneck") else "")
        parts.append(f"{block}x{s['depth']}@{s['width']}k{s['kernel']}{'/2' if s['downsample'] else ''}"
                     f"{'+se' if s['se'] else ''}")
    return " ".join(parts) + f" {arch['activation']}"
