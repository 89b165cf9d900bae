"""Own images through the real commands: data -> train -> search -> export, grey and RGB, folder/CSV/NPZ."""

import json

import numpy as np
import onnx
import optuna
import pytest
from conftest import TINY_SPACE

from nas import data, machine, sources
from nas.config import DataConfig


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # the subprocesses' cache
    monkeypatch.setattr(sources, "cache_root", lambda: tmp_path / "cache")


def colour_folder(tmp_path):
    """3 classes of 16x16 RGB JPEGs, 30 each, whose class shows in the mean colour (learnable)."""
    folder = tmp_path / "shapes"
    rng = np.random.default_rng(0)
    for c, name in enumerate(["red", "green", "blue"]):
        (folder / name).mkdir(parents=True)
        for i in range(30):
            pixels = rng.integers(0, 120, (16, 16, 3), dtype=np.uint8)
            pixels[..., c] += 120
            from PIL import Image

            Image.fromarray(pixels, "RGB").save(folder / name / f"{i}.jpg", quality=95)
    return folder


def test_rgb_folder_through_search_and_export(nas_cli, tmp_path):
    folder = colour_folder(tmp_path)
    shown = nas_cli("data", "--data", str(folder), "--format", "json", "--out", str(tmp_path / "grid.png"))
    assert shown.returncode == 0, shown.stderr
    stats = json.loads(shown.stdout)
    assert stats["classes"] == ["blue", "green", "red"] and stats["inputs"]["channels"] == 3
    assert stats["inputs"]["size"] == 16 and len(stats["inputs"]["mean"]) == 3
    assert "held out 13 test images" in shown.stderr  # 90 / 7, stratified: nothing reads them before export
    assert sum(s["images"] for s in stats["splits"].values()) == 90
    storage = f"sqlite:///{tmp_path}/s.db"
    search = nas_cli("search", "--space", TINY_SPACE, "--data", str(folder), "--study", "own", "--storage", storage,
                     "--trials", "2", "--epochs", "2", "--budgets", "none", "--jobs", "1", "--format", "json")
    assert search.returncode == 0, search.stderr
    settings = optuna.load_study(study_name="own", storage=storage).user_attrs["nas"]
    assert settings["data"]["inputs"]["classes"] == ["blue", "green", "red"]
    front = nas_cli("front", "--study", "own", "--storage", storage)
    shown = " ".join(front.stderr.split())
    assert "on shapes (3 classes: blue, green, red; 3x16x16)" in shown, front.stderr
    assert f"latency timed on {machine.cpu_model()}" in shown  # the machine its latencies belong to
    out = nas_cli("export", "--study", "own", "--storage", storage, "--epochs", "30", "--out", str(tmp_path / "e"))
    assert out.returncode == 0, out.stderr
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert metrics["input"]["shape"] == ["batch", 3, 16, 16] and metrics["classes"] == ["blue", "green", "red"]
    assert metrics["test_images"] == 13 and metrics["dataset_name"] == "shapes"
    props = {p.key: json.loads(p.value) for p in onnx.load(str(tmp_path / "e" / "model.onnx")).metadata_props}
    assert props["output"]["classes"] == ["blue", "green", "red"] and props["input"]["image_size"] == 16
    card = (tmp_path / "e" / "README.md").read_text()
    assert card.startswith("# shapes classifier") and "[batch, 3, 16, 16]" in card
    again = nas_cli("evaluate", str(tmp_path / "e"))
    assert again.returncode == 0 and "reproduced" in again.stderr, again.stderr
    # predict needs the export folder only: decoded and resized as the study's images were (these are 16x16)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "e").rename(tmp_path / "elsewhere" / "e")
    guessed = nas_cli("predict", str(tmp_path / "elsewhere" / "e"), str(folder / "red"), "--top", "2", "--format", "json")
    assert guessed.returncode == 0, guessed.stderr
    rows = json.loads(guessed.stdout)
    assert len(rows) == 30 and all(len(r["top"]) == 2 and r["top"][0]["probability"] >= r["top"][1]["probability"]
                                   for r in rows)
    assert metrics["test_acc"] > 0.6 and sum(r["top"][0]["class"] == "red" for r in rows) > 20  # chance: 1/3
    csv_out = nas_cli("predict", str(tmp_path / "elsewhere" / "e"), str(folder / "red" / "0.jpg"), "--format", "csv")
    assert csv_out.stdout.splitlines()[0] == "path,class_1,probability_1,class_2,probability_2,class_3,probability_3"
    bad = nas_cli("predict", str(tmp_path / "elsewhere" / "e"), str(tmp_path / "nothing.png"))
    assert bad.returncode == 2 and "no such file or folder" in bad.stderr and "Traceback" not in bad.stderr


