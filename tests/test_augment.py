import torch

from nas import augment
from nas.config import Augment


def reference_crop(img: torch.Tensor, pad: int, dy: int, dx: int) -> torch.Tensor:
    """One sample, the obvious way."""
    padded = torch.nn.functional.pad(img, (pad, pad, pad, pad))
    return padded[:, dy:dy + img.shape[1], dx:dx + img.shape[2]]


def test_batched_crop_matches_per_sample_reference():
    x = torch.randint(0, 256, (64, 2, 28, 28), dtype=torch.uint8)
    pad = 3
    dy, dx = torch.randint(0, 2 * pad + 1, (2, 64))
    out = augment.crop_with_offsets(x, pad, dy, dx)
    for i in range(64):
        assert torch.equal(out[i], reference_crop(x[i], pad, int(dy[i]), int(dx[i])))


def test_centre_offset_is_identity():
    x = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
    centre = torch.full((4,), 2)
    assert torch.equal(augment.crop_with_offsets(x, 2, centre, centre), x)


def test_each_sample_gets_its_own_offset():
    # the same image 256 times: if samples shared one offset, every output would be identical
    x = torch.randint(0, 256, (1, 1, 28, 28), dtype=torch.uint8).expand(256, -1, -1, -1).contiguous()
    out = augment.random_crop(x, 2, torch.Generator().manual_seed(0))
    distinct = {o.numpy().tobytes() for o in out}
    assert len(distinct) == 25  # all 5 x 5 offsets occur


def test_flip_is_per_sample():
    x = torch.arange(28, dtype=torch.uint8).repeat(200, 1, 28, 1)
    out = augment.random_flip(x, torch.Generator().manual_seed(0))
    flipped = (out[:, 0, 0, 0] == 27)
    assert 60 < flipped.sum() < 140
    assert torch.equal(out[flipped], x[flipped].flip(3)) and torch.equal(out[~flipped], x[~flipped])


def test_cutout_erases_one_square_per_sample_at_its_own_place():
    x = torch.full((100, 1, 28, 28), 255, dtype=torch.uint8)
    out = augment.random_cutout(x, 8, torch.Generator().manual_seed(0))
    erased = (out == 0).flatten(1).sum(1)
    assert erased.max() == 64 and erased.min() > 0  # clipped at the borders, never absent
    assert len({o.numpy().tobytes() for o in out}) > 50


def test_policy_keeps_dtype_and_shape():
    x = torch.randint(0, 256, (32, 1, 28, 28), dtype=torch.uint8)
    out = augment.apply(x, Augment(crop_pad=2, flip=True, cutout=8))
    assert out.dtype == torch.uint8 and out.shape == x.shape
    assert torch.equal(augment.apply(x, Augment(crop_pad=0, flip=False, cutout=0)), x)


def test_cutmix_pastes_a_box_of_the_neighbour_and_reports_each_samples_own_share():
    # sample i is filled with the value i, so every pixel tells whose it is
    x = torch.arange(64, dtype=torch.uint8).view(64, 1, 1, 1).expand(64, 1, 28, 28).contiguous()
    out, own = augment.cutmix(x, 1.0, torch.Generator().manual_seed(0))
    assert out.dtype == torch.uint8 and out.shape == x.shape
    from_self = (out == x).flatten(1).float().mean(1)
    from_neighbour = (out == x.roll(1, 0)).flatten(1).float().mean(1)
    assert torch.allclose(from_self, own) and torch.allclose(from_self + from_neighbour, torch.ones(64))
    assert own.min() < 0.5 and len(set(own.tolist())) > 30  # each sample has its own box


def test_cutmix_off_leaves_the_batch_and_full_label_weights():
    x = torch.randint(0, 256, (16, 1, 28, 28), dtype=torch.uint8)
    out, own = augment.cutmix(x, 0.0)
    assert torch.equal(out, x) and torch.equal(own, torch.ones(16))


def test_augment_flag_reads_a_cutmix_probability():
    from nas.config import parse_augment
    assert parse_augment("crop=2,cutmix=0.5", "--augment") == {"crop_pad": 2, "cutmix": 0.5}


def test_resized_crop_stretches_one_box_per_sample_back_to_full_size():
    # channel 0 holds each pixel's row, channel 1 its column, channel 2 the sample: the output says where it came from
    b, side = 200, 64
    rows = torch.arange(side, dtype=torch.uint8)[:, None].expand(side, side)
    x = torch.stack([torch.stack([rows, rows.T, torch.full_like(rows, i)]) for i in range(b)])
    out = augment.random_resized_crop(x, 0.35, torch.Generator().manual_seed(0))
    assert out.dtype == torch.uint8 and out.shape == x.shape
    assert torch.equal(out[:, 2], x[:, 2])  # every pixel stays in its own sample
    used_rows, used_cols = out[:, 0, :, 0].long(), out[:, 1, 0, :].long()
    assert (used_rows.diff(dim=1) >= 0).all() and (used_cols.diff(dim=1) >= 0).all()  # stretched, not shuffled
    span = lambda used: (used.amax(1) - used.amin(1) + 1).float() / side  # noqa: E731
    area = span(used_rows) * span(used_cols)
    assert area.min() > 0.3 and area.max() <= 1 and area.std() > 0.1  # boxes of 0.35-1 of the image, all different
    assert torch.equal(augment.random_resized_crop(x, 0.0), x)


def test_augment_flag_reads_a_resized_crop_fraction():
    from nas.config import parse_augment
    assert parse_augment("resized_crop=0.35,flip=1", "--augment") == {"resized_crop": 0.35, "flip": True}
