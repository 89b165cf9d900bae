"""The training loop. Knows nothing about Optuna: the search passes `on_epoch` to prune.

Fast on 2 CPU cores (and on a GPU) because the data never leaves the device as uint8
tensors, augmentation is batched, activations are channels_last, and matmuls run in bf16
where the hardware does bf16 natively (CUDA, or a CPU with AVX512_BF16 / AMX).
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from nas import augment, cores, machine, models
from nas.config import Recipe
from nas.data import Split, Splits
from nas.errors import UsageError

EVAL_BATCH = 1000  # images per forward pass when scoring


@dataclass
class TrainResult:
    status: str  # "completed", "stopped" (on_epoch asked to stop) or "diverged" (NaN/inf loss)
    history: list[dict] = field(default_factory=list)  # one dict per epoch, see train()
    seconds: float = 0.0  # training time, evaluation excluded
    score_seconds: float = 0.0  # time spent scoring the validation split
    precision: str = "fp32"
    reason: str = ""
    batch: int = 0  # images per optimiser step
    train_images: int = 0  # images per epoch
    device: str = ""

    @property
    def val_acc(self) -> float:
        return self.history[-1]["val_acc"] if self.history else float("nan")

    @property
    def images_per_second(self) -> float:
        """Training throughput: what a longer training of the same model on the same machine will see."""
        return sum(h["steps"] for h in self.history) * self.batch / max(self.seconds, 1e-9)


# ---------------------------------------------------------------- how long to train

@dataclass(frozen=True)
class ByEpochs:
    """Train for a number of epochs; the lr follows the step count (reproducible step for step)."""

    epochs: int

    def progress(self, step: int, seconds: float, steps_per_epoch: int) -> float:
        return step / (steps_per_epoch * self.epochs)

    def lr_factor(self, step: int, seconds: float, steps_per_epoch: int, recipe: Recipe) -> float:
        return lr_factor(step, steps_per_epoch * self.epochs, recipe)

    def finished(self, step: int, seconds: float, steps_per_epoch: int) -> bool:
        return step >= steps_per_epoch * self.epochs


@dataclass(frozen=True)
class ByClock:
    """Train for a number of seconds (compilation included, scoring not): the lr follows the clock, so
    the run ends annealed whatever the machine's speed, its last epoch cut short. Not reproducible step
    for step."""

    seconds: float

    def progress(self, step: int, seconds: float, steps_per_epoch: int) -> float:
        return seconds / self.seconds

    def lr_factor(self, step: int, seconds: float, steps_per_epoch: int, recipe: Recipe) -> float:
        return timed_lr_factor(seconds / self.seconds, recipe)

    def finished(self, step: int, seconds: float, steps_per_epoch: int) -> bool:
        return seconds >= self.seconds


# ---------------------------------------------------------------- checkpoints (one safetensors file, no pickle)

CHECKPOINT = "state.safetensors"  # inside the checkpoint folder


def save_checkpoint(folder: Path, model, ema, optimizer, schedule, gen, result: TrainResult) -> None:
    """Tensors and counters in one file, written aside, fsynced and renamed once: a kill at any moment
    leaves either the previous epoch's checkpoint or this one, never a mix of the two."""
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    if ema:
        tensors.update({f"ema.{k}": v for k, v in ema.model.state_dict().items()})
    for i, p in enumerate(p for g in optimizer.param_groups for p in g["params"]):
        for name, value in optimizer.state.get(p, {}).items():
            if torch.is_tensor(value):
                tensors[f"optim.{i}.{name}"] = value
    tensors["generator"] = gen.get_state()
    counters = {"epoch": len(result.history), "history": result.history, "seconds": result.seconds,
                "ema_steps": ema.steps if ema else 0, "schedule_steps": schedule.last_epoch}
    folder.mkdir(parents=True, exist_ok=True)
    aside = folder / (CHECKPOINT + ".tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, aside,
              metadata={"counters": json.dumps(counters)})
    with open(aside, "rb") as f:
        os.fsync(f.fileno())
    os.replace(aside, folder / CHECKPOINT)
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a power cut
    finally:
        os.close(directory)


