"""`nas export` and `nas evaluate`: from a trial on the front to files someone can ship.

export: pick a trial -> rebuild its exact model -> retrain it on train + validation with the final
schedule and augmentation (checkpointed every epoch, so an interrupted export resumes) -> write model.onnx,
model.pt2 (torch.export), weights.safetensors + arch.json -> score the test split once, from
the written files -> metrics.json and a model card.
evaluate: the same scoring, from the files alone (no `nas` builder), compared with metrics.json.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nas.config import PICKS, Augment, Budget, DataConfig, ExportConfig, Inputs, builtin_inputs, parse_augment
from nas.errors import NasError, UsageError
from nas.records import Kind, StudySettings, TrialRecord

def contract(inputs) -> tuple[dict, dict]:
    """What the exported model takes and gives, written into arch.json, metrics.json and the ONNX metadata."""
    colour = "one grey channel" if inputs.channels == 1 else "three RGB channels"
    given = {"name": "pixels", "shape": ["batch", *inputs.shape], "dtype": "float32", "range": "0-255 (raw pixels)",
             "layout": f"NCHW, {colour}; normalisation is inside the model", "channels": inputs.channels,
             "image_size": inputs.size}
    gives = {"name": "logits", "shape": ["batch", len(inputs.classes)], "dtype": "float32",
             "meaning": "unnormalised class scores; argmax is the prediction", "classes": list(inputs.classes)}
    return given, gives


def dataset_name(dataset: str) -> str:
    """'fashion-mnist' -> 'Fashion-MNIST'; a path -> its last part."""
    return {"fashion-mnist": "Fashion-MNIST", "mnist": "MNIST", "kmnist": "KMNIST"}.get(dataset, Path(dataset).name)
BATCH = 1000  # test images per call when scoring the files
LATENCY_REPEATS = 5  # separate timing runs (of 200 calls each) behind an export's latency figure


# ---------------------------------------------------------------- the final recipe
def final_augment(searched: Augment, choice: str, may_mirror: bool) -> Augment:
    """The final training's augmentation.

    "final" (the default): the trial's, with random mirroring on wherever the space let the search draw
    it. A search's short trainings cannot show overfitting, so the search often leaves augmentation out,
    and a long export of such a trial memorises the training set (measured on validation, trial 25 of the
    second headline run at 40 epochs: 0.9285 as drawn, 0.9362 mirrored; README). A space that fixes
    `flip: false` (digits, text) keeps it off.
    "search": the trial's as drawn. "crop=2,flip=1,cutout=8" (any parts): those over the trial's.
    """
    if choice == "search":
        return searched
    if choice == "final":
        return replace(searched, flip=searched.flip or may_mirror)
    return replace(searched, **parse_augment(choice, "--augment"))


def mirroring_allowed(record) -> bool:
    """Whether the trial's space could draw random mirroring (its `aug_flip` choices include true)."""
    drawn = record.distributions.get("aug_flip")
    return drawn is not None and True in getattr(drawn, "choices", ())


# ---------------------------------------------------------------- choosing the trial

def exportable(study) -> dict:
    """Architecture number -> the TrialRecord of its highest completed rung, for trained, feasible trials
    (a reused trial shares its original's arch and recipe, so it may be named too)."""
    from optuna.trial import TrialState

    from nas.pruning import rungs_of

    best = {}
    for rung, rung_study in enumerate(rungs_of(study)):
        for t in rung_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            record = TrialRecord.of(t, rung)
            if (record.trained or record.kind == Kind.REUSED) and record.feasible:
                best[record.number] = record
    return best


def knee(records: list, objectives: list[str]) -> object:
    """The front's knee: each objective scaled to [0, 1] over the front (costs on a log scale,
    0 = the front's best), then the record closest (Euclidean) to the ideal point where all are 0."""
    values = np.array([r.values for r in records], dtype=float)
    for j, name in enumerate(objectives):
        column = -values[:, j] if name == "accuracy" else np.log10(np.maximum(values[:, j], 1e-12))
        span = column.max() - column.min()
        values[:, j] = (column - column.min()) / span if span > 0 else 0.0
    return records[int(np.argmin(np.linalg.norm(values, axis=1)))]


