import json
import subprocess
import sys

import pytest

from tests.conftest import fake_dataset


def test_help_lists_commands_without_importing_torch(nas_cli):
    out = nas_cli("--help")
    assert out.returncode == 0 and all(c in out.stdout for c in ("spaces", "data", "train", "search", "export"))
    # what makes it instant: torch (seconds to import) waits for a command that needs it
    check = subprocess.run([sys.executable, "-c", "import sys; from nas import cli; cli.parser(); "
                            "print(sorted(m for m in ('torch', 'optuna', 'onnxruntime') if m in sys.modules))"],
                           capture_output=True, text=True)
    assert check.returncode == 0 and check.stdout.strip() == "[]", check.stdout + check.stderr


def test_spaces_json_lists_presets_with_params_and_macs(nas_cli):
    out = nas_cli("spaces", "--format", "json")
    assert out.returncode == 0, out.stderr
    listing = {s["name"]: s for s in json.loads(out.stdout)}
    presets = {p["preset"]: p for p in listing["simple_cnn"]["presets"]}
    assert presets["seed-structure-1"]["params"] == 688_138
    assert presets["seed-structure-1"]["macs"] > 7_000_000


def test_data_reports_counts_stats_and_writes_a_picture(nas_cli, tmp_path):
    out = nas_cli("data", "--format", "json", "--out", str(tmp_path / "samples.png"))
    assert out.returncode == 0, out.stderr
    stats = json.loads(out.stdout)
    assert stats["splits"]["train"]["counts"] == [5000] * 10
    assert stats["splits"]["val"]["images"] == 10_000 and stats["splits"]["test"]["images"] == 10_000
    assert 70 < stats["splits"]["train"]["mean"] < 76
    assert (tmp_path / "samples.png").stat().st_size > 10_000


TINY_ARCH = {"arch": {"family": "simple_cnn", "stages": [{"width": 8, "convs": 1}, {"width": 16, "convs": 1}],
                      "batchnorm": True, "activation": "relu", "fc": [], "dropout": 0.0},
             "recipe": {"batch_size": 32, "lr": 0.1}}


def test_train_from_an_arch_file_with_test_score(nas_cli, tmp_path):
    (tmp_path / "arch.json").write_text(json.dumps(TINY_ARCH))
    out = nas_cli("train", "--space", "simple_cnn", "--arch", str(tmp_path / "arch.json"), "--epochs", "2",
                  "--subset", "0.01", "--val-size", "500", "--test", "--format", "json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["status"] == "completed" and len(result["history"]) == 2
    assert result["recipe"]["batch_size"] == 32  # the file's recipe, under the command line's flags
    assert 0.2 < result["test_acc"] <= 1
    assert result["params"] == (9 * 8 + 2 * 8) + (9 * 8 * 16 + 2 * 16) + (16 * 7 * 7 * 10 + 10)  # convs + BN, fc
    # conv MACs per output pixel, the classifier, and fvcore's 2 per BatchNorm output
    assert result["macs"] == 28 * 28 * 8 * 9 + 14 * 14 * 16 * 8 * 9 + 784 * 10 + 2 * (8 * 28 * 28 + 16 * 14 * 14)
    assert result["latency"]["backend"] == "onnxruntime" and result["latency"]["threads"] == 1
    assert result["latency"]["throughput_batch256"] > 0
    for shown in ("params", "MACs", "latency", "throughput", "epoch 2", "val acc", "test acc"):
        assert shown in out.stderr


def test_train_another_network_as_an_export_was_trained(nas_cli, tmp_path):
    """--recipe takes an export's arch.json (its recipe only); --final trains on train + validation."""
    exported = {"arch": {"family": "resnet_like"}, "recipe": {"batch_size": 16, "lr": 0.05, "seed": 3,
                                                              "augment": {"crop_pad": 0, "flip": False, "cutout": 4}}}
    (tmp_path / "export-arch.json").write_text(json.dumps(exported))
    out = nas_cli("train", "--space", "simple_cnn", "--preset", "seed-structure-1", "--recipe",
                  str(tmp_path / "export-arch.json"), "--final", "--epochs", "1", "--subset", "0.005", "--test",
                  "--no-latency", "--format", "json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["arch"]["family"] == "simple_cnn"  # the preset's network ...
    assert result["recipe"]["batch_size"] == 16 and result["recipe"]["seed"] == 3  # ... with the file's recipe
    assert result["recipe"]["augment"] == {"crop_pad": 0, "flip": False, "cutout": 4, "cutmix": 0.0,
                                         "resized_crop": 0.0} and result["recipe"]["epochs"] == 1
    assert result["val_acc"] is None and 0 < result["test_acc"] <= 1
    assert "300 train / no validation images" in out.stderr  # 0.5% of 60,000


def test_train_a_random_draw(nas_cli):
    out = nas_cli("train", "--space", "resnet_like", "--seed", "5", "--epochs", "1", "--subset", "0.005",
                  "--val-size", "200", "--no-latency", "--format", "json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["arch"]["family"] == "resnet_like" and result["test_acc"] is None and result["latency"] is None


@pytest.mark.parametrize("args, code, message", [
    (["train", "--space", "resnet"], 2, "unknown space 'resnet'"),
    (["train", "--space", "simple_cnn", "--preset", "nope"], 2, "has no preset 'nope'"),
    (["train", "--space", "simple_cnn", "--arch", "/nonexistent.json"], 2, "cannot read it"),
    (["train", "--space", "simple_cnn", "--recipe", "/nonexistent.json"], 2, "--recipe /nonexistent.json: cannot"),
    (["train", "--space", "simple_cnn", "--epochs", "0", "--no-latency"], 2, "epochs must be >= 1"),
    (["train", "--space", "simple_cnn", "--augment", "crop=two"], 2, "--augment"),
    (["train", "--space", "simple_cnn", "--data-dir", "/nonexistent"], 2, "is not a folder"),
    (["train", "--space", "simple_cnn", "--bogus"], 2, "unrecognized arguments"),
    (["export", "--study", "s", "--epochs", "3", "--minutes", "5"], 2, "--epochs and --minutes"),
    (["export", "--study", "s", "--minutes", "0"], 2, "--minutes > 0"),
])
def test_bad_input_is_one_line_without_traceback(nas_cli, args, code, message):
    out = nas_cli(*args)
    assert out.returncode == code
    assert message in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_missing_dataset_file_is_a_runtime_error_with_the_fix(nas_cli, tmp_path):
    folder = fake_dataset(tmp_path / "d", n_train=60_000, n_test=10)
    (folder / "train-labels-idx1-ubyte.gz").unlink()
    out = nas_cli("data", "--data-dir", str(folder))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "missing train-labels-idx1-ubyte" in out.stderr and "dataset-fashion-mnist" in out.stderr


def test_debug_shows_the_traceback(nas_cli):
    out = nas_cli("--debug", "train", "--space", "resnet")
    assert out.returncode != 0 and "Traceback" in out.stderr
