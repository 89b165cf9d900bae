"""nas predict from an export folder alone: a model whose answer is known (bright or dark) shows that
images are decoded, converted and resized as the study's were, and that the classes come out in order."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from nas import measure
from nas.errors import UsageError
from nas.predict import images_in, predict


class Brightness(nn.Module):
    """Logits (dark, mid, bright) from the mean raw pixel, 0-255: bright images score "bright" highest."""

    input_shape = (1, 8, 8)

    def forward(self, pixels):
        level = pixels.mean(dim=(1, 2, 3)) / 255.0
        return torch.stack([4 * (0.5 - level), 1 - 4 * (level - 0.5).abs(), 4 * (level - 0.5)], dim=1) * 4


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    measure.export_onnx(Brightness(), str(folder / "model.onnx"))
    (folder / "metrics.json").write_text(json.dumps({"input": {"shape": [None, 1, 8, 8]},
                                                     "classes": ["dark", "mid", "bright"]}))
    return folder


def image(path, value: int, size=(20, 12), mode="RGB"):
    """A flat image of one grey level, in colour and not 8x8: predict must convert and resize it."""
    Image.new(mode, size, (value,) * len(mode)).save(path)
    return path


def test_top_classes_in_order_with_probabilities(export_dir, tmp_path):
    bright, dark = image(tmp_path / "b.png", 250), image(tmp_path / "d.jpg", 5)
    rows = predict(export_dir, [str(bright), str(dark)], top=2)
    assert [r["path"] for r in rows] == [str(bright), str(dark)]
    assert [c["class"] for c in rows[0]["top"]] == ["bright", "mid"]
    assert [c["class"] for c in rows[1]["top"]] == ["dark", "mid"]
    for row in rows:
        p = [c["probability"] for c in row["top"]]
        assert p == sorted(p, reverse=True) and 0.5 < p[0] <= 1 and sum(p) <= 1.0001


def test_probabilities_are_the_models_softmax(export_dir, tmp_path):
    rows = predict(export_dir, [str(image(tmp_path / "m.png", 128, mode="L"))], top=3)
    logits = Brightness()(torch.full((1, 1, 8, 8), 128.0))[0].numpy()
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    got = {c["class"]: c["probability"] for c in rows[0]["top"]}
    assert got == pytest.approx(dict(zip(["dark", "mid", "bright"], expected.tolist())), abs=1e-3)


def test_folders_are_searched_in_a_stable_order(tmp_path):
    (tmp_path / "sub").mkdir()
    names = [image(tmp_path / "sub" / "b.png", 1), image(tmp_path / "a.webp", 1), image(tmp_path / "c.bmp", 1)]
    (tmp_path / "notes.txt").write_text("not an image")
    assert images_in([str(tmp_path)]) == sorted(names)


def test_refusals_name_the_problem(export_dir, tmp_path):
    with pytest.raises(UsageError, match="not a finished nas export"):
        predict(tmp_path, [str(image(tmp_path / "x.png", 1))])
    with pytest.raises(UsageError, match="no such file or folder"):
        predict(export_dir, [str(tmp_path / "missing.png")])
    (tmp_path / "fake.png").write_bytes(b"not a png")
    with pytest.raises(UsageError, match="not readable images, e.g. .*fake.png"):
        predict(export_dir, [str(tmp_path / "fake.png")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no images"):
        predict(export_dir, [str(tmp_path / "empty")])