def choose(study, number: int | None, pick: str):
    """The TrialRecord to export: trial `number` at its highest rung, or `pick` on the highest rung's front."""
    from nas.results import front

    ok = exportable(study)
    on_front = front(study)
    valid = (f"the front: {', '.join(str(r.number) for r in on_front) or 'empty'}; "
             f"any of the {len(ok)} completed feasible trials also works")
    if number is None:
        if not on_front:
            raise NasError(f"study {study.study_name} has no completed feasible trial yet; run nas search first")
        if pick not in PICKS:
            raise UsageError(f"--pick {pick!r}: choose best or knee")
        top_rung = [r for r in on_front if r.rung == on_front[0].rung]  # compared at one budget only
        return top_rung[0] if pick == "best" else knee(top_rung, StudySettings.of(study).objectives)
    if number in ok:
        return ok[number]
    by_number = {t.number: TrialRecord.of(t) for t in study.get_trials(deepcopy=False)}
    if number not in by_number:
        raise UsageError(f"study {study.study_name} has no trial {number}; choose one on {valid}")
    kind = by_number[number].kind
    state = ("infeasible (over a limit, never trained)" if kind == Kind.INFEASIBLE
             else by_number[number].trial.state.name.lower())
    raise UsageError(f"trial {number} is {state} and cannot be exported; choose one on {valid}")


# ---------------------------------------------------------------- the exported model

def write_programs(model: nn.Module, folder: Path, metadata: dict | None = None) -> None:
    """model.onnx (with `metadata` as its metadata_props) and model.pt2, both with a dynamic batch dimension,
    taking raw pixels."""
    import onnx

    from nas import measure

    model = model.eval().float().cpu()
    measure.export_onnx(model, str(folder / "model.onnx"))
    program_onnx = onnx.load(str(folder / "model.onnx"))
    onnx.helper.set_model_props(program_onnx, {k: json.dumps(v) for k, v in (metadata or {}).items()})
    onnx.save(program_onnx, str(folder / "model.onnx"))
    batch = torch.export.Dim("batch", min=1, max=4096)
    try:
        program = torch.export.export(model, (torch.zeros(2, *measure.shape_of(model)),), dynamic_shapes=({0: batch},))
    except Exception as e:  # name the operator torch.export could not express
        raise NasError(f"torch.export cannot express this model: {type(e).__name__}: "
                       f"{str(e).strip().splitlines()[0][:300]}") from None
    torch.export.save(program, str(folder / "model.pt2"))


def score_files(folder: Path, test, threads: int = 1) -> dict:
    """Test accuracy of model.onnx and model.pt2 from the files alone, their agreement, their latency."""
    from nas import cores, measure

    images = test.images.float().numpy()
    labels = test.labels.numpy()
    program = torch.export.load(str(folder / "model.pt2")).module()
    # scoring 10,000 images is heavy work too: another export's latency timing waits for it
    with cores.training(), measure.torch_threads(threads), torch.inference_mode():
        ort_pred = onnx_predictions(folder / "model.onnx", images, threads)
        torch_pred = np.concatenate([program(torch.from_numpy(images[start:start + BATCH])).argmax(1).numpy()
                                     for start in range(0, len(images), BATCH)])
    with cores.timing():  # never while another nas process trains or scores on these cores
        latency = {"onnxruntime": repeated(lambda: measure.onnx_latency(str(folder / "model.onnx"), threads=threads)),
                   "torch": repeated(lambda: measure.torch_latency(program, tuple(test.images.shape[1:]), threads=threads))}
    return {"test_images": len(labels),
            "test_acc_onnxruntime": float((ort_pred == labels).mean()),
            "test_acc_torch": float((torch_pred == labels).mean()),
            "onnx_torch_agreement": float((ort_pred == torch_pred).mean()),
            "latency": latency}


def onnx_predictions(path: Path, images: np.ndarray, threads: int = 1) -> np.ndarray:
    """The class onnxruntime picks for each image (float32 raw pixels), batch by batch."""
    from nas import measure

    session = measure.ort_session(path, threads)
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: images[start:start + BATCH]})[0].argmax(1)
                           for start in range(0, len(images), BATCH)])


