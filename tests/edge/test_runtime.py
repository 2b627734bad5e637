"""FocusRuntime: loading and verification, every input kind, tiling, latency guard, deadlines, faults, threads,
and flagging captures outside the trusted defocus range."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from virtualfocus.edge import (
    BudgetExceededEvent,
    DefocusEstimate,
    FallbackEngaged,
    FocusRuntime,
    FrameRestored,
    FrameStatus,
    InputError,
    ModelLoadError,
    UntrustedCapture,
)
from virtualfocus.edge.manifest import Manifest
from virtualfocus.edge.runtime import ModelEngine

from tests.edge.helpers import FailingBackend, SlowBackend, make_model_folder


@pytest.fixture
def shipped_root(tmp_path, monkeypatch):
    """A models folder with two shipped identity variants and a ladder, like the repository's models/."""
    root = tmp_path / "models"
    make_model_folder(root / "quality", name="quality")
    make_model_folder(root / "fast", name="fast")
    (root / "shipped.json").write_text(json.dumps(
        {"format": "virtualfocus-shipped/1", "default": "fast", "ladder": ["quality", "fast"]}))
    monkeypatch.setenv("VIRTUALFOCUS_MODELS", str(root))
    return root


def test_load_default_measures_itself(shipped_root):
    rt = FocusRuntime.load(warmup=5)
    assert rt.variant == "fast" and rt.ladder == ["fast", "passthrough"]
    r = rt.load_report
    assert r is not None and r.p95_ms >= r.p50_ms > 0 and r.backend == "openvino"
    rt2 = FocusRuntime.load("quality", warmup=5)
    assert rt2.ladder == ["quality", "fast", "passthrough"]


@pytest.mark.parametrize("backend", ["openvino", "onnxruntime"])
@pytest.mark.parametrize(
    ("shape", "dtype"),
    [((360, 360, 3), np.uint8), ((401, 401), np.uint8), ((100, 90, 4), np.uint8), ((64, 64, 1), np.uint16),
     ((50, 70, 3), np.float32), ((30, 30), np.float64)],
)
def test_identity_round_trips_every_input_kind(identity_model, backend, shape, dtype):
    rt = FocusRuntime.load(identity_model, backend=backend, warmup=5)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 4096 if dtype == np.uint16 else 256, shape).astype(dtype) if np.dtype(dtype).kind == "u" \
        else rng.random(shape).astype(dtype)
    frame = rt.restore(img, meta={"k": 1})
    assert frame.image.shape == img.shape and frame.image.dtype == img.dtype
    assert frame.status is FrameStatus.RESTORED and frame.variant == "identity" and frame.backend == backend
    assert frame.meta == {"k": 1} and frame.latency_ms > 0
    np.testing.assert_allclose(frame.image.astype(float), img.astype(float), atol=1e-5 if img.dtype.kind == "f" else 0)
    if img.ndim == 3 and img.shape[2] == 4:
        np.testing.assert_array_equal(frame.image[..., 3], img[..., 3])


def test_a_real_filter_changes_the_image(blur_model):
    rt = FocusRuntime.load(blur_model, warmup=5, precision="f32")
    img = np.zeros((64, 64), np.uint8)
    img[32, 32] = 255
    out = rt.restore(img).image
    assert out[32, 32] < 255 and out[31, 31] > 0  # a 3×3 box spreads the point


def test_scan_image_is_tiled_without_seams(identity_model):
    rt = FocusRuntime.load(identity_model, warmup=5, max_tile=512)
    h, w = 1200, 1920
    yy, xx = np.mgrid[0:h, 0:w]
    img = ((xx / w * 0.6 + yy / h * 0.3) * 65535).astype(np.uint16)
    out = rt.restore(img).image
    np.testing.assert_array_equal(out, img)


def test_model_files_are_verified(identity_model):
    xml = identity_model / "model.xml"
    xml.write_text(xml.read_text().replace("identity", "identitx"))
    with pytest.raises(ModelLoadError, match=r"sha256|bytes"):
        FocusRuntime.load(identity_model)


def test_truncated_weights_are_refused_and_fallback_loads_next(shipped_root):
    binf = shipped_root / "quality" / "model.bin"
    binf.write_bytes(binf.read_bytes()[:-1])
    with pytest.raises(ModelLoadError, match="quality"):
        FocusRuntime.load("quality")
    rt = FocusRuntime.load("quality", fallback=True, warmup=5)
    assert rt.variant == "fast"


