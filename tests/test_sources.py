"""Own images (nas/sources.py): folders, CSV and NPZ decoded into arrays, cached, bad input refused."""

import os

import numpy as np
import pytest
from PIL import Image

from nas import sources
from nas.errors import UsageError


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "cache_root", lambda: tmp_path / "cache")


def write_images(folder, classes, per_class, size=(20, 30), mode="L", suffix=".png", seed=0):
    """Random images, one folder per class; returns {path: (class index, pixels)}."""
    rng = np.random.default_rng(seed)
    written = {}
    for c, name in enumerate(classes):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            shape = (size[0], size[1]) if mode == "L" else (size[0], size[1], 3)
            pixels = rng.integers(0, 256, shape, dtype=np.uint8)
            path = folder / name / f"{i}{suffix}"
            Image.fromarray(pixels, mode).save(path)
            written[path] = (c, pixels)
    return written


def test_a_grey_folder_of_odd_sizes_is_resized_to_its_median_side_and_cached(tmp_path):
    write_images(tmp_path / "d", ["a", "b", "c"], 4, size=(20, 30))
    source = sources.read(tmp_path / "d")
    assert source.images["train"].shape == (12, 1, 30, 30) and source.classes == ["a", "b", "c"]
    assert source.labels["train"].tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert any("resized to 30x30" in n for n in source.notes)
    again = sources.read(tmp_path / "d")
    assert isinstance(again.images["train"], np.memmap)  # from the cache, memory-mapped
    assert np.array_equal(again.images["train"], source.images["train"]) and again.sha256 == source.sha256


def test_a_changed_file_is_decoded_again(tmp_path):
    written = write_images(tmp_path / "d", ["a", "b"], 2, size=(8, 8))
    first = sources.read(tmp_path / "d")
    path = next(iter(written))
    Image.fromarray(np.zeros((8, 8), np.uint8), "L").save(path)
    os.utime(path, ns=(1, 1))
    second = sources.read(tmp_path / "d")
    assert second.sha256 != first.sha256 and second.images["train"][0].max() == 0


def test_rgb_jpegs_with_train_and_test_folders(tmp_path):
    write_images(tmp_path / "d" / "train", ["cat", "dog"], 3, size=(16, 16), mode="RGB", suffix=".jpg")
    write_images(tmp_path / "d" / "test", ["cat", "dog"], 2, size=(16, 16), mode="RGB", suffix=".jpg", seed=1)
    source = sources.read(tmp_path / "d", image_size=12)
    assert source.images["train"].shape == (6, 3, 12, 12) and source.images["test"].shape == (4, 3, 12, 12)
    assert source.labels["test"].tolist() == [0, 0, 1, 1] and source.channels == 3 and source.image_size == 12


def test_png_pixels_come_back_exactly(tmp_path):
    written = write_images(tmp_path / "d", ["x", "y"], 3, size=(28, 28))
    source = sources.read(tmp_path / "d")
    for i, (label, pixels) in enumerate(written.values()):
        assert source.labels["train"][i] == label and np.array_equal(source.images["train"][i, 0], pixels)


def test_a_grey_image_among_colour_ones_is_converted_and_said(tmp_path):
    write_images(tmp_path / "d", ["a", "b"], 2, size=(8, 8), mode="RGB")
    Image.fromarray(np.full((8, 8), 7, np.uint8), "L").save(tmp_path / "d" / "a" / "grey.png")
    source = sources.read(tmp_path / "d")
    assert source.channels == 3 and any("1 grey image(s) converted to RGB" in n for n in source.notes)


def test_a_csv_of_paths_and_names(tmp_path):
    written = write_images(tmp_path / "img", ["a", "b"], 2, size=(8, 8))
    rows = ["path,label"] + [f"img/{p.parent.name}/{p.name},{'left' if c == 0 else 'right'}"
                             for p, (c, _) in written.items()]
    (tmp_path / "list.csv").write_text("\n".join(rows))
    source = sources.read(tmp_path / "list.csv")
    assert source.classes == ["left", "right"] and source.labels["train"].tolist() == [0, 0, 1, 1]


def test_an_npz_of_nhwc_images(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (10, 8, 8, 3), dtype=np.uint8), "y_train": np.arange(10) % 3,
              "x_test": rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8), "y_test": np.arange(4) % 3}
    np.savez(tmp_path / "d.npz", **arrays)
    source = sources.read(tmp_path / "d.npz")
    assert source.images["train"].shape == (10, 3, 8, 8) and source.classes == ["0", "1", "2"]
    assert np.array_equal(source.images["train"][2], arrays["x_train"][2].transpose(2, 0, 1))


def broken(kind, tmp_path):
    """A data path that is wrong in one way; returns (path, extra kwargs)."""
    d = tmp_path / "d"
    if kind == "empty class folder":
        write_images(d, ["a", "b"], 2, size=(8, 8))
        (d / "c").mkdir()
    elif kind == "single class":
        write_images(d, ["a"], 3, size=(8, 8))
    elif kind == "corrupt file":
        write_images(d, ["a", "b"], 2, size=(8, 8))
        (d / "a" / "broken.png").write_bytes(b"not a png")
    elif kind == "no images":
        (d / "a").mkdir(parents=True)
        (d / "b").mkdir()
        (d / "a" / "notes.txt").write_text("hello")
        (d / "b" / "notes.txt").write_text("hello")
    elif kind == "missing csv files":
        d = tmp_path / "list.csv"
        d.write_text("nowhere/1.png,a\nnowhere/2.png,b\n")
    elif kind == "label out of range":
        d = tmp_path / "d.npz"
        np.savez(d, x_train=np.zeros((4, 8, 8), np.uint8), y_train=np.array([0, 1, 2, 5]),
                 x_test=np.zeros((2, 8, 8), np.uint8), y_test=np.array([0, 1]), classes=np.array(["a", "b", "c"]))
    return d


@pytest.mark.parametrize("kind, message", [
    ("empty class folder", "the class folder 'c' holds no files"),
    ("single class", "only one class"),
    ("corrupt file", "1 file(s) are not readable images"),
    ("no images", "are not readable images"),
    ("missing csv files", "2 listed file(s) do not exist"),
    ("label out of range", "label 5, out of range 0-2"),
])
def test_bad_data_is_refused_with_one_line_and_nothing_cached(kind, message, tmp_path):
    with pytest.raises(UsageError) as e:
        sources.read(broken(kind, tmp_path))
    assert message in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_skip_bad_leaves_corrupt_files_out_and_counts_them(tmp_path):
    source = sources.read(broken("corrupt file", tmp_path), skip_bad=True)
    assert len(source.labels["train"]) == 4 and any("left out 1 unreadable" in n for n in source.notes)