def score_int8(folder: Path, train_images: np.ndarray, test, threads: int = 1) -> dict:
    """Quantise model.onnx into model.int8.onnx (calibrated on training images), score it on the same test
    images and time it the same way as model.onnx: what `metrics.json` and the card show beside fp32."""
    from nas import cores, measure, quantize

    fp32, int8 = folder / "model.onnx", folder / quantize.INT8_FILE
    images, labels = test.images.float().numpy(), test.labels.numpy()
    with cores.training():
        quantize.quantize(fp32, int8, quantize.calibration_images(train_images))
        fp32_pred, int8_pred = onnx_predictions(fp32, images, threads), onnx_predictions(int8, images, threads)
    with cores.timing():
        latency = repeated(lambda: measure.onnx_latency(str(int8), threads=threads))
    fp32_acc, int8_acc = float((fp32_pred == labels).mean()), float((int8_pred == labels).mean())
    return {"test_acc": int8_acc, "fp32_agreement": float((int8_pred == fp32_pred).mean()), "latency": latency,
            "size_bytes": int8.stat().st_size, "fp32_size_bytes": fp32.stat().st_size,
            "calibration_images": quantize.CALIBRATION_IMAGES, "reduce_range": not quantize.has_vnni(),
            "warning": quantize.verdict(fp32_acc, int8_acc, fp32)}


def repeated(time_once, repeats: int = LATENCY_REPEATS) -> dict:
    """Latency from several separate timing runs: one run's IQR understates how much the median moves
    from run to run, so the stated spread is the range of the runs' medians widened by their IQR."""
    runs = [time_once() for _ in range(repeats)]
    medians = sorted(r["median_ms"] for r in runs)
    iqr = float(np.median([r["iqr_ms"] for r in runs]))
    return {**runs[0], "median_ms": float(np.median(medians)), "iqr_ms": iqr, "repeat_medians_ms": medians,
            "spread_ms": [medians[0] - iqr, medians[-1] + iqr], "runs": sum(r["runs"] for r in runs)}


# ---------------------------------------------------------------- provenance

def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if commit.returncode != 0:
        return None
    return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("nas", "torch", "onnxruntime", "onnx", "optuna", "numpy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


# ---------------------------------------------------------------- export

def files_sha256(folder: Path) -> dict[str, str]:
    """The checksums `nas evaluate` checks: every file that ships, the int8 model where there is one."""
    from nas.quantize import INT8_FILE

    names = ("model.onnx", "model.pt2", "weights.safetensors", "arch.json", INT8_FILE)
    return {name: sha256(folder / name) for name in names if (folder / name).exists()}


def default_folder(study: str, trial: int) -> Path:
    return Path("studies") / study / "exports" / f"trial-{trial}"


def prepare_folder(folder: Path, settings: dict, force: bool) -> None:
    """A finished export is refused unless --force; an unfinished one with the same settings resumes."""
    saved = folder / "checkpoint" / "settings.json"
    if folder.exists() and force:
        shutil.rmtree(folder)
    elif (folder / "metrics.json").exists():
        raise UsageError(f"export folder {folder} already exists; pass --force to replace it, or --out for another")
    elif saved.exists() and json.loads(saved.read_text()) != settings:
        raise UsageError(f"{folder} holds an unfinished export with other settings; run it again with the same "
                         f"arguments to resume it, or pass --force to start over")
    elif folder.exists() and not saved.exists() and any(folder.iterdir()):
        raise UsageError(f"export folder {folder} exists and is not an nas export; pass --force or --out")
    saved.parent.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps(settings, indent=2))


@dataclass(frozen=True)
class Plan:
    """What an export trains and writes, fixed before it starts."""

    chosen: object  # the TrialRecord exported
    objectives: tuple[str, ...]
    recipe: object  # config.Recipe of the final training
    data: DataConfig  # the study's data, on train + validation
    inputs: Inputs  # the study's shape, classes and normalisation
    folder: Path

    @property
    def contract(self) -> tuple[dict, dict]:
        return contract(self.inputs)