def test_unknown_variant_names_the_shipped_ones(shipped_root):
    with pytest.raises(ModelLoadError, match=r"'nope'.*\['fast', 'quality'\]"):
        FocusRuntime.load("nope")


def test_manifest_with_unknown_key_is_refused(identity_model):
    m = json.loads((identity_model / "manifest.json").read_text())
    m["pad_multiplier"] = 8
    (identity_model / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ModelLoadError, match="unknown key"):
        FocusRuntime.load(identity_model)


def test_manifest_path_escaping_the_folder_is_refused(identity_model):
    m = json.loads((identity_model / "manifest.json").read_text())
    m["files"][0]["path"] = "../../etc/passwd"
    (identity_model / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ModelLoadError, match="outside the model folder"):
        FocusRuntime.load(identity_model)


def test_bare_onnx_file_loads(identity_model, tmp_path):
    bare = tmp_path / "bare.onnx"
    bare.write_bytes((identity_model / "model.onnx").read_bytes())
    rt = FocusRuntime.load(bare, backend="onnxruntime", warmup=5)
    img = np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)
    np.testing.assert_array_equal(rt.restore(img).image, img)


def test_restore_refuses_bad_input_with_input_error(identity_model):
    rt = FocusRuntime.load(identity_model, warmup=5)
    with pytest.raises(InputError, match="image"):
        rt.restore(np.zeros((5, 5), np.uint8))


def _engine(folder: Path, name: str, wrap=None) -> ModelEngine:
    from virtualfocus.edge.models import resolve_model
    from virtualfocus.edge.runtime import _engine_from_source

    eng = _engine_from_source(resolve_model(folder), backend="openvino", threads=1, precision="default",
                              max_tile=1024, overlap=32)
    eng.name = name
    if wrap is not None:
        eng.backend = wrap(eng.backend)
    return eng


def test_guard_steps_down_the_ladder_and_emits_events(identity_model):
    slow = _engine(identity_model, "quality", lambda b: SlowBackend(b, 0.03))
    fast = _engine(identity_model, "fast")
    rt = FocusRuntime([slow, fast], budget_ms=10, guard_window=10, probe_after=10_000)
    seen = []
    rt.events.connect(BudgetExceededEvent, seen.append)
    rt.events.connect(FallbackEngaged, seen.append)
    img = np.full((64, 64, 3), 128, np.uint8)
    statuses = [rt.restore(img) for _ in range(30)]
    variants = [f.variant for f in statuses]
    # "fast" itself may step down further when a loaded machine stalls it: the test is about leaving "quality".
    assert variants[0] == "quality" and "fast" in variants and variants[-1] != "quality"
    assert any(isinstance(e, BudgetExceededEvent) and e.variant == "quality" for e in seen)
    assert any(isinstance(e, FallbackEngaged) and e.to_variant == "fast" for e in seen)


def test_guard_reaches_passthrough_and_probes_back_up(identity_model):
    slow = _engine(identity_model, "only", lambda b: SlowBackend(b, 0.02))
    rt = FocusRuntime([slow], budget_ms=5, guard_window=10, probe_after=25)
    img = np.full((32, 32), 9, np.uint8)
    frames = [rt.restore(img) for _ in range(60)]
    kinds = [f.status for f in frames]
    assert FrameStatus.PASSTHROUGH in kinds
    first_pass = kinds.index(FrameStatus.PASSTHROUGH)
    assert FrameStatus.RESTORED in kinds[first_pass:]  # it tried the model again after probe_after frames
    assert all(np.array_equal(f.image, img) for f in frames)


def test_late_frames_come_back_raw_and_flagged_none_lost(identity_model):
    slow = _engine(identity_model, "slow", lambda b: SlowBackend(b, 0.04))
    rt = FocusRuntime([slow], budget_ms=1e6, deadline_ms=60, queue_size=64)
    frames = [np.full((40, 40, 3), i, np.uint8) for i in range(12)]
    futs = [rt.submit(f, meta={"i": i}) for i, f in enumerate(frames)]
    results = [f.result(timeout=10) for f in futs]
    rt.close()
    assert [r.meta["i"] for r in results] == list(range(12))
    late = [r for r in results if r.status is FrameStatus.LATE]
    assert late and all(r.variant == "passthrough" for r in late)
    assert {r.status for r in results} <= {FrameStatus.RESTORED, FrameStatus.LATE}
    for r, f in zip(results, frames, strict=True):
        np.testing.assert_array_equal(r.image, f)  # identity or raw: the pixels are the capture's


