"""Evaluation end to end on tiny simulated stacks, the report files, bad-input handling and the baselines."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from virtualfocus.edge.errors import InputError
from virtualfocus.evaluation import baselines as B
from virtualfocus.evaluation.evaluate import evaluate, main, write_report
from virtualfocus.simulation.simulate import SimConfig, simulate_stack
from virtualfocus.zstacks.stack import ZStack, write_stack

TINY = SimConfig(size=64)


@pytest.fixture(scope="module")
def stacks() -> list[ZStack]:
    return [simulate_stack(s, config=TINY) for s in (1, 2, 3)]


def test_identity_reproduces_the_input_table(stacks: list[ZStack]) -> None:
    r = evaluate(lambda x: x, stacks, name="identity")
    assert r.stacks == ["sim-000001", "sim-000002", "sim-000003"]
    assert r.levels[0] == pytest.approx(-1.6) and r.levels[-1] == pytest.approx(1.6)
    t_in, t_id = r.level_table("input"), r.level_table("identity")
    for m in ("MSE", "SSIM", "PSNR", "FR", "FPW"):
        assert np.allclose(t_in[m], t_id[m], equal_nan=True)
    centre = int(np.argmin(np.abs(r.levels)))
    assert t_in["MSE"][centre] == 0.0 and t_in["PSNR"][centre] == 50.0
    assert t_in["MSE"][0] > t_in["MSE"][centre + 1]
    sr = r.success["identity"]["MSE"]
    # the input itself succeeds in the sharp band and fails far from focus
    assert sr.per_level[centre] == 100.0
    assert sr.per_level[0] == 0.0 and sr.per_level[-1] == 0.0
    assert sr.per_interval["-0.2:0.2"] > sr.per_interval["-1.2:1.2"]


def test_report_files(stacks: list[ZStack], tmp_path: Path) -> None:
    blur = lambda x: B.unsharp_mask(x, sigma=1.0, amount=0.5)  # noqa: E731
    r = evaluate(lambda x: x, stacks, name="identity", baselines={"unsharp": blur})
    md = write_report(r, tmp_path / "rep")
    names = {p.name for p in (tmp_path / "rep").iterdir()}
    assert {"report.json", "report.md", "metric_vs_level.png", "focus_curves.png", "panel_0.png"} <= names
    assert not [n for n in names if n.startswith(".")]  # no temp files left behind
    text = md.read_text()
    assert "Table 6.1" in text and "Table 7.1" in text and "appendix A" in text
    data = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert data["methods"] == ["input", "identity", "unsharp"]
    assert len(data["per_level_mean"]["input"]["MSE"]) == 17
    assert "-0.8:0.8" in data["success"]["unsharp"]["FPW"]["per_interval_pct"]


def test_bad_stacks_are_reported_and_skipped(stacks: list[ZStack], tmp_path: Path) -> None:
    data = tmp_path / "data"
    for s in stacks[:2]:
        write_stack(data / s.name, s)
    bad = write_stack(data / "sim-broken", stacks[2])
    bad.write_bytes(b"not a tiff")
    out = tmp_path / "rep"
    assert main(["--model", "identity", "--data", str(data), "--out", str(out)]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["stacks"] == ["sim-000001", "sim-000002"]
    assert len(rep["skipped"]) == 1 and "sim-broken" in rep["skipped"][0]["stack"]
    assert "sim-broken" in (out / "report.md").read_text()


def test_nan_stack_and_bad_restorer(stacks: list[ZStack]) -> None:
    nan_planes = stacks[0].planes.astype(np.float32) / 255
    nan_planes[3, 5, 5, 1] = np.nan
    nan_stack = ZStack(nan_planes, stacks[0].offsets_um, stacks[0].sharp_index, name="nan-stack")
    r = evaluate(lambda x: x, [nan_stack, stacks[1]])
    assert r.stacks == [stacks[1].name]
    assert r.skipped[0][0] == "nan-stack" and "NaN" in r.skipped[0][1]
    with pytest.raises(InputError, match="no stack could be evaluated"):
        evaluate(lambda x: x[:-1], [stacks[0]], name="cropper")
    with pytest.raises(InputError, match="no stacks given"):
        evaluate(lambda x: x, [])


def test_one_plane_and_mismatched_stacks_are_input_errors() -> None:
    with pytest.raises(InputError, match="at least 2"):
        ZStack(np.zeros((1, 32, 32, 3), np.uint8), [0.0], 0, name="single")
    with pytest.raises(InputError, match="empty"):
        ZStack(np.zeros((3, 0, 32, 3), np.uint8), [0.0, 0.2, 0.4], 0, name="empty")


def test_baselines_behave() -> None:
    rng = np.random.default_rng(0)
    img = (rng.random((40, 40, 3)) * 255).astype(np.uint8)
    assert np.array_equal(B.unsharp_mask(img, sigma=2.0, amount=0.0), img)
    delta = np.zeros((3, 3), np.float32)
    delta[1, 1] = 1
    assert np.abs(B.richardson_lucy(img, delta, iterations=5).astype(int) - img).max() <= 1
    k = B.gaussian_psf(1.5)
    assert k.sum() == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(InputError, match="sigma"):
        B.unsharp_mask(img, sigma=0)


def test_baseline_tuning_picks_from_the_grid(stacks: list[ZStack]) -> None:
    um = B.tune_unsharp(stacks[:1], sigmas=(1.0, 2.0), amounts=(0.5, 1.0), max_planes=3)
    assert um.params["sigma"] in (1.0, 2.0) and um.params["amount"] in (0.5, 1.0)
    rl = B.tune_richardson_lucy(stacks[:1], widths=(1.0, 2.0), iterations=(3,), max_planes=3)
    assert rl.params["psf_sigma_px"] in (1.0, 2.0)
    x = stacks[0].planes[2]
    assert rl(x).shape == x.shape and rl(x).dtype == x.dtype


def test_two_shot_models_get_the_partner_plane_above(stacks: list[ZStack], tmp_path: Path) -> None:
    seen: list[float] = []

    def sharper(x: np.ndarray, partner: np.ndarray) -> np.ndarray:
        from virtualfocus.edge.metrics import focus_measure

        seen.append(float(np.abs(x.astype(float) - partner.astype(float)).mean()))
        return x if focus_measure(x) >= focus_measure(partner) else partner

    r = evaluate(sharper, stacks, name="pair", partner_um=0.6, baselines={"identity": lambda x: x})
    t_in, t_pair = r.level_table("input"), r.level_table("pair")
    above = r.levels > 1.0 + 1e-6  # no plane 0.6 µm above within ±1.6 µm
    assert np.isnan(t_pair["MSE"][above]).all() and not np.isnan(t_pair["MSE"][~above]).any()
    assert len(seen) == 3 * int((~above).sum()) and min(seen) > 0  # the partner is a different plane
    # picking the sharper of the pair never does worse than the capture alone, and helps below focus
    assert (t_pair["FR"][~above] >= t_in["FR"][~above] - 1e-9).all()
    i = int(np.argmin(np.abs(r.levels + 0.6)))
    assert t_pair["MSE"][i] < t_in["MSE"][i]
    np.testing.assert_allclose(r.level_table("identity")["MSE"], t_in["MSE"])
    write_report(r, tmp_path / "rep")  # NaN levels do not break the report
    assert (tmp_path / "rep" / "report.md").is_file()


def test_levels_not_beating_input_are_listed(stacks: list[ZStack]) -> None:
    r = evaluate(lambda x: x, stacks, name="same", baselines={"blur": lambda x: cv2.GaussianBlur(x, (0, 0), 3.0)},
                 ssim=False)
    outside = [round(float(v), 1) for v in r.levels if not -0.2 - 1e-6 <= v <= 0.4 + 1e-6]
    assert r.levels_not_beating_input("same") == {"MSE": outside, "FPW": outside}  # equal is not better
    assert r.levels_not_beating_input("blur")["MSE"]  # blurring more never beats the input