def plan(study, config: ExportConfig) -> Plan:
    from nas.config import Recipe

    chosen = choose(study, config.trial, config.pick)
    settings = StudySettings.of(study)
    recipe = Recipe.from_dict(chosen.recipe)
    recipe = recipe.replace(epochs=config.epochs, seed=recipe.seed if config.seed is None else config.seed,
                            augment=final_augment(recipe.augment, config.augment, mirroring_allowed(chosen)))
    data_config = DataConfig(dataset=settings.dataset, data_dir=config.data_dir, val_size=settings.val_size,
                             split_seed=settings.split_seed, subset=config.subset, image_size=settings.image_size,
                             skip_bad=settings.skip_bad)
    # the study's own: shape, classes and the normalisation measured when it began
    inputs = Inputs.from_dict(settings.inputs) if settings.inputs else builtin_inputs(settings.dataset)
    folder = Path(config.out) if config.out else default_folder(config.study, chosen.number)
    return Plan(chosen=chosen, objectives=settings.objectives, recipe=recipe, data=data_config, inputs=inputs,
                folder=folder)


def export(config: ExportConfig, on_epoch=None, on_step=None, say=print) -> tuple[Path, dict]:
    """Retrain the chosen trial on train + validation, write the files, score them on the test split."""
    from nas import data, models, storage
    from nas.report import plot_study

    study = storage.load_study(config.study, config.storage)
    p = plan(study, config)
    settings = {"study": config.study, "trial": p.chosen.number, "arch": p.chosen.arch, "recipe": p.recipe.to_dict(),
                "data": p.data.__dict__ | {"data_dir": None}}
    if config.minutes:  # only then, so an unfinished export begun before --minutes existed still resumes
        settings["minutes"] = config.minutes
    prepare_folder(p.folder, settings, config.force)
    commit = git_commit()  # the code that trains, not whatever is checked out when the files are written
    trained, result, splits = train_final(p, config, on_epoch, on_step, say)
    recipe = p.recipe.replace(epochs=len(result.history))  # what a --minutes run managed (its last epoch cut short)
    write_files(p, trained, recipe)
    test, test_files = data.load_test(p.data)  # every choice is frozen: the test split is read now, once
    scores = score_files(p.folder, test, config.latency_threads)
    if scores["onnx_torch_agreement"] < 0.999:
        raise NasError(f"onnxruntime and PyTorch agree on only {scores['onnx_torch_agreement']:.2%} of test images "
                       f"(needs >= 99.9%); the export in {p.folder} is not trustworthy")
    if config.int8:
        scores["int8"] = score_int8(p.folder, splits.train.images.cpu().numpy(), test, config.latency_threads)
    metrics = collect_metrics(p, config, trained, recipe, result, scores,
                              {"git_commit": commit, "dataset_files_sha256": {**splits.files, **test_files}})
    plot_study(study, p.objectives, p.folder, highlight=p.chosen.number, with_hypervolume=False)
    (p.folder / "README.md").write_text(model_card(metrics, p.chosen.arch, models.summary(p.chosen.arch)))
    (p.folder / "metrics.json").write_text(json.dumps(metrics, indent=2))  # written last: marks the export done
    shutil.rmtree(p.folder / "checkpoint")
    return p.folder, metrics