def test_other_data_is_refused_on_a_studys_rerun(nas_cli, tmp_path):
    folder = colour_folder(tmp_path)
    storage = f"sqlite:///{tmp_path}/s.db"
    common = ["search", "--space", TINY_SPACE, "--study", "own", "--storage", storage, "--trials", "1",
              "--epochs", "1", "--budgets", "none", "--jobs", "1"]
    assert nas_cli(*common, "--data", str(folder)).returncode == 0
    other = nas_cli(*common, "--data", str(folder), "--image-size", "12")
    assert other.returncode == 2 and "created with other settings" in other.stderr


def test_fashion_mnist_as_png_folders_gives_the_builtin_images_labels_and_split(tmp_path):
    """60 training images of each class (in the file's order) and 20 test images, written as PNG folders named
    '0 T-shirt-top', '1 Trouser', ... (so the folders sort in the labels' order): read with --data, they give
    the built-in reader's pixels and labels, and the same train/validation split of them."""
    from PIL import Image

    folder = data.data_dir_for(DataConfig())
    images, labels, _ = data.read_split(folder, "train")
    test_images, test_labels, _ = data.read_split(folder, "test")
    picked = np.sort(np.concatenate([np.flatnonzero(labels == c)[:60] for c in range(10)]))
    names = [f"{i} {n.replace('/', '-')}" for i, n in enumerate(data.CLASSES["fashion-mnist"])]
    for split, pixels, classes in (("train", images[picked], labels[picked]), ("test", test_images[:20], test_labels[:20])):
        for i, (image, label) in enumerate(zip(pixels, classes)):
            (tmp_path / "fm" / split / names[label]).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image, "L").save(tmp_path / "fm" / split / names[label] / f"{i:05d}.png")
    own = data.load(DataConfig(dataset=str(tmp_path / "fm"), val_size=100), with_test=True)
    rest, held = data.stratified_split(labels[picked], 100, seed=0)  # what the built-in reader does

    def pairs(images, labels):
        return sorted((x.tobytes(), int(y)) for x, y in zip(images, labels))

    assert own.inputs.shape == (1, 28, 28) and own.classes == names
    assert pairs(own.train.images[:, 0].numpy(), own.train.labels.numpy()) == pairs(images[picked][rest], labels[picked][rest])
    assert pairs(own.val.images[:, 0].numpy(), own.val.labels.numpy()) == pairs(images[picked][held], labels[picked][held])
    assert pairs(own.test.images[:, 0].numpy(), own.test.labels.numpy()) == pairs(test_images[:20], test_labels[:20])


def test_a_space_refuses_images_it_was_not_made_for(nas_cli, tmp_path):
    from test_sources import write_images

    write_images(tmp_path / "tiny", ["a", "b"], 3, size=(8, 8))
    out = nas_cli("train", "--space", "resnet_like", "--data", str(tmp_path / "tiny"), "--epochs", "1")
    assert out.returncode == 2 and "made for images of 16-128 pixels" in out.stderr and "--image-size" in out.stderr
    assert "Traceback" not in out.stderr
