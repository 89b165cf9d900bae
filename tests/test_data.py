import gzip

import numpy as np
import pytest

from nas import data
from nas.config import DataConfig
from nas.errors import NasError, UsageError
from tests.conftest import fake_dataset, write_idx


def test_real_files_give_the_documented_splits(fashion):
    assert len(fashion.train) == 50_000 and len(fashion.val) == 10_000 and fashion.test is None
    assert fashion.train.images.dtype.is_floating_point is False and fashion.train.images.shape[1:] == (1, 28, 28)
    # stratified: 1,000 validation images of every class
    assert fashion.val.labels.bincount().tolist() == [1000] * 10
    assert fashion.classes[0] == "T-shirt/top"
    assert set(fashion.files) == {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"}


def test_test_split_only_when_asked(tmp_path):
    folder = fake_dataset(tmp_path / "d", n_train=60_000, n_test=10_000)
    assert data.load(DataConfig(data_dir=str(folder))).test is None
    assert len(data.load(DataConfig(data_dir=str(folder)), with_test=True).test) == 10_000


def test_gzipped_and_plain_files_read_the_same(tmp_path):
    arr = np.random.default_rng(1).integers(0, 256, (5, 28, 28))
    plain = data.read_idx(write_idx(tmp_path / "a", arr), 3, 5, (28, 28))
    gz = data.read_idx(write_idx(tmp_path / "b.gz", arr, gz=True), 3, 5, (28, 28))
    assert np.array_equal(plain, arr) and np.array_equal(gz, arr)


@pytest.mark.parametrize("mangle, message", [
    (lambda raw: b"\x01\x02" + raw[2:], "bad magic number"),
    (lambda raw: raw[:2] + b"\x0d" + raw[3:], "data type"),
    (lambda raw: raw[:3] + b"\x02" + raw[4:], "dimensions"),
    (lambda raw: raw[:-10], "truncated"),
    (lambda raw: raw[:9], "truncated"),
    (lambda raw: raw + b"\x00", "longer than its header"),
])
def test_corrupt_files_are_named_with_a_fix(tmp_path, mangle, message):
    good = write_idx(tmp_path / "good", np.zeros((4, 28, 28))).read_bytes()
    bad = tmp_path / "images-idx3-ubyte"
    bad.write_bytes(mangle(good))
    with pytest.raises(NasError, match=message) as e:
        data.read_idx(bad, 3, 4, (28, 28))
    assert str(bad) in str(e.value) and "--data-dir" in str(e.value)


def test_wrong_count_and_shape(tmp_path):
    f = write_idx(tmp_path / "f", np.zeros((4, 28, 28)))
    with pytest.raises(NasError, match="holds 4 items, expected 5"):
        data.read_idx(f, 3, 5, (28, 28))
    with pytest.raises(NasError, match=r"items are \(28, 28\), expected \(32, 32\)"):
        data.read_idx(f, 3, 4, (32, 32))


def test_broken_gzip(tmp_path):
    f = tmp_path / "f.gz"
    f.write_bytes(gzip.compress(b"\x00\x00\x08\x03" + b"\x00" * 50)[:-8])
    with pytest.raises(NasError, match="cannot read"):
        data.read_idx(f, 3)


def test_missing_file_says_how_to_get_it(tmp_path):
    folder = fake_dataset(tmp_path / "d")
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    data.load(DataConfig(data_dir=str(folder)))  # train + val do not need the test files
    with pytest.raises(NasError, match="missing t10k-labels-idx1-ubyte.*dataset-fashion-mnist.*--data-dir"):
        data.load(DataConfig(data_dir=str(folder)), with_test=True)


def test_data_dir_must_exist(tmp_path):
    with pytest.raises(UsageError, match="not a folder"):
        data.load(DataConfig(data_dir=str(tmp_path / "nope")))


def test_env_var_is_a_data_dir(tmp_path, monkeypatch):
    folder = fake_dataset(tmp_path / "d", gz=False)
    monkeypatch.setenv("NAS_DATA_DIR", str(folder))
    assert data.data_dir_for(DataConfig()) == folder


def test_stratified_split_is_seeded_disjoint_and_proportional():
    labels = np.repeat(np.arange(10), [100, 200, 300, 400, 500, 600, 700, 800, 900, 1000])
    rest, held = data.stratified_split(labels, 550, seed=3)
    assert len(held) == 550 and len(rest) == len(labels) - 550
    assert not set(rest) & set(held)
    assert np.bincount(labels[held]).tolist() == [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    again, _ = data.stratified_split(labels, 550, seed=3)
    other, _ = data.stratified_split(labels, 550, seed=4)
    assert np.array_equal(rest, again) and not np.array_equal(rest, other)


def test_subset_keeps_classes_balanced_and_validation_whole(tmp_path):
    folder = fake_dataset(tmp_path / "d")
    splits = data.load(DataConfig(data_dir=str(folder), subset=0.1))
    assert len(splits.train) == 5000 and len(splits.val) == 10_000
    assert splits.train.labels.bincount().tolist() == [500] * 10
