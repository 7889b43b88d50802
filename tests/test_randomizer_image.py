"""ImageRandomizer: nominal is an exact identity, batches replay bitwise, same seed => same stream."""
from __future__ import annotations

import pytest
import torch

from randomizer import ImageRandomizer, interpolate_ranges, load_space
from randomizer.image import IMAGE_PARAMS

SPACE = load_space()


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small tensors on a shared 2-core machine: one thread avoids OpenMP spin-wait slowdowns."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _batch(b=6, h=40, w=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    # smooth content (a ramp + blobs) so blur/JPEG/colour ops have something to act on
    x = torch.rand(b, 3, h // 8, w // 8, generator=g)
    return torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)


def test_nominal_ranges_are_an_exact_identity():
    x = _batch()
    for ranges in (SPACE.ranges("nominal", "image"), {}, SPACE.ranges("nominal")):
        aug = ImageRandomizer(SPACE, ranges, seed=0)
        assert aug.active() == []
        y = aug(x)
        assert torch.equal(y, x)


@pytest.mark.parametrize("name", IMAGE_PARAMS)
def test_each_op_changes_the_image_inside_unit_range(name):
    x = _batch(b=16)
    aug = ImageRandomizer(SPACE, {name: SPACE.params[name].widest}, jpeg_fraction=1.0, seed=1)
    y = aug(x)
    assert aug.active() == [name]
    assert y.shape == x.shape and y.dtype == x.dtype
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    assert float((y - x).abs().max()) > 0.02, f"{name} did nothing at its widest range"


def test_replay_with_same_params_is_bitwise_identical():
    x = _batch(b=8)
    aug = ImageRandomizer(SPACE, SPACE.ranges("widest", "image"), jpeg_fraction=0.5, seed=3)
    y = aug(x)
    params = aug.last_params
    aug(_batch(b=8, seed=1))  # draws new params and advances the stream
    assert not torch.equal(aug(x), y)
    y2 = aug(x, params)
    assert torch.equal(y2, y)
    # a fresh module with other ranges replays the same params too: params are self-contained
    other = ImageRandomizer(SPACE, SPACE.ranges("nominal", "image"))
    assert torch.equal(other(x, params), y)
    with pytest.raises(ValueError, match="another batch shape"):
        aug(x[:4], params)


def test_same_seed_same_stream_and_global_rng():
    x = _batch()
    ranges = SPACE.ranges("dr", "image")
    a, b, c = (ImageRandomizer(SPACE, ranges) for _ in range(3))
    a.set_seed(7)
    b.set_seed(7)
    c.set_seed(8)
    for _ in range(3):
        ya, yb, yc = a(x), b(x), c(x)
        assert torch.equal(ya, yb)
        assert not torch.equal(ya, yc)
    # without set_seed: the global torch RNG drives it
    g1, g2 = ImageRandomizer(SPACE, ranges), ImageRandomizer(SPACE, ranges)
    torch.manual_seed(5)
    y1 = g1(x)
    torch.manual_seed(5)
    assert torch.equal(g2(x), y1)


def test_set_ranges_takes_effect_without_rebuilding():
    x = _batch()
    aug = ImageRandomizer(SPACE, SPACE.ranges("nominal", "image"), seed=0)
    assert torch.equal(aug(x), x)
    aug.set_ranges({"brightness": (0.2, 0.2)})  # pinned boundary, as ADR draws it
    y = aug(x)
    assert torch.allclose(y, (x + 0.2).clamp(0, 1), atol=1e-6)
    aug.set_ranges(interpolate_ranges(SPACE, 0.5, "image"))
    assert set(aug.active()) == set(IMAGE_PARAMS)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_runs_on_cuda_and_replays():
    x = _batch(b=8).cuda()
    aug = ImageRandomizer(SPACE, SPACE.ranges("widest", "image"), jpeg_fraction=0.5, seed=0)
    y = aug(x)
    assert y.device == x.device
    assert torch.equal(aug(x, aug.last_params), y)


def test_cpu_jpeg_is_a_real_codec_close_to_kornias():
    """The CPU path (OpenCV's libjpeg) agrees with kornia's differentiable codec (the other devices' path) to within
    JPEG's own error, loses more at lower quality, and keeps each colour in its channel."""
    import kornia
    from randomizer.image import jpeg_round_trip
    x = _batch(b=4, h=64, w=64)
    q = torch.tensor([15.0, 40.0, 70.0, 95.0])
    ours, ref = jpeg_round_trip(x, q), kornia.enhance.jpeg_codec_differentiable(x, q).clamp(0, 1)
    err = (ours - x).abs().flatten(1).mean(1)
    assert (err[:-1] > err[1:]).all() and err[-1] < 0.01
    assert float((ours - ref).abs().mean()) < 0.5 * float(err[0])
    red = torch.zeros(1, 3, 32, 32)
    red[:, 0] = 0.9
    out = jpeg_round_trip(red, torch.tensor([50.0]))
    assert out[0, 0].mean() > 0.8 and out[0, 2].mean() < 0.1
