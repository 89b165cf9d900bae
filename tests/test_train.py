import math

import pytest
import torch

from nas import models, train
from nas.config import Augment, Recipe

TINY = {"family": "resnet_like", "stem": {"width": 8, "kernel": 3}, "activation": "relu", "dropout": 0.0,
        "stages": [{"block": "basic", "depth": 1, "width": 16, "kernel": 3, "se": False, "downsample": True},
                   {"block": "inverted", "depth": 1, "width": 24, "kernel": 3, "se": True, "expansion": 2,
                    "downsample": True}]}
FAST = Recipe(epochs=3, batch_size=64, lr=0.4, augment=Augment(crop_pad=2, flip=True, cutout=4))


def test_tiny_model_learns_on_real_images(small):
    model, result = train.train(models.build(TINY), small, FAST.replace(epochs=6), device="cpu")
    assert result.status == "completed" and len(result.history) == 6
    assert result.val_acc > 0.35  # 10 classes: chance is 0.1; 48 steps on 512 images
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert set(result.history[0]) >= {"epoch", "train_loss", "train_acc", "val_acc", "seconds", "lr"}
    assert result.history[-1]["lr"] == pytest.approx(0.0, abs=1e-6)  # the one-cycle ends at zero


def test_tiny_model_learns_with_cutmix(small):
    # every sample mixed: the loss splits each sample's weight between its own and its neighbour's label
    recipe = FAST.replace(epochs=6, augment=Augment(crop_pad=2, flip=True, cutmix=1.0))
    _, result = train.train(models.build(TINY), small, recipe, device="cpu")
    assert result.status == "completed" and result.val_acc > 0.3
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_progressive_resizing_grows_to_full_size_for_the_last_quarter(small):
    r = Recipe(progressive_from=20)
    sides = [train.training_side(p / 100, 28, r) for p in range(101)]
    assert sides[0] == 20 and sides[50] == 24 and sides[74] == 24 and sides[75:] == [28] * 26
    assert sides == sorted(sides) and all(s % 4 == 0 for s in sides)  # steps of 4: few sizes to compile
    assert train.training_side(0.0, 28, Recipe()) == 28  # off by default

    recipe = FAST.replace(epochs=4, progressive_from=12)
    _, result = train.train(models.build(TINY), small, recipe, device="cpu")
    assert [h["side"] for h in result.history] == [12, 16, 20, 28]  # at 0, 1/4, 1/2, 3/4 of the epochs
    assert result.status == "completed" and result.val_acc > 0.2  # scored at full size


def test_fixed_seed_reproduces(small):
    runs = [train.train(models.build(TINY), small, FAST.replace(epochs=1), device="cpu", precision="fp32")[1]
            for _ in range(2)]
    assert runs[0].history[0]["train_loss"] == runs[1].history[0]["train_loss"]
    assert runs[0].val_acc == runs[1].val_acc


def test_on_epoch_can_stop_training(small):
    seen = []

    def on_epoch(epoch, metrics):
        seen.append(epoch)
        return epoch == 2

    _, result = train.train(models.build(TINY), small, FAST.replace(epochs=5), device="cpu", on_epoch=on_epoch)
    assert seen == [1, 2] and result.status == "stopped" and len(result.history) == 2


def test_divergence_stops_with_a_status(small):
    steps = []
    _, result = train.train(models.build(TINY), small, FAST.replace(lr=1e9, epochs=4, label_smoothing=0.0),
                            device="cpu", on_step=lambda e, s, n: steps.append(e))
    assert result.status == "diverged" and "loss became" in result.reason
    assert len(steps) < 4 * (512 // 64)  # it did not train on


@pytest.mark.parametrize("optimizer, schedule", [("sgd", "cosine"), ("adamw", "onecycle")])
def test_optimizers_and_schedules_run(small, optimizer, schedule):
    recipe = FAST.replace(epochs=1, optimizer=optimizer, schedule=schedule, lr=0.003 if optimizer == "adamw" else 0.2)
    _, result = train.train(models.build(TINY), small, recipe, device="cpu")
    assert result.status == "completed" and math.isfinite(result.val_acc)


def test_schedule_warms_up_then_decays():
    r = Recipe(warmup=0.2)
    factors = [train.lr_factor(s, 100, r) for s in range(100)]
    assert factors[0] < factors[10] < factors[19] == 1.0
    assert factors[19] > factors[60] > factors[99] >= 0
    cos = [train.lr_factor(s, 100, r.replace(schedule="cosine")) for s in range(100)]
    assert cos[19] == 1.0 and cos[99] < 0.01


def test_a_timed_schedule_follows_the_fraction_of_the_time_spent():
    r = Recipe(warmup=0.2)
    assert train.timed_lr_factor(0.0, r) == 0.0 and train.timed_lr_factor(0.1, r) == pytest.approx(0.5)
    assert train.timed_lr_factor(0.2, r) == 1.0 and train.timed_lr_factor(0.6, r) == pytest.approx(0.5)
    assert train.timed_lr_factor(1.0, r) == 0.0 and train.timed_lr_factor(1.5, r) == 0.0  # past the limit: still 0


def test_a_time_limit_trains_until_the_time_is_up_and_ends_annealed(small):
    recipe = FAST.replace(epochs=1)  # ignored under a time limit
    _, result = train.train(models.build(TINY), small, recipe, device="cpu", length=train.ByClock(3.0))
    steps = 512 // 64
    assert result.status == "completed" and result.seconds >= 3.0 and math.isfinite(result.val_acc)
    assert len(result.history) > 1 or result.history[0]["steps"] < steps  # the clock ended it, not the epochs
    assert [h["epoch"] for h in result.history] == list(range(1, len(result.history) + 1))
    assert result.history[-1]["lr"] < 0.05 * recipe.lr * recipe.batch_size / 256  # annealed when the time ran out
    assert 1 <= result.history[-1]["steps"] <= steps  # the last epoch may be cut short


def test_ema_tracks_the_weights():
    model = torch.nn.Linear(2, 2)
    ema = train.EMA(model, decay=0.5)
    with torch.no_grad():
        model.weight.add_(1.0)
    for _ in range(50):
        ema.update()
    assert torch.allclose(ema.model.weight, model.weight, atol=1e-4)


def test_flip_tta_averages_the_mirror(small):
    model = models.build(TINY).eval()
    x = small.val.images[:8]
    both = train.predict(model, x, tta_flip=True)
    plain = train.predict(model, x, tta_flip=False)
    mirror = train.predict(model, x.flip(3), tta_flip=False)
    assert torch.allclose(both, (plain + mirror) / 2, atol=1e-5)


def test_precision_follows_the_hardware():
    cpu = torch.device("cpu")
    assert train.pick_precision(cpu, "fp32") == "fp32"
    assert train.pick_precision(cpu) == ("bf16" if train.cpu_has_native_bf16() else "fp32")


def test_bad_recipe_is_a_user_error():
    from nas.errors import UsageError

    with pytest.raises(UsageError, match="optimizer must be"):
        Recipe(optimizer="lamb")
    with pytest.raises(UsageError, match="weight_decay must be >= 0"):  # `nas train --weight-decay -1`
        Recipe(weight_decay=-1e-4)
    with pytest.raises(UsageError, match="cutmix must be a probability"):  # `--augment cutmix=5`
        Recipe(augment=Augment(cutmix=5.0))
    with pytest.raises(UsageError, match="progressive_from must be 0"):
        Recipe(progressive_from=4)
    with pytest.raises(UsageError, match="unknown key 'lrate'"):
        Recipe.from_dict({"lrate": 0.1})