def load_checkpoint(folder: Path, with_tensors: bool = True) -> dict | None:
    """The saved counters (epoch, history, ...) and, with_tensors, the tensors; None when there is none."""
    from safetensors import safe_open

    if not (folder / CHECKPOINT).exists():
        return None
    with safe_open(folder / CHECKPOINT, framework="pt") as f:
        counters = (f.metadata() or {}).get("counters")
        if counters is None:  # written before the counters moved into the file: beside it, in state.json
            counters = (folder / "state.json").read_text()
        saved = json.loads(counters)
        if with_tensors:
            saved["tensors"] = {k: f.get_tensor(k) for k in f.keys()}
    return saved


def restore_state(saved: dict, model, ema, optimizer, schedule, gen, result: TrainResult) -> int:
    """Put a checkpoint back; returns the first epoch still to run."""
    tensors = saved["tensors"]
    device = next(model.parameters()).device
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    if ema:
        ema.model.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
        ema.steps = saved["ema_steps"]
    for i, p in enumerate(p for g in optimizer.param_groups for p in g["params"]):
        state = {k.split(".", 2)[2]: v.to(device) for k, v in tensors.items() if k.startswith(f"optim.{i}.")}
        if state:
            optimizer.state[p] = state
    result.history, result.seconds = saved["history"], saved["seconds"]  # before the lr: a timed schedule reads them
    schedule.last_epoch = saved["schedule_steps"]
    for group, base in zip(optimizer.param_groups, schedule.base_lrs):
        group["lr"] = base * schedule.lr_lambdas[0](schedule.last_epoch)
    gen.set_state(tensors["generator"])
    return saved["epoch"] + 1


# ---------------------------------------------------------------- device and precision

def resolve_device(spec: str = "auto") -> torch.device:
    if spec in ("auto", None):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {spec}: no CUDA GPU is visible; use --device cpu")
    try:
        return torch.device(spec)
    except RuntimeError:
        raise UsageError(f"--device {spec!r} is not a device; use cpu, cuda or cuda:N") from None


def cpu_has_native_bf16() -> bool:
    return bool({"avx512_bf16", "amx_bf16"} & machine.cpu_flags())


def pick_precision(device: torch.device, precision: str = "auto") -> str:
    """bf16 autocast where the hardware computes it natively; fp32 elsewhere (emulated bf16 is slower)."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"


def autocast(device: torch.device, precision: str):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


# ---------------------------------------------------------------- pieces of the loop

def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """Weight decay on conv/linear weights only; BatchNorm and biases are left alone."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    lr = recipe.lr * recipe.batch_size / 256  # linear scaling rule
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=(recipe.momentum, 0.999))
    return torch.optim.SGD(groups, lr=lr, momentum=recipe.momentum, nesterov=True)


def lr_factor(step: int, total: int, recipe: Recipe) -> float:
    """Multiplier on the peak lr: linear warm-up, then linear (onecycle) or cosine decay to 0."""
    warm = max(1, int(recipe.warmup * total))
    if step < warm:
        return (step + 1) / warm
    return decay((step - warm) / max(1, total - warm), recipe)


def timed_lr_factor(used: float, recipe: Recipe) -> float:
    """lr_factor for a run with a time limit: `used` is the fraction of the time spent, not of the steps."""
    if used < recipe.warmup:
        return used / recipe.warmup
    return decay(min(1.0, (used - recipe.warmup) / (1 - recipe.warmup)), recipe)


def training_side(progress: float, full: int, recipe: Recipe) -> int:
    """Progressive resizing: the side images are trained at, `progress` (0-1) into training.

    From recipe.progressive_from, up in steps of 4 pixels, reaching the full side at 3/4 of training so
    the last quarter (where the lr anneals) sees the images as they are scored. Steps of 4, not 1:
    each side is one more compilation with --compile."""
    low = recipe.progressive_from
    if not low or low >= full or progress >= 0.75:
        return full
    return low + 4 * int((full - low) * progress / 0.75 // 4)


def decay(progress: float, recipe: Recipe) -> float:
    """After the warm-up: 1 at progress 0, 0 at progress 1."""
    if recipe.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * progress))
    return 1 - progress