def train_final(p: Plan, config: ExportConfig, on_epoch, on_step, say):
    """The final training on train + validation, resumed from its checkpoint: (model, TrainResult, splits)."""
    from nas import cores, data, models, train

    checkpoint = p.folder / "checkpoint"
    resumed = (train.load_checkpoint(checkpoint, with_tensors=False) or {"epoch": 0})["epoch"]
    length = f"{config.minutes:g} minutes" if config.minutes else f"{p.recipe.epochs} epochs"
    say(f"exporting trial {p.chosen.number} of study {config.study} (its rung {p.chosen.rung} result: validation "
        f"{p.chosen.accuracy:.4f} after {Budget(**p.chosen.fidelity)}): {models.summary(p.chosen.arch)}; "
        f"{length} on train + validation" + (f", resuming after epoch {resumed}" if resumed else ""))
    device = train.resolve_device(config.device)
    splits = data.load(p.data, device=device, final=True)  # no test split while anything is chosen
    speed = p.chosen.train_images_per_second  # measured while the search trained it
    if speed and not config.minutes:
        minutes = (p.recipe.epochs - resumed) * len(splits.train) / speed / 60
        say(f"expected training time: about {minutes:.0f} min at the {speed:.0f} images/s the search measured "
            f"(with --jobs, or on a busy machine, the search ran slower than an export alone)")
    model = models.build(p.chosen.arch, p.inputs, seed=p.recipe.seed)
    with cores.training():
        trained, result = train.train(model, splits, p.recipe, device, on_epoch=on_epoch, on_step=on_step,
                                      checkpoint=checkpoint, compiled=config.compile,
                                      length=train.ByClock(config.minutes * 60) if config.minutes else None)
    if result.status == "diverged":
        raise NasError(f"final training diverged ({result.reason}); try --seed or a lower learning rate "
                       f"(the checkpoint is kept; --force starts over)")
    trained = trained.float().cpu().to(memory_format=torch.contiguous_format).eval()  # as built, not as trained
    return trained, result, splits


def write_files(p: Plan, trained: nn.Module, recipe) -> None:
    """model.onnx, model.pt2 (both with the flip TTA when the recipe uses it), weights and arch.json."""
    from safetensors.torch import save_file

    from nas import models

    given, gives = p.contract
    deployed = models.deployable(trained, recipe.tta_flip)
    write_programs(deployed, p.folder, {"input": given, "output": gives, "dataset": dataset_name(p.data.dataset)})
    save_file({k: v.contiguous() for k, v in trained.state_dict().items()}, p.folder / "weights.safetensors")
    (p.folder / "arch.json").write_text(json.dumps({"arch": p.chosen.arch, "recipe": recipe.to_dict(),
                                                    "tta_flip": recipe.tta_flip, "input": given, "output": gives,
                                                    "inputs": p.inputs.to_dict()}, indent=2))


def collect_metrics(p: Plan, config: ExportConfig, trained, recipe, result, scores: dict, provenance: dict) -> dict:
    """metrics.json: the scores, what was trained and how, and where every input came from."""
    from nas import machine, measure, models, storage

    given, gives = p.contract
    deployed = models.deployable(trained, recipe.tta_flip)
    return {
        "test_acc": scores["test_acc_onnxruntime"], **scores,
        "params": measure.count_params(trained), "macs": measure.count_macs(deployed)[0],  # what runs per image
        "macs_per_pass": measure.count_macs(trained)[0],  # half of "macs" when the flip TTA also runs the mirror
        "train_acc": result.history[-1]["train_acc"], "epochs": recipe.epochs, "batch_size": recipe.batch_size,
        "minutes_limit": config.minutes,
        "train_seconds": round(result.seconds, 1), "seconds_per_epoch": round(result.seconds / recipe.epochs, 2),
        "train_images": result.train_images, "precision": result.precision, "device": result.device,
        "search_val_acc": p.chosen.accuracy, "search_rung": p.chosen.rung, "search_fidelity": p.chosen.fidelity,
        "classes": list(p.inputs.classes), "input": given, "output": gives, "tta_flip": recipe.tta_flip,
        "dataset_name": dataset_name(p.data.dataset), "normalisation": {"mean": p.inputs.mean, "std": p.inputs.std},
        "history": result.history,
        "provenance": {"versions": versions(), "machine": machine.describe(), **provenance, "study": config.study,
                       "storage": storage.redact(config.storage), "trial": p.chosen.number, "recipe_seed": recipe.seed,
                       "split_seed": p.data.split_seed, "dataset": p.data.dataset,
                       "image_size": p.data.image_size, "skip_bad": p.data.skip_bad,
                       "files_sha256": files_sha256(p.folder)},
    }


def machine_line(provenance: dict) -> str:
    from nas import machine

    recorded = provenance.get("machine")
    return machine.summary(recorded) if recorded else "a machine not recorded (an export older than the field)"


