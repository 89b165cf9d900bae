import json
import shutil
import signal
import subprocess
import sys

import onnx
import onnxruntime
import optuna
import pytest
from PIL import Image
from conftest import wait_for
from optuna.trial import TrialState

from nas import export, machine, train
from nas.config import Augment

QUICK = ["--epochs", "1", "--subset", "0.02"]


def test_export_writes_files_that_agree_and_evaluate_reproduces(nas_cli, tiny_study, tmp_path):
    _, storage, name = tiny_study
    out = nas_cli("export", "--study", name, "--storage", storage, *QUICK, "--out", str(tmp_path / "e"),
                  "--format", "json")
    assert out.returncode == 0, out.stderr
    folder = tmp_path / "e"
    starts = {"model.pt2": b"PK", "front.png": b"\x89PNG", "arch.json": b"{", "metrics.json": b"{", "README.md": b"#"}
    for f, magic in starts.items():  # each file is what its name says (model.onnx: scored below)
        assert (folder / f).read_bytes().startswith(magic), f
    from safetensors.torch import load_file

    assert load_file(folder / "weights.safetensors")  # a readable, non-empty set of tensors
    assert not (folder / "checkpoint").exists() and not list(folder.glob("*.data"))  # one self-contained ONNX file
    m = json.loads((folder / "metrics.json").read_text())
    assert m["test_images"] == 10_000 and m["onnx_torch_agreement"] >= 0.999
    study = optuna.load_study(study_name=name, storage=storage)
    assert m["provenance"]["trial"] == max(study.best_trials, key=lambda t: t.values[0]).number  # --pick best
    assert m["search_val_acc"] == study.trials[m["provenance"]["trial"]].values[0]
    assert set(m["latency"]) == {"onnxruntime", "torch"} and m["latency"]["onnxruntime"]["threads"] == 1
    assert len(m["provenance"]["dataset_files_sha256"]) == 4 and m["provenance"]["versions"]["torch"]
    assert f"trial {m['provenance']['trial']}" in (folder / "README.md").read_text()
    written = json.loads((folder / "arch.json").read_text())["recipe"]["augment"]
    assert written == study.trials[m["provenance"]["trial"]].user_attrs["recipe"]["augment"]  # the default

    cpu = machine.cpu_model()  # every figure names its machine
    assert m["provenance"]["machine"]["cpu"] == m["latency"]["onnxruntime"]["cpu"] == cpu
    assert cpu in (folder / "README.md").read_text()

    again = nas_cli("evaluate", str(folder), "--format", "json")
    assert again.returncode == 0, again.stderr
    scores = json.loads(again.stdout)
    assert scores["reproduced"] and scores["test_acc_onnxruntime"] == m["test_acc"] and scores["same_cpu"]
    assert "warning" not in again.stderr
    m["provenance"]["machine"]["cpu"] = "Another CPU (family 6 model 143)"  # as if exported elsewhere
    (folder / "metrics.json").write_text(json.dumps(m))
    elsewhere = nas_cli("evaluate", str(folder))
    assert elsewhere.returncode == 0 and "recorded on Another CPU" in " ".join(elsewhere.stderr.split())

    # the files stand alone: a Python where `nas` cannot be imported loads both and runs a batch of 5
    script = f"""
import sys; sys.modules["nas"] = None
import numpy as np, onnxruntime as ort, torch
x = np.random.default_rng(0).integers(0, 256, (5, 1, 28, 28)).astype(np.float32)
a = ort.InferenceSession("{folder}/model.onnx").run(None, {{"pixels": x}})[0]
b = torch.export.load("{folder}/model.pt2").module()(torch.from_numpy(x)).detach().numpy()
assert a.shape == b.shape == (5, 10), (a.shape, b.shape)
print(int((a.argmax(1) == b.argmax(1)).sum()))
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "5"


def test_a_compiled_export_trains_and_its_files_agree(nas_cli, tiny_study, tmp_path):
    _, storage, name = tiny_study
    out = nas_cli("export", "--study", name, "--storage", storage, *QUICK, "--compile", "--out", str(tmp_path / "e"))
    assert out.returncode == 0, out.stderr
    m = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert m["test_images"] == 10_000 and m["onnx_torch_agreement"] >= 0.999


INT8_AGREEMENT = 0.95  # of the test images, int8 and fp32 pick the same class at least this often


def test_int8_added_to_an_export_agrees_with_fp32_and_is_checked_like_it(nas_cli, tiny_study, tmp_path):
    _, storage, name = tiny_study
    folder = tmp_path / "e"
    out = nas_cli("export", "--study", name, "--storage", storage, *QUICK, "--int8", "--out", str(folder))
    assert out.returncode == 0, out.stderr
    m = json.loads((folder / "metrics.json").read_text())
    q = m["int8"]
    session = onnxruntime.InferenceSession(str(folder / "model.int8.onnx"), providers=["CPUExecutionProvider"])
    assert {node.op_type for node in onnx.load(str(folder / "model.int8.onnx")).graph.node} >= {"QuantizeLinear",
                                                                                                "DequantizeLinear"}
    assert session.get_inputs()[0].name == "pixels" and q["fp32_agreement"] >= INT8_AGREEMENT
    assert abs(q["test_acc"] - m["test_acc"]) <= 1 - q["fp32_agreement"]  # only disagreements move accuracy
    assert q["size_bytes"] == (folder / "model.int8.onnx").stat().st_size and q["latency"]["median_ms"] > 0
    assert q["latency"]["cpu"] == machine.cpu_model() and q["calibration_images"] == 256
    assert "model.int8.onnx" in m["provenance"]["files_sha256"] and "## int8" in (folder / "README.md").read_text()
    assert "int8: test accuracy" in out.stderr

    checked = nas_cli("evaluate", str(folder), "--format", "json")
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout)["int8"]["test_acc"] == q["test_acc"]  # the file reproduces its figure
    image = tmp_path / "x.png"
    Image.new("L", (28, 28), 200).save(image)
    rows = {flag: json.loads(nas_cli("predict", str(folder), str(image), "--format", "json", *flag).stdout)
            for flag in ((), ("--int8",))}
    assert len(rows[()][0]["top"]) == len(rows[("--int8",)][0]["top"]) == 3

    (folder / "model.int8.onnx").unlink()  # `nas quantize` makes it again for an export without one
    m["provenance"]["files_sha256"].pop("model.int8.onnx")
    (folder / "metrics.json").write_text(json.dumps({k: v for k, v in m.items() if k != "int8"}))
    assert "no model.int8.onnx" in nas_cli("predict", str(folder), str(image), "--int8").stderr
    again = nas_cli("quantize", str(folder), "--format", "json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["test_acc"] == q["test_acc"]  # the same calibration images, the same model
    assert json.loads((folder / "metrics.json").read_text())["int8"]["test_acc"] == q["test_acc"]


def test_an_export_given_minutes_records_the_epochs_it_managed(nas_cli, tiny_study, tmp_path):
    _, storage, name = tiny_study
    out = nas_cli("export", "--study", name, "--storage", storage, "--minutes", "0.05", "--subset", "0.02",
                  "--out", str(tmp_path / "e"))
    assert out.returncode == 0, out.stderr
    m = json.loads((tmp_path / "e" / "metrics.json").read_text())
    recipe = json.loads((tmp_path / "e" / "arch.json").read_text())["recipe"]
    assert m["minutes_limit"] == 0.05 and m["train_seconds"] >= 3.0
    assert m["epochs"] == recipe["epochs"] == len(m["history"]) >= 1
    assert m["history"][-1]["lr"] < 0.05 * recipe["lr"] * recipe["batch_size"] / 256


def test_an_existing_export_is_refused_unless_forced(nas_cli, tiny_study, tmp_path):
    _, storage, name = tiny_study
    args = ["export", "--study", name, "--storage", storage, *QUICK, "--out", str(tmp_path / "e")]
    assert nas_cli(*args).returncode == 0
    before = (tmp_path / "e" / "metrics.json").read_text()
    out = nas_cli(*args)
    assert out.returncode == 2 and "already exists; pass --force" in out.stderr and "Traceback" not in out.stderr
    assert (tmp_path / "e" / "metrics.json").read_text() == before
    assert nas_cli(*args, "--force").returncode == 0


def test_an_interrupted_export_resumes_and_ends_where_an_uninterrupted_one_does(nas_cli, tiny_study, tmp_path):
    _, storage, name = tiny_study
    # 12 short epochs: caught after its first, the export has seconds of training left when the kill lands
    args = ["export", "--study", name, "--storage", storage, "--epochs", "12", "--subset", "0.05"]
    straight = nas_cli(*args, "--out", str(tmp_path / "a"))
    assert straight.returncode == 0, straight.stderr

    cmd = [sys.executable, "-m", "nas", *args, "--out", str(tmp_path / "b")]
    proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    checkpoint = tmp_path / "b" / "checkpoint"
    wait_for(lambda: (train.load_checkpoint(checkpoint, with_tensors=False) or {"epoch": 0})["epoch"] >= 1,
             "the export's first checkpoint", 120)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = train.load_checkpoint(checkpoint, with_tensors=False)["epoch"]
    assert 1 <= done < 12, "killed after the export had finished; give it more epochs"
    resumed = nas_cli(*args, "--out", str(tmp_path / "b"))
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming after epoch {done}" in " ".join(resumed.stderr.split())
    a, b = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("a", "b"))
    assert len(b["history"]) == 12
    # same seeds, same state restored: the very same weights
    assert a["provenance"]["files_sha256"]["weights.safetensors"] == b["provenance"]["files_sha256"]["weights.safetensors"]
    assert a["test_acc"] == b["test_acc"]


@pytest.fixture
def study_with_every_state(tiny_study, tmp_path):
    """A copy of the tiny study plus a pruned, a failed and a running trial."""
    folder, _, name = tiny_study
    shutil.copy(folder / "t.db", tmp_path / "t.db")
    storage = f"sqlite:///{tmp_path}/t.db"
    study = optuna.load_study(study_name=name, storage=storage)
    numbers = {}
    for state in (TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING):
        trial = study.ask()
        numbers[state] = trial.number
        if state != TrialState.RUNNING:
            study.tell(trial, state=state)
    infeasible = next(t.number for t in study.trials if t.user_attrs.get("kind") == "infeasible")
    return storage, name, {"pruned": numbers[TrialState.PRUNED], "fail": numbers[TrialState.FAIL],
                           "running": numbers[TrialState.RUNNING], "infeasible": infeasible, "no": 999}


@pytest.mark.parametrize("which", ["pruned", "fail", "running", "infeasible", "no"])
def test_a_trial_that_cannot_be_exported_is_refused_with_the_valid_choices(nas_cli, study_with_every_state, which):
    storage, name, numbers = study_with_every_state
    out = nas_cli("export", "--study", name, "--storage", storage, "--trial", str(numbers[which]), *QUICK)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"trial {numbers[which]}" in out.stderr and "choose one on the front:" in out.stderr
    why = {"pruned": "is pruned", "fail": "is fail", "running": "is running", "infeasible": "is infeasible",
           "no": "has no trial"}[which]
    assert why in out.stderr


def test_the_knee_is_the_front_point_closest_to_the_ideal():
    class T:
        def __init__(self, acc, macs):
            self.values = [acc, macs]

    front = [T(0.95, 1e8), T(0.94, 1e6), T(0.80, 1e5)]
    assert export.knee(front, ["accuracy", "macs"]) is front[1]
    assert export.knee(front[:1], ["accuracy", "macs"]) is front[0]


def test_the_final_augmentation_mirrors_where_the_space_allows_it_unless_asked_otherwise():
    drawn = Augment(crop_pad=0, flip=False, cutout=0)
    assert export.final_augment(drawn, "final", may_mirror=True) == Augment(crop_pad=0, flip=True, cutout=0)
    assert export.final_augment(drawn, "final", may_mirror=False) == drawn
    assert export.final_augment(drawn, "search", may_mirror=True) == drawn
    assert export.final_augment(drawn, "crop=2,cutout=8", may_mirror=True) == Augment(crop_pad=2, flip=False, cutout=8)


def test_mirroring_is_allowed_only_where_the_space_could_draw_it():
    import optuna
    from optuna.distributions import CategoricalDistribution

    def trial(**distributions):
        params = {k: d.choices[0] for k, d in distributions.items()}
        return optuna.trial.create_trial(params=params, distributions=distributions, value=0.9)

    assert export.mirroring_allowed(trial(aug_flip=CategoricalDistribution([False, True])))
    assert not export.mirroring_allowed(trial(aug_flip=CategoricalDistribution([False])))
    assert not export.mirroring_allowed(trial(lr=CategoricalDistribution([0.1])))  # the space fixes flip


def test_evaluate_refuses_a_folder_that_is_not_an_export(nas_cli, tmp_path):
    out = nas_cli("evaluate", str(tmp_path))
    assert out.returncode == 2 and "not a finished nas export" in out.stderr