class EMA:
    """Exponential moving average of weights and BN statistics, used for evaluation."""

    def __init__(self, model: nn.Module, decay: float):
        self.model = copy.deepcopy(model).eval()
        self.decay = decay
        self.pairs = [(e, m) for e, m in zip(self.model.state_dict().values(), model.state_dict().values())
                      if e.dtype.is_floating_point]
        self.steps = 0

    @torch.no_grad()
    def update(self):
        self.steps += 1
        decay = min(self.decay, (1 + self.steps) / (10 + self.steps))  # warm-up: early weights fade fast
        ema, cur = zip(*self.pairs)
        torch._foreach_lerp_(list(ema), list(cur), 1 - decay)


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, tta_flip: bool, precision: str = "fp32") -> torch.Tensor:
    """Logits for uint8 images, batched; with tta_flip, averaged with the mirrored image's."""
    scored = models.deployable(model, tta_flip).eval()  # the model as shipped
    device = images.device
    out = []
    for start in range(0, len(images), EVAL_BATCH):
        x = images[start:start + EVAL_BATCH].float().contiguous(memory_format=torch.channels_last)
        with autocast(device, precision):
            out.append(scored(x).float())
    return torch.cat(out)


def accuracy(model: nn.Module, split: Split, tta_flip: bool, precision: str = "fp32") -> float:
    return (predict(model, split.images, tta_flip, precision).argmax(1) == split.labels).float().mean().item()


# ---------------------------------------------------------------- the loop

def train(model: nn.Module, data: Splits, recipe: Recipe, device: str | torch.device = "auto",
          precision: str = "auto", on_epoch: Callable[[int, dict], bool | None] | None = None,
          on_step: Callable[[int, int, int], None] | None = None,
          eval_epochs: set[int] | None = None, checkpoint: Path | None = None,
          compiled: bool = False, length: ByEpochs | ByClock | None = None) -> tuple[nn.Module, TrainResult]:
    """Train on data.train, score data.val after every epoch; return (model to evaluate, result).

    length: ByEpochs(n) or ByClock(seconds); None = ByEpochs(recipe.epochs).
    eval_epochs: score validation only after these epochs (and the last); None = every epoch.
    data.val None: nothing is scored (final training on train + validation); val_acc is None.
    checkpoint: a folder; the full state is saved there after every epoch, and a run that finds
    one there continues after its last epoch.
    Scoring 10,000 images twice (flip TTA) costs about a third of an epoch on 10,000 images.
    on_epoch(epoch, metrics) runs after each epoch (1-based); returning True stops training.
    on_step(epoch, step, steps) runs after each optimiser step (progress bars).
    compiled: run the training forward/backward through torch.compile (fuses BatchNorm and activations;
    tens of seconds of compilation up front, so worth it for long runs only; see benchmarks/compile_speed.py).
    The returned model is the EMA model when recipe.ema > 0.
    """
    run = Run(model, data.train, recipe, device, precision, compiled, length or ByEpochs(recipe.epochs))
    if checkpoint and (saved := load_checkpoint(checkpoint)):
        run.epoch = restore_state(saved, run.model, run.ema, run.optimizer, run.schedule, run.gen, run.result)
    while run.result.status == "completed" and not run.finished(run.result.seconds):
        metrics = run.one_epoch(on_step)
        if metrics is not None:  # None: diverged
            metrics["val_acc"] = run.score(data.val, eval_epochs)
            run.result.history.append(metrics)
            if checkpoint:
                save_checkpoint(checkpoint, run.model, run.ema, run.optimizer, run.schedule, run.gen, run.result)
            if on_epoch and on_epoch(run.epoch, metrics):
                run.result.status = "stopped"
            run.epoch += 1
    return run.scored, run.result