def int8_card(m: dict) -> str:
    """The fp32 and int8 files side by side, measured the same way; empty without an int8 file."""
    q = m.get("int8")
    if not q:
        return ""
    fp32 = m["latency"]["onnxruntime"]
    rows = [("model.onnx (fp32)", m["test_acc_onnxruntime"], fp32, q["fp32_size_bytes"]),
            ("model.int8.onnx", q["test_acc"], q["latency"], q["size_bytes"])]
    table = "\n".join(f"| `{name}` | {acc:.4f} | {lat['median_ms']:.3f} ms (IQR {lat['iqr_ms']:.3f}) | {size / 1e6:.2f} MB |"
                      for name, acc, lat, size in rows)
    warning = f"\n**Warning**: {q['warning']}\n" if q["warning"] else ""
    return f"""
## int8

Quantised statically by onnxruntime (per channel, QDQ, calibrated on {q['calibration_images']} training
images{', 7-bit weights for a CPU without VNNI' if q['reduce_range'] else ''}); both files scored on the same test images and timed the same way
(batch 1, onnxruntime, 1 thread). They agree on {q['fp32_agreement']:.2%} of the test images.

| file | test accuracy | latency | size |
| --- | --- | --- | --- |
{table}
{warning}"""


def model_card(m: dict, arch: dict, summary: str) -> str:
    from nas.report import fmt_count

    lat = m["latency"]
    p = m["provenance"]
    shape = m["input"]["shape"][1:]  # C, H, W
    kind = "grey" if shape[0] == 1 else "RGB"
    side = f"{shape[1]}x{shape[2]}"
    return f"""# {m.get('dataset_name', 'Fashion-MNIST')} classifier: trial {p['trial']} of study `{p['study']}`

Found by `nas search`, retrained by `nas export` on {m['train_images']:,} images (the training and validation
splits) for {m['epochs']} epochs, scored once on the
{m['test_images']:,} test images (which the search never saw).

Architecture: `{summary}` ({'with' if m['tta_flip'] else 'without'} horizontal-flip test-time augmentation inside the model).

| test accuracy | params | MACs per image | latency, batch 1 (onnxruntime) | latency, batch 1 (PyTorch) | search validation accuracy |
| --- | --- | --- | --- | --- | --- |
| {m['test_acc']:.4f} | {fmt_count(m['params'])} | {fmt_count(m['macs'])} | {lat['onnxruntime']['median_ms']:.3f} ms (IQR {lat['onnxruntime']['iqr_ms']:.3f}, {lat['onnxruntime']['threads']} thread) | {lat['torch']['median_ms']:.3f} ms (IQR {lat['torch']['iqr_ms']:.3f}, {lat['torch']['threads']} thread) | {m['search_val_acc']:.4f} |

onnxruntime and PyTorch agree on {m['onnx_torch_agreement']:.2%} of the test images. Training took
{m['train_seconds']:.0f} s ({m['seconds_per_epoch']:.1f} s per epoch, batch {m['batch_size']}, {m['precision']}, {m['device']}).
Trained and timed on {machine_line(p)}.
Everything else (versions, git commit, seeds, dataset checksums) is in `metrics.json`.
{int8_card(m)}
![the study's front with this trial ringed](front.png)

## Input and output

`pixels`: float32 `[batch, {', '.join(map(str, shape))}]`, raw {kind} values 0-255 (normalisation is inside the model).
`logits`: float32 `[batch, {len(m['classes'])}]`; classes in order: {', '.join(m['classes'])}.

## Run it with onnxruntime

```python
import numpy as np
import onnxruntime as ort

session = ort.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])
images = np.zeros((4, {', '.join(map(str, shape))}), dtype=np.float32)  # your {side} {kind} images, 0-255
logits = session.run(None, {{"pixels": images}})[0]
classes = {m['classes']!r}
print([classes[i] for i in logits.argmax(1)])
```

## Run it with plain PyTorch (no `nas` needed)

```python
import torch

model = torch.export.load("model.pt2").module()
images = torch.zeros(4, {', '.join(map(str, shape))})  # your {side} {kind} images, 0-255, float32
with torch.inference_mode():
    logits = model(images)
classes = {m['classes']!r}
print([classes[i] for i in logits.argmax(1)])
```

`weights.safetensors` + `arch.json` rebuild the model with `nas` (`nas.models.build(arch)`).
"""


