"""The quality report's calibration of the in-focus pass-through (restoration gain), on tiny simulated stacks."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from virtualfocus.edge.defocus import FocusGainCalibration
from virtualfocus.evaluation.evaluate import evaluate
from virtualfocus.simulation.simulate import SimConfig, simulate_stack

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def qr():
    spec = importlib.util.spec_from_file_location("quality_report", ROOT / "benchmarks" / "quality_report.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_gain_calibration_keeps_the_sharp_band_unharmed(qr):
    stacks = [simulate_stack(s, config=SimConfig(size=96)) for s in (11, 12, 13)]
    # A stand-in "model" that restores every capture to its ground truth plus noise: a large gain far from focus,
    # about 1 in focus, where the noise makes it worse than the capture (the harm the pass-through must avoid).
    truth = {hash(p.tobytes()): s.sharp for s in stacks for p in s.planes}
    rng = np.random.default_rng(0)

    def oracle(x: np.ndarray) -> np.ndarray:
        y = truth[hash(x.tobytes())].astype(np.float64) + rng.normal(0, 1.0, x.shape)
        return np.clip(y, 0, 255).astype(x.dtype)

    res = evaluate(oracle, stacks, name="usm", ssim=False)
    cal = qr.calibrate_focus_gain(res, "usm")
    assert cal["levels_um"] == [round(float(v), 3) for v in res.levels] and cal["stacks"] == 3
    gain = np.array(cal["gain"])
    assert gain[np.argmin(np.abs(res.levels))] < gain[0] and gain[np.argmin(np.abs(res.levels))] < gain[-1]
    t = cal["in_focus_below"]
    assert t is not None and t in qr.GAIN_GRID
    # Applied as the runtime applies it, the threshold leaves the sharp band within 0.3 dB of the input.
    with np.errstate(all="ignore"):
        g = res.scores["usm"]["FR"] / res.scores["input"]["FR"]
    psnr = np.where(g < t, res.scores["input"]["PSNR"], res.scores["usm"]["PSNR"])
    band = (res.levels > -0.25) & (res.levels < 0.45)
    change = np.nanmean(psnr[:, band], axis=0) - np.nanmean(res.scores["input"]["PSNR"][:, band], axis=0)
    assert change.min() >= -0.3
    alone = np.nanmean(res.scores["usm"]["PSNR"][:, band], axis=0) - np.nanmean(res.scores["input"]["PSNR"][:, band], axis=0)
    assert alone.min() < -0.3  # restoring everything did harm the sharp band
    # … and it is a calibration the runtime accepts (written into the manifest as focus_gain).
    c = FocusGainCalibration.from_dict(cal)
    assert c.magnitude_um(float(gain.max())) == pytest.approx(max(abs(res.levels)), abs=0.25)


def test_two_shot_calibration_measures_against_the_sharper_shot(qr):
    stacks = [simulate_stack(s, config=SimConfig(size=96)) for s in (21, 22, 23)]
    truth = {hash(p.tobytes()): s.sharp for s in stacks for p in s.planes}
    rng = np.random.default_rng(1)

    def oracle(x: np.ndarray, partner: np.ndarray) -> np.ndarray:  # a two-shot "model": ground truth plus noise
        y = truth[hash(x.tobytes())].astype(np.float64) + rng.normal(0, 1.0, x.shape)
        return np.clip(y, 0, 255).astype(x.dtype)

    res = evaluate(oracle, stacks, name="pair", ssim=False, partner_um=0.6)
    cal = qr.calibrate_focus_gain(res, "pair", partner_um=0.6)
    t = cal["in_focus_below"]
    assert t is not None and t in qr.GAIN_GRID
    # The fuser returns the sharper shot of the pair: where that is the partner (0.6 µm above), the kept image is
    # the partner's; below focus the partner is the sharper one and the gain is measured against it.
    s_in, s_out = res.scores["input"], res.scores["pair"]
    k = 3
    above = np.full_like(s_in["FR"], np.nan)
    above[:, :-k] = s_in["FR"][:, k:]
    base = np.where(above > s_in["FR"], above, s_in["FR"])
    i_below = int(np.argmin(np.abs(res.levels + 0.4)))  # -0.4 µm: its partner +0.2 µm is sharper
    assert np.all(base[:, i_below] > s_in["FR"][:, i_below])
    gain = dict(zip(cal["levels_um"], cal["gain"], strict=True))
    lv = round(float(res.levels[i_below]), 3)
    assert gain[lv] == pytest.approx(float(np.median(s_out["FR"][:, i_below] / base[:, i_below])), rel=1e-3)
    # levels without a partner in the stack have no model score, so no gain; the runtime accepts the calibration
    assert len(cal["levels_um"]) == len(res.levels) - k and max(cal["levels_um"]) < max(res.levels)
    assert FocusGainCalibration.from_dict(cal).in_focus_below == t
