"""Pre/post-processing: every capture kind round-trips shape and dtype; padding and tiling leave no trace."""

from __future__ import annotations

import numpy as np
import pytest
from virtualfocus.edge.errors import InputError
from virtualfocus.edge.preprocess import MIN_SIDE, Normalizer, PadCrop, Tiler, from_unit, to_unit

KINDS = [
    ((40, 52), np.uint8),
    ((40, 52, 1), np.uint8),
    ((40, 52, 3), np.uint8),
    ((40, 52, 4), np.uint8),
    ((33, 47, 3), np.uint16),
    ((33, 47), np.uint16),
    ((20, 21, 3), np.float32),
    ((20, 21, 4), np.float64),
    ((20, 21), np.float16),
]


@pytest.mark.parametrize(("shape", "dtype"), KINDS)
def test_unit_round_trip_keeps_shape_dtype_and_values(shape, dtype):
    rng = np.random.default_rng(1)
    if np.dtype(dtype).kind == "u":
        hi = 4095 if dtype == np.uint16 else 255
        img = rng.integers(0, hi + 1, shape).astype(dtype)
    else:
        img = rng.random(shape).astype(dtype)
    unit, info = to_unit(img)
    assert unit.dtype == np.float32 and unit.ndim == 3 and unit.shape[2] in (1, 3)
    assert unit.min() >= 0.0 and unit.max() <= 1.0
    back = from_unit(unit, info)
    assert back.shape == img.shape and back.dtype == img.dtype
    tol = 1e-3 if dtype == np.float16 else 1e-6
    np.testing.assert_allclose(back.astype(np.float64), img.astype(np.float64), atol=tol if img.dtype.kind == "f" else 0)


def test_twelve_bit_uint16_is_scaled_by_its_bit_depth():
    img = np.full((20, 20), 4095, np.uint16)
    unit, info = to_unit(img)
    assert info.scale == 4095 and unit.max() == pytest.approx(1.0)
    unit16, _ = to_unit(img, bit_depth=16)
    assert unit16.max() == pytest.approx(4095 / 65535)


def test_float_above_one_keeps_its_own_scale():
    img = np.linspace(0, 1000, 400, dtype=np.float32).reshape(20, 20)
    unit, info = to_unit(img)
    assert unit.max() == pytest.approx(1.0)
    np.testing.assert_allclose(from_unit(unit, info), img, rtol=1e-6)


def test_nan_and_inf_are_replaced_and_counted():
    img = np.full((20, 20, 3), 0.5, np.float32)
    img[0, 0, 0] = np.nan
    img[1, 1, 1] = np.inf
    unit, info = to_unit(img)
    assert np.isfinite(unit).all() and info.nonfinite == 2


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (np.zeros((0, 10, 3), np.uint8), "too small"),
        (np.zeros((MIN_SIDE - 1, 40), np.uint8), "too small"),
        (np.zeros((20, 20, 2), np.uint8), "shape"),
        (np.zeros((20, 20), np.int32), "dtype"),
        (np.zeros((2, 20, 20, 3), np.uint8), "shape"),
        ([[1, 2], [3, 4]], "list"),
        (np.full((20, 20), np.nan, np.float32), "NaN"),
    ],
)
def test_bad_images_are_refused_with_a_clear_message(bad, match):
    with pytest.raises(InputError, match=match):
        to_unit(bad, name="capture")


def test_non_contiguous_and_read_only_arrays_are_accepted():
    base = np.random.default_rng(0).integers(0, 255, (64, 80, 3), dtype=np.uint8)
    view = base[::2, ::2]
    view.flags.writeable = False
    unit, info = to_unit(view)
    np.testing.assert_array_equal(from_unit(unit, info), view)


def test_normalizer_round_trip_and_gray_to_rgb():
    unit = np.random.default_rng(0).random((10, 12, 1)).astype(np.float32)
    n = Normalizer((-1.0, 1.0), 3)
    x = n.before(unit)
    assert x.shape == (1, 3, 10, 12) and x.min() >= -1 and x.max() <= 1
    np.testing.assert_allclose(n.after(x)[..., :1], unit, atol=1e-6)


@pytest.mark.parametrize(("h", "w"), [(360, 360), (401, 401), (17, 300), (16, 16)])
def test_padcrop_reaches_the_multiple_and_crops_back(h, w):
    img = np.random.default_rng(0).random((h, w, 3)).astype(np.float32)
    pc = PadCrop(32, min_size=32)
    padded, pads = pc.pad(img)
    assert padded.shape[0] % 32 == 0 and padded.shape[1] % 32 == 0
    np.testing.assert_array_equal(PadCrop.crop(padded, pads), img)


def test_tiler_plans_few_equal_tiles_for_a_scan_image():
    t = Tiler(max_tile=1024, overlap=32, multiple=16)
    th, tw = t.tile_shape(1200, 1920)
    tiles = list(t.tiles(1200, 1920))
    assert len(tiles) == 4 and th % 16 == 0 and tw % 16 == 0 and th <= 1024 and tw <= 1024
    assert all((s[0].stop - s[0].start, s[1].stop - s[1].start) == (th, tw) for s in tiles)


def test_tiled_identity_is_exact_and_seamless_on_a_gradient():
    h, w = 700, 1100
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([xx / w, yy / h, (xx + yy) / (h + w)], axis=2)
    t = Tiler(max_tile=256, overlap=32, multiple=16)
    out = t.run(img, lambda tile: tile.copy())
    np.testing.assert_allclose(out, img, atol=1e-6)
    # smooth across tile borders: second differences stay at the gradient's (zero) level everywhere
    d2 = np.abs(np.diff(out, n=2, axis=1)).max()
    assert d2 < 1e-5


def test_tiler_blends_a_per_tile_offset_without_hard_edges():
    """A model that adds a different constant per tile: the blend must ramp, never jump by the full offset."""
    h, w = 300, 500
    img = np.zeros((h, w, 1), np.float32)
    calls = iter(range(100))
    t = Tiler(max_tile=128, overlap=32, multiple=16)
    out = t.run(img, lambda tile: tile + np.float32(next(calls) % 2))
    jumps = np.abs(np.diff(out[..., 0], axis=1)).max()
    assert jumps < 0.2  # a 1.0 step spread over a 32-px raised cosine