class Run:
    """One training's state: the model, its optimiser, schedule and EMA, and where it stands."""

    def __init__(self, model: nn.Module, split: Split, recipe: Recipe, device, precision: str, compiled: bool,
                 length: ByEpochs | ByClock):
        self.device = resolve_device(device) if isinstance(device, str) else device
        self.precision = pick_precision(self.device, precision)
        if compiled and self.device.type == "cpu" and not any(map(shutil.which, (os.environ.get("CXX", "g++"), "clang++"))):
            raise UsageError("--compile needs a C++ compiler and Python's headers on a CPU; install them "
                             "(Debian: apt-get install g++ python3-dev) or leave --compile out")
        torch.manual_seed(recipe.seed)
        self.gen = torch.Generator(device=self.device).manual_seed(recipe.seed)
        self.model = model.to(self.device, memory_format=torch.channels_last)
        self.optimizer = make_optimizer(self.model, recipe)
        # same parameters: EMA and checkpoints see no difference. dynamic=False: progressive resizing gives a
        # few fixed sizes, and one static graph each is faster than one dynamic graph for all
        self.forward = torch.compile(self.model, dynamic=False) if compiled else self.model
        self.split, self.recipe, self.length = split, recipe, length
        self.batch = min(recipe.batch_size, len(split.labels))
        self.steps = len(split.labels) // self.batch  # drop the ragged last batch: steady shapes and BN statistics
        self.result = TrainResult(status="completed", precision=self.precision, batch=self.batch,
                                  train_images=len(split.labels), device=str(self.device))
        self.started = time.perf_counter()  # of the current epoch
        # the scheduler's step counter (last_epoch) counts optimiser steps over the whole run
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: length.lr_factor(s, self.spent(), self.steps, recipe))
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing, reduction="none")
        self.ema = EMA(self.model, recipe.ema) if recipe.ema > 0 else None
        self.epoch = 1

    @property
    def scored(self) -> nn.Module:
        return self.ema.model if self.ema else self.model

    def spent(self) -> float:
        """Training seconds so far, the current epoch included."""
        return self.result.seconds + time.perf_counter() - self.started

    def finished(self, seconds: float) -> bool:
        return self.length.finished(self.schedule.last_epoch, seconds, self.steps)

    def one_epoch(self, on_step) -> dict | None:
        """Train one epoch (a clock run's last one cut short); its metrics, or None when the loss diverged."""
        self.model.train()
        self.started = time.perf_counter()
        progress = self.length.progress(self.schedule.last_epoch, self.result.seconds, self.steps)
        side = training_side(progress, self.split.images.shape[-1], self.recipe)
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        order = torch.randperm(len(self.split.labels), device=self.device, generator=self.gen)
        done = 0
        while done < self.steps and self.result.status == "completed":
            loss, right = self.step(order[done * self.batch:(done + 1) * self.batch], side)
            loss_sum += loss
            correct += right
            done += 1
            if on_step:
                on_step(self.epoch, done, self.steps)
            cores.let_timing_in()  # a latency timing waiting for the cores gets them now, for seconds
            if (done % 20 == 1 or done == self.steps) and not torch.isfinite(loss_sum):
                self.result.status = "diverged"
                self.result.reason = f"loss became {loss_sum.item()} in epoch {self.epoch}, step {done}"
            elif self.finished(self.spent()):  # a clock run's last epoch, cut short
                break
        seconds = time.perf_counter() - self.started
        self.result.seconds += seconds
        return None if self.result.status == "diverged" else {
            "epoch": self.epoch, "train_loss": loss_sum.item() / done, "train_acc": correct.item() / (done * self.batch),
            "val_acc": None, "seconds": seconds, "lr": self.optimizer.param_groups[0]["lr"], "steps": done,
            "side": side}

    def step(self, idx: torch.Tensor, side: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimiser step on the images `idx`, augmented and resized to `side`: (loss, correct)."""
        x = augment.apply(self.split.images[idx], self.recipe.augment, self.gen)
        y = self.split.labels[idx]
        own = None
        if self.recipe.augment.cutmix:
            x, own = augment.cutmix(x, self.recipe.augment.cutmix, self.gen)
        x = x.float()
        if side != x.shape[-1]:  # antialiased, as a camera further away would see it
            x = nn.functional.interpolate(x, size=(side, side), mode="bilinear", antialias=True)
        x = x.contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.precision):
            logits = self.forward(x).float()
            per_sample = self.loss_fn(logits, y)
            if own is not None:  # CutMix: each label weighted by its share of the pixels
                per_sample = own * per_sample + (1 - own) * self.loss_fn(logits, y.roll(1, 0))
            loss = per_sample.mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.schedule.step()
        if self.ema:
            self.ema.update()
        return loss.detach(), (logits.argmax(1) == y).sum()

    def score(self, val: Split | None, eval_epochs: set[int] | None) -> float | None:
        """Validation accuracy after this epoch, if it is a scoring epoch (or the last)."""
        last = self.finished(self.result.seconds)
        started = time.perf_counter()
        scoring = val is not None and (eval_epochs is None or self.epoch in eval_epochs or last)
        val_acc = accuracy(self.scored, val, self.recipe.tta_flip, self.precision) if scoring else None
        self.result.score_seconds += time.perf_counter() - started
        return val_acc
