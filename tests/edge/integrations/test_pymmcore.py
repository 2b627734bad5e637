"""A real pymmcore-plus acquisition (UniMMCore + MDARunner + useq) over the simulated microscope, processor attached."""

from __future__ import annotations

import logging
import sys

import numpy as np
import pytest

pytest.importorskip("pymmcore_plus")
useq = pytest.importorskip("useq")

from virtualfocus.edge.integrations import StreamFrame  # noqa: E402
from virtualfocus.edge.integrations.pymmcore import attach, two_shot_engine  # noqa: E402
from virtualfocus.simulation.simscope import ScopeConfig, SimulatedMicroscope  # noqa: E402

from tests.edge.integrations.conftest import SIZE  # noqa: E402


def _scope(**kw) -> SimulatedMicroscope:
    return SimulatedMicroscope(ScopeConfig(size=SIZE, seed=5, noise=False, z_quantum_um=0.1, **kw))


def test_import_edge_does_not_import_mm():
    import subprocess

    code = ("import sys, virtualfocus.edge, virtualfocus.edge.integrations; "
            "print(sorted(m for m in ('pymmcore_plus', 'psygnal', 'useq') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_real_acquisition_every_frame_in_order_with_bad_frames(runtime, caplog):
    # 3 positions × 3 time points; frames 2, 4 and 6 broken on purpose, a psygnal slot and a listener that raise
    scope = _scope(drift_um_per_frame=0.05, tilt_um_per_mm=(1.0, 0.0),
                   faults=((2, "shape"), (4, "dtype"), (6, "metadata")))
    proc = attach(scope.core, runtime)
    got: list[tuple] = []
    plain: list[int] = []
    proc.frameRestored.connect(lambda img, ev, meta, fr: got.append((img, ev, meta, fr)))

    def bad_slot(img, ev, meta, fr):
        raise ValueError("slot bug")

    proc.frameRestored.connect(bad_slot)
    proc.connect(lambda fr: plain.append(fr.seq))
    proc.connect(lambda fr: 1 / 0)
    seq = useq.MDASequence(stage_positions=[(0, 0, 0), (300, 0, 0), (600, 0, 0)],
                           time_plan={"interval": 0, "loops": 3}, axis_order="tp")
    with caplog.at_level(logging.WARNING, logger="virtualfocus"):
        scope.run(seq)  # the real MDARunner on this thread
        assert proc.detach(timeout=20)
    expected = [dict(e.index) for e in seq]
    assert len(got) == len(expected) == 9
    assert [g[3].seq for g in got] == list(range(9)) and plain == list(range(9))
    assert [dict(g[1].index) for g in got] == expected  # the original useq events, in capture order
    statuses = [g[2]["virtualfocus.status"] for g in got]
    assert statuses == ["restored", "restored", "rejected", "restored", "rejected", "restored", "restored",
                        "restored", "restored"]
    for img, _ev, meta, fr in got:
        assert isinstance(fr, StreamFrame) and meta is fr.metadata
        assert {"virtualfocus.latency_ms", "virtualfocus.variant", "virtualfocus.defocus_um"} <= set(meta)
        if fr.restored:
            assert img.shape == (SIZE, SIZE, 3) and img.dtype == np.uint8
            assert meta["virtualfocus.variant"] == "identity"
    # the bad frames come back raw and flagged; the stripped-metadata frame is still restored
    assert got[2][0].shape == (8, 8, 3) and got[4][0].dtype == np.int32
    assert "virtualfocus.sim.defocus_um" not in got[6][2] and got[7][2]["virtualfocus.sim.defocus_um"] is not None
    text = caplog.text
    assert "too small" in text and "int32" in text and "slot bug" in text and "ZeroDivisionError" in text
    assert proc.hook_stats()["n"] == 9
    assert proc.telemetry is not None and proc.telemetry.summary()["n"] >= 7


def test_two_shot_acquisition_pairs_by_event_index(runtime, two_shot_model, caplog):
    scope = _scope(faults=((5, "index"),))
    proc = attach(scope.core, runtime, two_shot=two_shot_model)
    got: list[StreamFrame] = []
    proc.connect(got.append)
    seq = useq.MDASequence(stage_positions=[(0, 0, 0), (300, 0, 0)], z_plan={"relative": [-0.4, 0.4]},
                           time_plan={"interval": 0, "loops": 2}, axis_order="tpz")
    with caplog.at_level(logging.WARNING, logger="virtualfocus"):
        scope.run(seq)
        assert proc.detach(timeout=20)
    modes = [f.metadata["virtualfocus.two_shot"] for f in got]
    # 8 shots → 4 pairs, except that shot 5 lost its event index: shot 4 waits and is restored alone, shot 5 alone
    assert [f.seq for f in got] == list(range(len(got)))
    assert modes == ["fused", "fused", "single-shot", "single-shot", "fused"]
    assert all(f.restored for f in got)
    assert [dict(f.context.index).get("p") for f in got] == [0, 1, 0, None, 1]
    fused = [f for f in got if f.metadata["virtualfocus.two_shot"] == "fused"]
    assert all(f.metadata["virtualfocus.defocus_signed"] for f in fused)
    assert "no 'z' axis" in caplog.text


def test_two_shot_engine_step(runtime, two_shot_model):
    scope = _scope(focus_um=0.4)  # the slide is in focus at z = 0.4
    engine = two_shot_engine(scope.core, delta_um=0.4)
    scope.core.mda.set_engine(engine)
    proc = attach(scope.core, runtime, two_shot=two_shot_model, shot_axis="shot")
    got: list[StreamFrame] = []
    proc.connect(got.append)
    proc.connect(engine.follow)  # re-centre the pair on the estimated focus
    # 0.5 s between time points: each fused frame (and its estimate) is back before the next pair is taken, even
    # on a busy shared machine
    scope.run(useq.MDASequence(stage_positions=[(0, 0, 0)], time_plan={"interval": 0.5, "loops": 4}))
    assert proc.detach(timeout=20)
    zs = [c.z_um for c in scope.truth]
    assert len(got) == 4 and len(zs) == 8
    assert all(f.metadata["virtualfocus.two_shot"] == "fused" for f in got)
    assert all(np.isclose(zs[i + 1] - zs[i], 0.8) for i in range(0, 8, 2))  # ±0.4 µm around the pair's centre
    mids = [(zs[i] + zs[i + 1]) / 2 for i in range(0, 8, 2)]
    # the first pair is centred 0.4 µm below focus: estimated below, then the centre follows the focus up
    assert got[0].metadata["virtualfocus.defocus_um"] < 0 and got[0].metadata["virtualfocus.defocus_signed"]
    assert abs(mids[-1] - 0.4) < 0.5 * abs(mids[0] - 0.4)
