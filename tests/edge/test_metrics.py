"""Thesis metrics on hand-computed cases, SSIM against scikit-image, and the success-rate tables."""

from __future__ import annotations

import itertools
import time

import cv2
import numpy as np
import pytest
from virtualfocus.edge import metrics as M
from virtualfocus.edge.errors import InputError

V = 10.0
VALID = 13 * 13  # a 25×25 image has a 13×13 valid region for the 13-tap focus filters


def impulse(dtype: type = np.uint8, rgb: bool = True) -> np.ndarray:
    g = np.zeros((25, 25), np.float64)
    g[12, 12] = V
    if not rgb:
        return g.astype(dtype)
    img = np.zeros((25, 25, 3), np.float64)
    img[..., 1] = g
    img[..., 0] = 200  # red and blue must not matter for F
    return img.astype(dtype)


def test_focus_measure_of_an_impulse() -> None:
    # ωx*G is (−V, 2V, −V) along a row: 6V² per direction, 12V² in all, averaged over the valid region
    assert M.focus_measure(impulse()) == pytest.approx(12 * V * V / VALID)
    assert M.focus_measure(impulse(rgb=False)) == pytest.approx(12 * V * V / VALID)
    assert M.focus_measure(impulse(rgb=False)[..., None]) == pytest.approx(12 * V * V / VALID)


def test_focus_measure_scale_of_other_dtypes() -> None:
    u16 = (impulse(np.float64) * 257).astype(np.uint16)
    f32 = (impulse(np.float64) / 255).astype(np.float32)
    assert M.focus_measure(u16) == pytest.approx(12 * V * V / VALID, rel=1e-6)
    assert M.focus_measure(f32) == pytest.approx(12 * V * V / VALID, rel=1e-5)
    assert float(M.to_255(np.array([65535], np.uint16))[0]) == pytest.approx(255.0)
    assert float(M.to_255(np.array([1.0], np.float32))[0]) == pytest.approx(255.0)


def test_ground_truth_is_the_sharpest_plane() -> None:
    rng = np.random.default_rng(0)
    sharp = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    planes = [cv2.GaussianBlur(sharp, (0, 0), s) for s in (3.0, 1.5)] + [sharp]
    planes += [cv2.GaussianBlur(sharp, (0, 0), s) for s in (1.0, 2.0)]
    assert M.ground_truth_index(np.stack(planes)) == 2
    curve = M.focus_curve(planes)
    assert curve.argmax() == 2 and curve[0] < curve[1]


def test_mse_psnr_by_hand() -> None:
    y = np.zeros((20, 20, 3), np.uint8)
    y[0, 0, 0] = 255
    yhat = y.copy()
    yhat[5:15, 5:15, :] = 2  # 300 pixel-channels off by 2 of 1200
    assert M.mse(y, yhat) == pytest.approx(4 * 300 / 1200)
    assert M.psnr(y, yhat) == pytest.approx(10 * np.log10(255**2 / 1.0))
    assert M.psnr(y, y) == 50.0
    assert M.mse(y, y) == 0.0


def test_fr_fpw_by_hand() -> None:
    sharp = impulse()
    flat = np.zeros_like(sharp)
    flat[..., 0] = 200
    assert M.fr(sharp, sharp) == pytest.approx(1.0)
    assert M.fr(sharp, flat) == 0.0
    # FPW of a flat image against an impulse: |(ωx*Y)² − 0| + |(ωy*Y)² − 0| averaged = F(Y)
    assert M.fpw(sharp, flat) == pytest.approx(12 * V * V / VALID)
    assert M.fpw(sharp, sharp) == 0.0
    half = impulse(np.float64)
    half[..., 1] /= 2
    assert M.fr(sharp, half.astype(np.uint8)) == pytest.approx(0.25)


def test_brenner_of_a_ramp() -> None:
    ramp = np.tile(np.arange(30, dtype=np.uint8), (10, 1))
    assert M.brenner(ramp) == pytest.approx(4.0)


