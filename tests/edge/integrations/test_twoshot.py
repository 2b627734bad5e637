"""Two-shot mode: shift estimation, sharper-first fusion, fallbacks; drift telemetry."""

from __future__ import annotations

import logging
import time

import cv2
import numpy as np
import pytest
from virtualfocus.edge import FocusRuntime
from virtualfocus.edge.defocus import FocusGainCalibration
from virtualfocus.edge.integrations import (
    DefocusEstimate,
    DriftMonitor,
    FocusDriftDetected,
    FocusDriftRecovered,
    FocusMeasureEstimator,
    StreamFrame,
    TwoShotConfig,
    TwoShotFuser,
    TwoShotStream,
    estimate_shift,
    load_two_shot_engine,
)
from virtualfocus.edge.manifest import Manifest
from virtualfocus.edge.metrics import brenner
from virtualfocus.edge.runtime import FrameStatus
from virtualfocus.simulation.simulate import make_field
from virtualfocus.zstacks.stack import ZStack

from tests.edge.helpers import make_model_folder, make_two_input_model_folder
from tests.edge.integrations.conftest import SIZE, capture


def _shift(img: np.ndarray, dy: float, dx: float) -> np.ndarray:
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), flags=cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_REFLECT_101)


@pytest.mark.parametrize("dy,dx", [(0.3, -0.7), (2.25, 1.5), (-3.6, 2.1)])
def test_known_subpixel_shift_recovered(dy, dx):
    f = make_field(np.random.default_rng(3), size=160)
    a = capture(f, -0.4, 1)[..., 1].astype(np.float32) / 255
    b = _shift(capture(f, 0.4, 2)[..., 1].astype(np.float32) / 255, dy, dx)
    ey, ex = estimate_shift(a, b)
    assert abs(ey - dy) < 0.2 and abs(ex - dx) < 0.2


def test_fusion_uses_sharper_first_and_aligns(runtime, two_shot_model, field):
    fuser = TwoShotFuser(runtime, load_two_shot_engine(two_shot_model))
    sharp, blurred = capture(field, 0.0, 1), capture(field, 1.0, 2)
    assert brenner(sharp) > brenner(blurred)
    res = fuser.fuse(blurred, sharp, {"k": 1})  # the sharper one captured second
    assert res.mode == "fused" and res.base_shot == 1
    assert res.frame.status.restored and res.frame.variant == "two-shot"
    # the "first" test model returns its first input: the sharper capture, unchanged
    assert np.abs(res.frame.image.astype(int) - sharp.astype(int)).max() <= 1
    md = res.metadata()
    assert md["virtualfocus.two_shot"] == "fused" and md["virtualfocus.base_shot"] == 1
    # a ±0.4 µm pair whose second shot moved by (1.5, -0.5) px: found and re-aligned
    first, second = capture(field, -0.4, 3), _shift(capture(field, 0.4, 4), 1.5, -0.5)
    res2 = fuser.fuse(first, second)
    moved = res2.shift if res2.base_shot == 0 else type(res2.shift)(-res2.shift.dy, -res2.shift.dx, 0.0)
    assert abs(moved.dy - 1.5) < 0.2 and abs(moved.dx + 0.5) < 0.2
    assert res2.mode == "fused" and res2.shift.correlation > 0.9


def test_in_focus_sharper_shot_comes_back_untouched(runtime, tmp_path, field):
    # A "mean" two-shot model only blurs: on a pair whose sharper shot is in focus its gain F(out)/F(sharper) < 1.
    folder = make_two_input_model_folder(tmp_path / "two-shot-mean", kind="mean")
    m = Manifest.load(folder)
    m.focus_gain = FocusGainCalibration(levels_um=(0.0, 0.6, 1.2), gain=(1.0, 1.5, 3.0), in_focus_below=1.05, stacks=3)
    m.save(folder)
    sharp, partner = capture(field, 0.0, 1), capture(field, 0.6, 2)
    fuser = TwoShotFuser(runtime, load_two_shot_engine(folder))
    res = fuser.fuse(partner, sharp, {"k": 1})
    assert res.mode == "in-focus" and res.base_shot == 1 and res.frame.status is FrameStatus.IN_FOCUS
    assert res.frame.image is sharp and "already in focus" in res.frame.message  # the capture itself, not a copy
    assert res.metadata()["virtualfocus.two_shot"] == "in-focus"
    # pass_in_focus=False gives the model alone: the blurred mean of the two shots
    alone = TwoShotFuser(runtime, load_two_shot_engine(folder), config=TwoShotConfig(pass_in_focus=False))
    res2 = alone.fuse(partner, sharp)
    assert res2.mode == "fused" and res2.frame.status.restored and brenner(res2.frame.image) < brenner(sharp)
    # a manifest without the calibration fuses as before
    m.focus_gain = None
    m.save(folder)
    assert TwoShotFuser(runtime, load_two_shot_engine(folder)).fuse(partner, sharp).mode == "fused"