# ---------------------------------------------------------------- evaluate

def read_export(folder: Path, data_dir: str | None = None):
    """A finished export's metrics.json, its files checked against their sha256, and its data and test split
    (checked against the files it was scored on): (recorded, DataConfig, test Split)."""
    from nas import data

    folder = Path(folder)
    if not (folder / "metrics.json").exists():
        raise UsageError(f"{folder} is not a finished nas export (no metrics.json); give a folder that "
                         f"nas export wrote, e.g. studies/<study>/exports/trial-<n>")
    recorded = json.loads((folder / "metrics.json").read_text())
    p = recorded["provenance"]
    for name, digest in p["files_sha256"].items():
        if not (folder / name).exists() or sha256(folder / name) != digest:
            raise NasError(f"{folder / name} is missing or changed since the export (sha256 differs)")
    config = DataConfig(dataset=p["dataset"], data_dir=data_dir, split_seed=p["split_seed"],
                        image_size=p.get("image_size"), skip_bad=p.get("skip_bad", False))
    test, files = data.load_test(config)
    if files != {k: v for k, v in p["dataset_files_sha256"].items() if k in files}:
        raise NasError("the test files differ from the ones the export was scored on (sha256); "
                       "point --data-dir at the original files")
    return recorded, config, test


def evaluate(folder: Path, data_dir: str | None = None, threads: int | None = None) -> dict:
    """Re-score an export from its files (the int8 model too, where there is one); `reproduced` says whether
    the accuracies equal metrics.json's."""
    from nas import cores, machine, measure, quantize

    recorded, _, test = read_export(folder, data_dir)
    threads = threads or recorded["latency"]["onnxruntime"]["threads"]
    scores = score_files(Path(folder), test, threads)
    scores["reproduced"] = all(scores[k] == recorded[k] for k in
                               ("test_acc_onnxruntime", "test_acc_torch", "onnx_torch_agreement"))
    if "int8" in recorded:
        int8 = Path(folder) / quantize.INT8_FILE
        with cores.training():
            predicted = onnx_predictions(int8, test.images.float().numpy(), threads)
        accuracy = float((predicted == test.labels.numpy()).mean())
        with cores.timing():
            latency = repeated(lambda: measure.onnx_latency(str(int8), threads=threads))
        scores["int8"] = {"test_acc": accuracy, "recorded_test_acc": recorded["int8"]["test_acc"],
                          "latency": latency}
        scores["latency"]["int8"] = latency
        scores["reproduced"] &= accuracy == recorded["int8"]["test_acc"]
    for backend, now in scores["latency"].items():
        then = recorded["int8"]["latency"] if backend == "int8" else recorded["latency"][backend]
        now["recorded_median_ms"], now["recorded_spread_ms"] = then["median_ms"], then["spread_ms"]
        low, high = then["spread_ms"]  # see repeated()
        now["within_spread"] = low <= now["median_ms"] <= high
    scores["recorded_test_acc"] = recorded["test_acc"]
    scores["recorded_cpu"] = (recorded["provenance"].get("machine") or {}).get("cpu")
    scores["same_cpu"] = scores["recorded_cpu"] == machine.cpu_model()
    return scores


def add_int8(folder: Path, data_dir: str | None = None) -> dict:
    """`nas quantize`: model.int8.onnx for an export that has none, scored and timed as `nas export --int8`
    does, added to metrics.json and the model card. Returns the updated metrics."""
    from nas import data, models

    folder = Path(folder)
    recorded, config, test = read_export(folder, data_dir)
    train_images = data.load(config, final=True).train.images.cpu().numpy()
    recorded["int8"] = score_int8(folder, train_images, test, recorded["latency"]["onnxruntime"]["threads"])
    recorded["provenance"]["files_sha256"] = files_sha256(folder)
    arch = json.loads((folder / "arch.json").read_text())["arch"]
    (folder / "README.md").write_text(model_card(recorded, arch, models.summary(arch)))
    (folder / "metrics.json").write_text(json.dumps(recorded, indent=2))
    return recorded