def test_ssim_matches_scikit_image() -> None:
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(4)
    y = cv2.GaussianBlur((rng.random((80, 90, 3)) * 255).astype(np.uint8), (0, 0), 1.0)
    yhat = np.clip(y.astype(int) + rng.integers(-20, 20, y.shape), 0, 255).astype(np.uint8)
    ref = structural_similarity(
        y,
        yhat,
        channel_axis=-1,
        data_range=255,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
    )
    assert M.ssim(y, yhat) == pytest.approx(ref, abs=1e-6)
    assert M.ssim(y, y) == pytest.approx(1.0)
    gray = structural_similarity(
        y[..., 1], yhat[..., 1], data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    assert M.ssim(y[..., 1], yhat[..., 1]) == pytest.approx(gray, abs=1e-6)


def test_score_pair_agrees_with_single_metrics() -> None:
    rng = np.random.default_rng(5)
    y = (rng.random((48, 48, 3)) * 255).astype(np.uint8)
    yhat = cv2.GaussianBlur(y, (0, 0), 1.2)
    s = M.score_pair(M.reference(y), yhat)
    assert s["MSE"] == pytest.approx(M.mse(y, yhat))
    assert s["PSNR"] == pytest.approx(M.psnr(y, yhat))
    assert s["SSIM"] == pytest.approx(M.ssim(y, yhat))
    assert s["FR"] == pytest.approx(M.fr(y, yhat), rel=1e-6)
    assert s["FPW"] == pytest.approx(M.fpw(y, yhat), rel=1e-6)


def test_bad_inputs_raise_input_error() -> None:
    y = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(InputError, match="differs"):
        M.mse(y, np.zeros((32, 31, 3), np.uint8))
    nan = np.zeros((32, 32, 3), np.float32)
    nan[3, 3, 1] = np.nan
    with pytest.raises(InputError, match="NaN"):
        M.focus_measure(nan)
    with pytest.raises(InputError, match="empty"):
        M.focus_measure(np.zeros((0, 5), np.uint8))
    with pytest.raises(InputError, match="too small"):
        M.focus_measure(np.zeros((8, 8), np.uint8))
    with pytest.raises(InputError, match="dtype"):
        M.to_255(np.zeros((4, 4), np.int32))


def test_success_tables_on_a_hand_made_case() -> None:
    levels = [-0.4, -0.2, 0.0, 0.2, 0.4]
    # stack 0: sharp-band inputs score 3, 4, 5 → threshold 5; stack 1: threshold 2
    inputs = np.array([[9.0, 3.0, 0.0, 4.0, 5.0], [8.0, 1.0, 0.0, 2.0, 1.5]])
    restored = np.array([[5.0, 2.0, 1.0, 6.0, 9.5], [3.0, 2.0, 0.5, 1.0, np.nan]])
    t = M.success_tables(inputs, restored, levels, metric="MSE")
    # per level: -0.4: [5≤5 ✓, 3≤2 ✗] 50 %; -0.2: [✓, ✓]; 0: [✓, ✓]; 0.2: [6≤5 ✗, ✓] 50 %; 0.4: [✗] (one stack)
    assert t.per_level.tolist() == pytest.approx([50.0, 100.0, 100.0, 50.0, 0.0])
    assert t.counts.tolist() == [2, 2, 2, 2, 1]
    assert t.per_interval["-0.2:0.2"] == pytest.approx(100 * 5 / 6)
    assert t.per_interval["-0.4:0.4"] == pytest.approx(100 * 6 / 9)
    # appendix A: restored 5 at −0.4 of stack 0 is matched by the input scoring 5 (level 0.4);
    # stack 1's restored 3 exceeds every input but 8 (level −0.4)
    assert t.match[0].tolist() == pytest.approx([50.0, 0.0, 0.0, 0.0, 50.0, 0.0])
    # 9.5 at 0.4 is worse than every input of stack 0 → last column
    assert t.match[4, -1] == pytest.approx(100.0)
    d = t.to_dict()
    assert d["per_interval_pct"]["-0.2:0.2"] == pytest.approx(83.333, abs=1e-3)
    with pytest.raises(InputError, match="sharp-band"):
        M.success_tables(inputs[:, :3], restored[:, :3], [-1.0, -0.8, 0.0])


def test_scoring_ten_images_finishes_and_orders_them_by_blur() -> None:
    # speed is the benchmarks' business (benchmarks/suite.py prints it); here only a bound that catches a hang or
    # an accidental O(n²) metric on a loaded CI machine, and a check that the scores mean something
    rng = np.random.default_rng(6)
    y = cv2.GaussianBlur((rng.random((360, 360, 3)) * 255).astype(np.uint8), (0, 0), 1.0)
    ref = M.reference(y)
    imgs = [cv2.GaussianBlur(y, (0, 0), 1 + i / 5) for i in range(10)]
    t0 = time.perf_counter()
    scores = [M.score_pair(ref, im) for im in imgs]
    assert (time.perf_counter() - t0) / len(imgs) < 1.0
    mse = [s["MSE"] for s in scores]
    assert all(a < b for a, b in itertools.pairwise(mse))  # more blur, further from the reference
