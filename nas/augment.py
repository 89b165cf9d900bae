"""Batched augmentation: whole-batch tensor operations, each sample with its own randomness.

No per-sample Python loop and no DataLoader workers: on 2 CPU cores those cost more than
the model. Images stay uint8 [B, C, H, W] here; the model normalises them itself.
"""

from __future__ import annotations

import math

import torch

from nas.config import Augment


def gather(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """out[i, :, r, c] = x[i, :, rows[i, r], cols[i, c]]: one integer gather for crops and resizes."""
    batch = torch.arange(x.shape[0], device=x.device)[:, None, None]
    # advanced indexing puts the indexed dims first: [B, H, W, C]
    return x.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def crop_with_offsets(x: torch.Tensor, pad: int, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Zero-pad by `pad`, then cut the HxW window at (dy[i], dx[i]) out of sample i.

    dy, dx are in [0, 2*pad]; (pad, pad) gives the image back unchanged.
    """
    _, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    rows, cols = dy[:, None] + torch.arange(h, device=x.device), dx[:, None] + torch.arange(w, device=x.device)
    return gather(padded, rows, cols)


def random_resized_crop(x: torch.Tensor, min_area: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Inception-style crop: a box of min_area-1 of the image's area and aspect 3/4-4/3 per sample,
    stretched back to HxW by nearest-neighbour sampling (integer indexing: uint8 in, uint8 out)."""
    if min_area == 0:
        return x
    b, _, h, w = x.shape
    rand = torch.rand(4, b, device=x.device, generator=generator)
    area = min_area + (1 - min_area) * rand[0]
    aspect = torch.exp((2 * rand[1] - 1) * math.log(4 / 3))
    box_h = ((area / aspect).sqrt() * h).clamp(1, h)
    box_w = ((area * aspect).sqrt() * w).clamp(1, w)
    top, left = rand[2] * (h - box_h), rand[3] * (w - box_w)
    centres_h = (torch.arange(h, device=x.device) + 0.5) / h
    centres_w = (torch.arange(w, device=x.device) + 0.5) / w
    rows = (top[:, None] + centres_h * box_h[:, None]).long().clamp(0, h - 1)
    cols = (left[:, None] + centres_w * box_w[:, None]).long().clamp(0, w - 1)
    return gather(x, rows, cols)


def random_crop(x: torch.Tensor, pad: int, generator: torch.Generator | None = None) -> torch.Tensor:
    if pad == 0:
        return x
    dy, dx = torch.randint(0, 2 * pad + 1, (2, x.shape[0]), device=x.device, generator=generator)
    return crop_with_offsets(x, pad, dy, dx)


def random_flip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    flip = torch.rand(x.shape[0], device=x.device, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def random_cutout(x: torch.Tensor, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Erase (set to 0) one size x size square per sample; its centre may lie anywhere in the image."""
    if size == 0:
        return x
    b, _, h, w = x.shape
    cy = torch.randint(0, h, (b,), device=x.device, generator=generator)
    cx = torch.randint(0, w, (b,), device=x.device, generator=generator)
    return x.masked_fill(box_mask(h, w, cy - size // 2, cx - size // 2, size, size), 0)


def box_mask(h: int, w: int, top: torch.Tensor, left: torch.Tensor, height, width) -> torch.Tensor:
    """[B, 1, H, W] mask of one box per sample (top-left corner, height, width), clipped at the borders."""
    rows = torch.arange(h, device=top.device)[None, :]
    cols = torch.arange(w, device=top.device)[None, :]
    in_rows = (rows >= top[:, None]) & (rows < (top + height)[:, None])  # [B, H]
    in_cols = (cols >= left[:, None]) & (cols < (left + width)[:, None])  # [B, W]
    return in_rows[:, None, :, None] & in_cols[:, None, None, :]


def cutmix(x: torch.Tensor, p: float, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """CutMix: with probability p, paste a random box of the next sample in the batch into each sample.

    Returns (images, own): own[i] is the share of sample i's pixels still its own, the weight of its
    label in the loss (the rest goes to the next sample's label, in nas/train.py). The batch is
    already in random order, so the next sample is a random partner. Box area ~ uniform (Beta(1, 1)).
    """
    b, _, h, w = x.shape
    dev = x.device
    mixed = torch.rand(b, device=dev, generator=generator) < p
    side = torch.rand(b, device=dev, generator=generator).sqrt()  # box side / image side
    hs, ws = (side * h).long(), (side * w).long()
    top = torch.randint(0, h, (b,), device=dev, generator=generator) - hs // 2
    left = torch.randint(0, w, (b,), device=dev, generator=generator) - ws // 2
    box = box_mask(h, w, top, left, hs, ws) & mixed[:, None, None, None]
    own = 1 - box.sum((1, 2, 3)) / (h * w)
    return torch.where(box, x.roll(1, 0), x), own


def apply(x: torch.Tensor, policy: Augment, generator: torch.Generator | None = None) -> torch.Tensor:
    """The training-time policy: crop and stretch, translate, mirror, erase."""
    x = random_resized_crop(x, policy.resized_crop, generator)
    x = random_crop(x, policy.crop_pad, generator)
    if policy.flip:
        x = random_flip(x, generator)
    return random_cutout(x, policy.cutout, generator)
