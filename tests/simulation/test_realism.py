"""Two-sided blur statistics of through-focus series."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter
from virtualfocus.simulation.realism import band, curve_at, pair_statistics


def _texture(seed: int = 0, size: int = 96) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 128 + 60 * gaussian_filter(rng.standard_normal((size, size)), 1.0, mode="wrap") / 0.28


def _stack(sigmas: list[float], odd: float = 0.0, seed: int = 0) -> np.ndarray:
    """Planes blurred by ``sigmas`` (the middle one sharpest) plus an optional term of opposite sign per side."""
    t = _texture(seed)
    other = _texture(seed + 1)
    mid = len(sigmas) // 2
    planes = []
    for i, s in enumerate(sigmas):
        p = gaussian_filter(t, s, mode="wrap") if s > 0 else t.copy()
        p += odd * np.sign(i - mid) * abs(i - mid) * (other - 128)
        planes.append(np.clip(p, 0, 255).astype(np.uint8))
    return np.stack(planes)


def test_symmetric_blur_correlates_and_flipped_changes_anticorrelate() -> None:
    sym = pair_statistics(_stack([2.0, 1.4, 0.8, 0.0, 0.8, 1.4, 2.0]), register=False)
    assert [s.k for s in sym] == [1, 2, 3]
    assert all(s.y > 0.95 and s.r < 0.05 for s in sym)
    assert sym[0].x > sym[1].x > sym[2].x
    # a change that flips sign across focus (phase contrast, one-sided layers) and a slight blur on both sides
    t, other = _texture(3), gaussian_filter(_texture(4), 4.0, mode="wrap") - 128
    side = gaussian_filter(t, 0.4, mode="wrap")
    flip = np.stack([side - other, t, side + other]).clip(0, 255).astype(np.uint8)
    got = pair_statistics(flip, register=False)
    assert got[0].k == 1 and got[0].y < -0.5


def test_statistic_does_not_depend_on_step_or_content() -> None:
    fine = pair_statistics(_stack([1.6, 1.2, 0.8, 0.4, 0.0, 0.4, 0.8, 1.2, 1.6], seed=1), register=False)
    coarse = pair_statistics(_stack([1.6, 0.8, 0.0, 0.8, 1.6], seed=2), register=False)
    xs = np.array([coarse[0].x, coarse[1].x])
    assert np.allclose(curve_at(fine, xs), curve_at(coarse, xs), atol=0.05)


def test_registration_undoes_a_drift() -> None:
    planes = _stack([1.4, 0.8, 0.0, 0.8, 1.4])
    ref = pair_statistics(planes, register=False)
    moved = planes.copy()
    moved[0] = np.roll(planes[0], (2, -3), axis=(0, 1))
    got = pair_statistics(moved, register=True)
    assert abs(got[1].y - ref[1].y) < 0.05


def test_band_percentiles() -> None:
    curves = [
        pair_statistics(_stack([1.5, 0.7, 0.0, 0.7 + 0.1 * i, 1.5], seed=i), register=False) for i in range(5)
    ]
    xs = np.array([0.5])
    lo, med, hi, count = band(curves, xs)
    assert count[0] <= 5 and (np.isnan(lo[0]) or lo[0] <= med[0] <= hi[0])