def test_submit_never_blocks_and_delivers_every_frame_from_many_threads(identity_model):
    rt = FocusRuntime.load(identity_model, warmup=5, queue_size=4, budget_ms=1e6, deadline_ms=1e6)
    futures, lock = [], threading.Lock()
    submit_ms = []

    def producer(k: int) -> None:
        for i in range(50):
            img = np.full((360, 360, 3), (k * 50 + i) % 256, np.uint8)
            t = time.perf_counter()
            fut = rt.submit(img, meta={"k": k, "i": i})
            dt = (time.perf_counter() - t) * 1e3
            with lock:
                futures.append(fut)
                submit_ms.append(dt)

    threads = [threading.Thread(target=producer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results = [f.result(timeout=30) for f in futures]
    rt.close()
    assert len(results) == 200
    assert {(r.meta["k"], r.meta["i"]) for r in results} == {(k, i) for k in range(4) for i in range(50)}
    assert {r.status for r in results} <= {FrameStatus.RESTORED, FrameStatus.OVERFLOW}
    assert sorted(r.index for r in results) == sorted(set(r.index for r in results))
    # never blocks: a submit hands the frame over (or refuses it as overflow) instead of waiting for inference;
    # the bound is generous so that only a submit that waits for the queue to drain can fail it
    assert len(submit_ms) == 200 and float(np.median(submit_ms)) < 5.0 and max(submit_ms) < 250.0


def test_backend_failure_switches_to_the_other_backend(identity_model):
    from virtualfocus.edge.models import resolve_model
    from virtualfocus.edge.runtime import _engine_from_source

    eng = _engine_from_source(resolve_model(identity_model), backend=None, threads=1, precision="default",
                              max_tile=1024, overlap=32)
    eng.backend = FailingBackend(eng.backend, ok_calls=2)
    rt = FocusRuntime([eng], budget_ms=1e6)
    img = np.full((32, 32, 3), 77, np.uint8)
    frames = [rt.restore(img) for _ in range(5)]
    assert all(f.status is FrameStatus.RESTORED for f in frames)
    assert frames[0].backend == "openvino" and frames[-1].backend == "onnxruntime"


def test_backend_failure_without_fallback_delivers_raw_and_worker_survives(identity_model):
    eng = _engine(identity_model, "m", lambda b: FailingBackend(b, ok_calls=1))
    eng._fallback = None
    rt = FocusRuntime([eng], budget_ms=1e6, deadline_ms=1e6)
    img = np.full((32, 32, 3), 5, np.uint8)
    results = [rt.submit(img).result(timeout=10) for _ in range(4)]
    rt.close()
    assert results[0].status is FrameStatus.RESTORED
    assert all(r.status is FrameStatus.FAILED and "device lost" in r.message for r in results[1:])


def test_rejected_input_in_submit_is_delivered_as_given(identity_model):
    rt = FocusRuntime.load(identity_model, warmup=5, deadline_ms=10_000)  # the 40×40 frame compiles a new shape
    bad = np.zeros((3, 3), np.uint8)
    r = rt.submit(bad, meta={"i": 0}).result(timeout=10)
    ok = rt.submit(np.zeros((40, 40), np.uint8)).result(timeout=10)
    rt.close()
    assert r.status is FrameStatus.REJECTED and "too small" in r.message and r.image.shape == (3, 3)
    assert ok.status is FrameStatus.RESTORED


def test_close_without_drain_resolves_every_pending_future(identity_model):
    slow = _engine(identity_model, "slow", lambda b: SlowBackend(b, 0.05))
    rt = FocusRuntime([slow], budget_ms=1e6, deadline_ms=1e6, queue_size=32)
    futs = [rt.submit(np.zeros((32, 32), np.uint8)) for _ in range(10)]
    rt.close(drain=False)
    results = [f.result(timeout=5) for f in futs]
    assert any(r.status is FrameStatus.CLOSED for r in results)
    assert rt.submit(np.zeros((32, 32), np.uint8)).result(timeout=1).status is FrameStatus.CLOSED


def test_failing_listener_is_logged_not_raised(identity_model, caplog):
    rt = FocusRuntime.load(identity_model, warmup=5, deadline_ms=10_000)  # its 32×32 frame compiles a new shape
    got = []

    def bad(_ev):
        raise RuntimeError("listener bug")

    rt.events.connect(FrameRestored, bad)
    rt.events.connect(FrameRestored, got.append)
    r = rt.submit(np.zeros((32, 32), np.uint8)).result(timeout=10)
    rt.close()
    assert r.status is FrameStatus.RESTORED and len(got) == 1
    assert "listener bug" in caplog.text


def test_edge_import_does_not_import_torch():
    code = "import sys, virtualfocus.edge, virtualfocus.edge.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_frames_already_in_focus_pass_through_untouched(blur_model):
    from virtualfocus.edge.metrics import focus_measure

    rng = np.random.default_rng(3)
    sharp = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    flat = np.full((64, 64, 3), 120, np.uint8)
    threshold = focus_measure(sharp) / 2
    rt = FocusRuntime.load(blur_model, warmup=5, in_focus_threshold=threshold)
    a, b = rt.restore(sharp), rt.restore(flat)
    assert a.status is FrameStatus.IN_FOCUS and a.image is sharp and a.focus >= threshold
    assert b.status is FrameStatus.RESTORED and b.focus < threshold


# -- trusted defocus range -----------------------------------------------------------------------------------------


def _with_trusted_range(folder: Path, trusted) -> Path:
    m = Manifest.load(folder)
    m.trusted_defocus_um = trusted
    m.save()
    return folder


class _ConstantEstimator:
    """A stand-in estimator: a fixed signed answer after ``delay_s``, or an exception when ``error`` is set."""

    def __init__(self, value: float = 0.0, *, delay_s: float = 0.0, error: Exception | None = None) -> None:
        self.value, self.delay_s, self.error, self.calls = value, delay_s, error, 0

    def estimate(self, image, *, key=None):
        self.calls += 1
        time.sleep(self.delay_s)
        if self.error is not None:
            raise self.error
        return DefocusEstimate(self.value, True, None, 1.0)


def test_capture_outside_the_trusted_range_is_delivered_flagged_with_an_event(identity_model, defocus_negative):
    _with_trusted_range(identity_model, (0.0, 0.1))  # deliberately narrow: the classifier answers about −1.4 µm
    rt = FocusRuntime.load(identity_model, ladder=False, warmup=5, threads=1, budget_ms=1e4,
                           defocus_estimator=defocus_negative)
    seen: list[UntrustedCapture] = []
    rt.events.connect(UntrustedCapture, seen.append)
    img = np.random.default_rng(0).integers(0, 255, (100, 120, 3), dtype=np.uint8)
    frame = rt.restore(img, meta={"key": "p3"})
    later = rt.submit(img, meta={"key": "p4"}).result(timeout=10)
    rt.close()
    for f in (frame, later):
        assert f.status is FrameStatus.RESTORED and np.array_equal(f.image, img)  # restored output, same status
        assert f.trusted is False and f.defocus_um == pytest.approx(-1.4, abs=0.05) and f.defocus.signed
        assert "outside the trusted range" in f.message
        md = f.metadata()
        assert md["virtualfocus.trusted"] is False and md["virtualfocus.defocus_um"] == pytest.approx(-1.4, abs=0.05)
    assert [(e.seq, e.key) for e in seen] == [(frame.index, "p3"), (later.index, "p4")]
    assert seen[0].trusted_um == (0.0, 0.1) and seen[0].defocus_um == frame.defocus_um
    assert seen[0].variant == "identity" and seen[0].status == "restored"


def test_capture_inside_the_trusted_range_is_trusted_and_quiet(identity_model, defocus_negative):
    _with_trusted_range(identity_model, (-1.6, 0.4))
    rt = FocusRuntime.load(identity_model, ladder=False, warmup=5, threads=1, defocus_estimator=defocus_negative)
    seen: list[object] = []
    rt.events.connect(UntrustedCapture, seen.append)
    frame = rt.restore(np.full((80, 80, 3), 100, np.uint8))
    assert frame.trusted is True and frame.message == "" and seen == []


def test_model_without_a_trusted_range_is_held_to_the_default(identity_model, defocus_positive):
    from virtualfocus.edge.integrations.telemetry import DEFAULT_TRUSTED_UM

    assert Manifest.load(identity_model).trusted_defocus_um is None
    rt = FocusRuntime.load(identity_model, ladder=False, warmup=5, threads=1, defocus_estimator=defocus_positive)
    seen: list[UntrustedCapture] = []
    rt.events.connect(UntrustedCapture, seen.append)
    frame = rt.restore(np.full((80, 80), 100, np.uint8))
    assert frame.trusted is False and frame.defocus_um == pytest.approx(1.2, abs=0.05)
    assert seen[0].trusted_um == DEFAULT_TRUSTED_UM


def test_estimator_failure_never_loses_a_frame(identity_model, defocus_model, caplog):
    broken = _ConstantEstimator(error=RuntimeError("estimator exploded"))
    rt = FocusRuntime.load(identity_model, ladder=False, warmup=5, threads=1, budget_ms=1e4,
                           defocus_estimator=broken)
    img = np.full((64, 64, 3), 50, np.uint8)
    frames = [rt.submit(img).result(timeout=10) for _ in range(6)] + [rt.restore(img)]
    rt.close()
    assert all(f.status is FrameStatus.RESTORED and f.trusted is None and f.defocus_um is None for f in frames)
    assert rt.estimator_failures == 7
    warned = [r for r in caplog.records if r.levelno >= logging.WARNING and "estimator exploded" in r.getMessage()]
    assert len(warned) == 1  # warned once
    assert "not in these figures" in str(rt.load_report)
    # A capture smaller than the classifier's crop is restored all the same, without an estimate.
    rt2 = FocusRuntime.load(identity_model, ladder=False, warmup=5, threads=1, defocus_estimator=defocus_model)
    small = rt2.restore(np.full((32, 32), 7, np.uint8))
    assert small.status is FrameStatus.RESTORED and small.trusted is None and rt2.estimator_failures == 1
    assert "smaller than the defocus classifier's 64×64 crop" in caplog.text


def test_estimator_time_counts_against_the_latency_budget(identity_model):
    slow = _ConstantEstimator(0.0, delay_s=0.03)
    rt = FocusRuntime([_engine(identity_model, "quality"), _engine(identity_model, "fast")], budget_ms=20,
                      guard_window=10, probe_after=10_000, defocus_estimator=slow)
    seen: list[object] = []
    rt.events.connect(FallbackEngaged, seen.append)
    frames = [rt.restore(np.full((48, 48, 3), 90, np.uint8)) for _ in range(14)]
    assert frames[0].latency_ms >= 30 and frames[0].trusted is True
    assert seen and frames[-1].variant == "fast"  # restoration alone is far below 20 ms: the estimator tipped it


def test_in_focus_frames_carry_the_estimate_too(blur_model, defocus_negative):
    from virtualfocus.edge.metrics import focus_measure

    sharp = np.random.default_rng(3).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    rt = FocusRuntime.load(blur_model, warmup=5, ladder=False, in_focus_threshold=focus_measure(sharp) / 2,
                           defocus_estimator=defocus_negative)
    frame = rt.restore(sharp)
    assert frame.status is FrameStatus.IN_FOCUS and frame.image is sharp
    assert frame.defocus_um == pytest.approx(-1.4, abs=0.05) and frame.trusted is False


def test_defocus_estimator_argument_is_checked(identity_model, tmp_path):
    with pytest.raises(InputError, match="defocus_estimator=42"):
        FocusRuntime.load(identity_model, warmup=5, defocus_estimator=42)
    with pytest.raises(ModelLoadError, match="no such model"):
        FocusRuntime.load(identity_model, warmup=5, defocus_estimator=tmp_path / "nope")
    with pytest.raises(ModelLoadError, match="defocus estimator needs"):
        FocusRuntime.load(identity_model, warmup=5, defocus_estimator=identity_model)


def test_captures_estimated_in_the_in_focus_band_are_returned_untouched(blur_model):
    img = np.random.default_rng(4).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    near = _ConstantEstimator(0.1)
    rt = FocusRuntime.load(blur_model, warmup=5, ladder=False, defocus_estimator=near, in_focus_band_um=(-0.2, 0.4))
    calls_after_load = near.calls
    frame = rt.restore(img)
    assert frame.status is FrameStatus.IN_FOCUS and frame.image is img
    assert frame.defocus_um == pytest.approx(0.1) and "already in focus (estimated +0.10 µm)" in frame.message
    assert near.calls == calls_after_load + 1  # estimated once, before restoring
    far = _ConstantEstimator(-0.6)
    rt2 = FocusRuntime.load(blur_model, warmup=5, ladder=False, defocus_estimator=far, in_focus_band_um=(-0.2, 0.4))
    n = far.calls
    out = rt2.restore(img)
    assert out.status is FrameStatus.RESTORED and not np.array_equal(out.image, img)
    assert out.defocus_um == pytest.approx(-0.6) and far.calls == n + 1  # the early estimate is reused
    # An explicit estimator does not pick up shipped.json's band ("auto" = only with the shipped estimator) …
    rt3 = FocusRuntime.load(blur_model, warmup=5, ladder=False, defocus_estimator=near)
    assert rt3.in_focus_band_um is None and rt3.restore(img).status is FrameStatus.RESTORED
    # … and an estimate without a sign (focus measure) never decides that a capture is in focus.
    unsigned = _ConstantEstimator(0.1)
    unsigned.estimate = lambda image, *, key=None: DefocusEstimate(0.1, False, None, 1.0)  # type: ignore[method-assign]
    rt4 = FocusRuntime(rt.engines[:1], defocus_estimator=unsigned, in_focus_band_um=(-0.2, 0.4))
    assert rt4.restore(img).status is FrameStatus.RESTORED
    with pytest.raises(InputError, match="in_focus_band_um"):
        FocusRuntime(rt.engines[:1], in_focus_band_um=(0.4, -0.2))
    with pytest.raises(InputError, match="in_focus_band_um"):
        FocusRuntime.load(blur_model, warmup=5, ladder=False, in_focus_band_um="sharp")
    for r in (rt, rt2, rt3, rt4):
        r.close()


# -- restoration gain: in-focus pass-through and a defocus magnitude without a classifier ---------------------------


def _with_focus_gain(folder: Path, **cal) -> Path:
    # written into the JSON as the quality report writes it, so that a malformed one reaches Manifest.load
    raw = json.loads((folder / "manifest.json").read_text())
    raw["focus_gain"] = cal
    (folder / "manifest.json").write_text(json.dumps(raw))
    return folder


def test_captures_the_model_barely_sharpens_are_returned_untouched(identity_model, blur_model):
    img = np.random.default_rng(5).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    cal = {"levels_um": [-0.8, -0.4, 0.0, 0.4, 0.8], "gain": [1.8, 1.2, 1.0, 1.15, 1.6], "in_focus_below": 1.05}
    _with_focus_gain(identity_model, **cal)  # identity: gain exactly 1 → in focus
    with FocusRuntime.load(identity_model, ladder=False, warmup=5) as rt:
        frame = rt.restore(img)
        assert frame.status is FrameStatus.IN_FOCUS and frame.image is img
        assert "restoration gain 1.000 < 1.050" in frame.message
        assert frame.defocus_um == pytest.approx(0.0, abs=1e-4) and frame.defocus.signed is False and frame.trusted
    with FocusRuntime.load(identity_model, ladder=False, warmup=5, pass_in_focus=False) as rt:
        frame = rt.restore(img)  # the model alone: restored, still with the gain's estimate
        assert frame.status is FrameStatus.RESTORED and frame.trusted is True
    # A model that would blur an in-focus capture (gain < 1) never gets to: the capture comes back untouched.
    _with_focus_gain(blur_model, **cal)
    with FocusRuntime.load(blur_model, ladder=False, warmup=5) as rt:
        assert rt.restore(img).image is img


def test_restoration_gain_flags_untrusted_captures_without_a_classifier(identity_model):
    img = np.random.default_rng(6).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    # A calibration in which a gain of 1 means 1.6 µm away: outside the default trusted range (±0.8 µm).
    _with_focus_gain(identity_model, levels_um=[0.0, 1.0, 1.6], gain=[0.5, 0.9, 1.0], in_focus_below=None)
    seen: list[UntrustedCapture] = []
    with FocusRuntime.load(identity_model, ladder=False, warmup=5) as rt:
        rt.events.connect(UntrustedCapture, seen.append)
        frame = rt.restore(img)
    assert frame.status is FrameStatus.RESTORED and frame.trusted is False
    assert frame.defocus_um == pytest.approx(1.6) and "magnitude 1.60 µm exceeds 0.80 µm, the nearer bound of the trusted range" in frame.message
    assert len(seen) == 1 and seen[0].signed is False


def test_bad_focus_gain_calibration_is_refused_at_load(identity_model):
    _with_focus_gain(identity_model, levels_um=[0.0, 0.2], gain=[1.0])
    with pytest.raises(ModelLoadError, match=r"focus_gain.*same length"):
        Manifest.load(identity_model)


def test_load_report_says_when_there_is_no_budget():
    from virtualfocus.edge.runtime import LoadReport

    batch = LoadReport("v", "openvino", 10.0, 5.0, 1.0, 2.0, 1e9, True)
    assert "no latency budget" in str(batch) and "1e+09" not in str(batch)
    assert "(budget 70 ms)" in str(LoadReport("v", "openvino", 10.0, 5.0, 1.0, 2.0, 70.0, True))
