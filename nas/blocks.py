"""Building blocks shared by the model families. Adding a block type = one class + one BLOCKS line."""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU, "hardswish": nn.Hardswish, "gelu": nn.GELU}


class Normalize(nn.Module):
    """Raw pixels (float, 0-255) in, standardised pixels out: deployed models take raw pixels."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        # one channel: scalars, as every grey model has stored them; several: [C, 1, 1], per channel
        shape = () if len(mean) == 1 else (len(mean), 1, 1)
        self.register_buffer("mean", torch.tensor(mean).reshape(shape))
        self.register_buffer("scale", (1.0 / torch.tensor(std)).reshape(shape))

    def forward(self, x):
        return (x - self.mean) * self.scale


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: str | None = "relu"):
    layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(ACTIVATIONS[act]())
    return nn.Sequential(*layers)


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        hidden = max(8, channels // reduction)
        self.fc = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, hidden, 1), nn.ReLU(),
                                nn.Conv2d(hidden, channels, 1), nn.Sigmoid())

    def forward(self, x):
        return x * self.fc(x)


def shortcut(cin: int, cout: int, stride: int) -> nn.Module:
    if cin == cout and stride == 1:
        return nn.Identity()
    return conv_bn(cin, cout, 1, stride, act=None)


class Residual(nn.Module):
    """body(x) + shortcut(x), then the activation (when given)."""

    def __init__(self, body: nn.Module, skip: nn.Module, act: str | None):
        super().__init__()
        self.body, self.skip = body, skip
        self.act = ACTIVATIONS[act]() if act else nn.Identity()

    def forward(self, x):
        return self.act(self.body(x) + self.skip(x))


def basic(cin, cout, stride, kernel, act, se, expansion):
    """ResNet basic block: two k x k convs."""
    body = [conv_bn(cin, cout, kernel, stride, act=act), conv_bn(cout, cout, kernel, act=None)]
    if se:
        body.append(SqueezeExcite(cout))
    return Residual(nn.Sequential(*body), shortcut(cin, cout, stride), act)


def bottleneck(cin, cout, stride, kernel, act, se, expansion):
    """ResNet bottleneck: 1x1 down to cout/expansion, k x k, 1x1 back up."""
    mid = max(8, cout // expansion)
    body = [conv_bn(cin, mid, 1, act=act), conv_bn(mid, mid, kernel, stride, act=act), conv_bn(mid, cout, 1, act=None)]
    if se:
        body.append(SqueezeExcite(cout))
    return Residual(nn.Sequential(*body), shortcut(cin, cout, stride), act)


def inverted(cin, cout, stride, kernel, act, se, expansion):
    """MobileNetV2 inverted residual: 1x1 expand, depthwise k x k, 1x1 linear projection."""
    mid = cin * expansion
    body = [conv_bn(cin, mid, 1, act=act), conv_bn(mid, mid, kernel, stride, groups=mid, act=act)]
    if se:
        body.append(SqueezeExcite(mid))
    body.append(conv_bn(mid, cout, 1, act=None))
    body = nn.Sequential(*body)
    if stride == 1 and cin == cout:  # residual only where shapes match, as in MobileNetV2
        return Residual(body, nn.Identity(), None)
    return body


def plain(cin, cout, stride, kernel, act, se, expansion):
    """One k x k conv + BN + activation, no skip connection."""
    layers = [conv_bn(cin, cout, kernel, stride, act=act)]
    if se:
        layers.append(SqueezeExcite(cout))
    return nn.Sequential(*layers)


BLOCKS = {"basic": basic, "bottleneck": bottleneck, "inverted": inverted, "plain": plain}