def test_disagreeing_shots_fall_back_single_shot(runtime, two_shot_model, field):
    fuser = TwoShotFuser(runtime, load_two_shot_engine(two_shot_model), config=TwoShotConfig(max_shift_px=2.0))
    a = capture(field, 0.2, 1)
    other = make_field(np.random.default_rng(99), size=SIZE).render(0.2, rng=np.random.default_rng(3))
    res = fuser.fuse(a, other)
    assert res.mode == "single-shot" and "disagree" in res.reason
    assert res.frame.status.restored and res.frame.variant == "identity"  # the runtime's single-shot model
    res2 = fuser.fuse(a, _shift(a, 5.0, 0.0))
    assert res2.mode == "single-shot" and "max_shift_px" in res2.reason
    res3 = fuser.fuse(a, a[:50])
    assert res3.mode == "single-shot" and "shape" in res3.reason


def test_stream_pairs_in_order_and_second_shot_timeout(runtime, two_shot_model, field, caplog):
    got: list[StreamFrame] = []
    cfg = TwoShotConfig(pair_timeout_ms=150)
    engine = load_two_shot_engine(two_shot_model)
    with caplog.at_level(logging.WARNING, logger="virtualfocus"), \
            TwoShotStream(runtime, engine, config=cfg, on_frame=got.append) as s:
        assert s.push(capture(field, -0.4, 1), {"g": "A"}, group="A", z_um=-0.4) == 0  # partner never comes
        assert s.push(capture(field, -0.4, 2), {"g": "B"}, group="B", z_um=-0.4) == 1
        assert s.push(capture(field, 0.4, 3), {"g": "B2"}, group="B", z_um=0.4) == 1
        assert s.push(capture(field, 0.0, 4), {"g": "C"}, group=None) == 2  # no partner expected
        t0 = time.perf_counter()
        assert s.flush(5.0)
        waited = time.perf_counter() - t0
    assert [f.seq for f in got] == [0, 1, 2]
    assert [f.metadata["g"] for f in got] == ["A", "B", "C"]  # the first shot's metadata
    a, b, c = (f.metadata for f in got)
    assert a["virtualfocus.two_shot"] == "single-shot" and "never arrived" in a["virtualfocus.two_shot_reason"]
    assert b["virtualfocus.two_shot"] == "fused" and b["virtualfocus.status"] == "restored"
    assert c["virtualfocus.two_shot"] == "single-shot" and "no partner" in c["virtualfocus.two_shot_reason"]
    assert waited < 2.0
    assert "never arrived" in caplog.text


def test_drift_monitor_events_and_summary(field):
    mon = DriftMonitor(FocusMeasureEstimator(), trusted_defocus_um=(-0.6, 0.6), confirm=2, window=20)
    events: list[object] = []
    mon.events.connect(FocusDriftDetected, events.append)
    mon.events.connect(FocusDriftRecovered, events.append)
    offsets = [0.0, 0.0, 0.2, 0.4, 0.6, 0.9, 1.2, 1.4, 1.4, 0.0, 0.0, 0.0]
    for i, d in enumerate(offsets):
        mon.observe(capture(field, d, i), key=0)
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["FocusDriftDetected", "FocusDriftRecovered"]
    det = events[0]
    assert det.key == 0 and det.defocus_um > 0.6 and det.signed is False
    s = mon.summary(key=0)
    assert s["n"] == len(offsets) and s["out_of_range"] >= 2 and s["drifting"] == []
    est = [x.defocus_um for x in mon.trace(key=0)]
    assert est[6] > est[3] > est[0]  # grows with the true defocus
    # trend over the drifting part is positive
    mon2 = DriftMonitor(trusted_defocus_um=(-2, 2))
    for i, d in enumerate([0.0, 0.2, 0.4, 0.6, 0.8]):
        mon2.observe(capture(field, d, i))
    assert mon2.summary()["trend_um_per_frame"] > 0


def test_signed_pair_estimate_and_calibration(field):
    ds = np.round(np.arange(-1.2, 1.21, 0.2), 2)
    planes = np.stack([field.render(d, noise=False) for d in ds])
    est = FocusMeasureEstimator.calibrate(ZStack(planes, ds, int(np.argmin(np.abs(ds))), name="cal"))
    assert 0.3 < est.width_um < 1.5
    for z_mid in (-0.5, 0.5):  # stage z of the pair's midpoint relative to focus
        lo, hi = capture(field, z_mid - 0.4, 1), capture(field, z_mid + 0.4, 2)
        d = est.estimate_pair([hi, lo], [z_mid + 0.4, z_mid - 0.4]).defocus_um  # any order
        assert np.sign(d) == np.sign(z_mid) and abs(d - z_mid) < 0.35


def test_drift_monitor_takes_trusted_range_from_manifest(tmp_path):
    folder = make_model_folder(tmp_path / "m")
    m = Manifest.load(folder)
    m.trusted_defocus_um = (-0.6, 1.0)
    m.save()
    with FocusRuntime.load(folder, ladder=False, warmup=5, threads=1) as rt:
        mon = DriftMonitor.for_runtime(rt, confirm=1)
        seen: list[object] = []
        rt.events.connect(FocusDriftDetected, seen.append)  # drift events arrive with the runtime's own events
        mon.record(DefocusEstimate(0.9, True), key="p0")
        mon.record(DefocusEstimate(-0.7, True), key="p1")
        mon.record(DefocusEstimate(0.7, False), key="p2")  # a magnitude: bounded by min(|−0.6|, 1.0)
    assert mon.trusted_um == (-0.6, 1.0)
    assert [e.key for e in seen] == ["p1", "p2"]
