"""FrameStream: in-order delivery under out-of-order completion, bad input, raising listeners; pycro-manager contract."""

from __future__ import annotations

import inspect
import json
import logging
import threading

import numpy as np
from virtualfocus.edge import FocusRuntime, FrameStatus
from virtualfocus.edge.integrations import DriftMonitor, FrameStream, StreamFrame, image_process_fn

from tests.edge.helpers import SlowBackend
from tests.edge.integrations.conftest import SIZE, capture


def test_in_order_despite_out_of_order_completion(identity_model):
    # queue_size=1 and a slow backend: frame 0 restores for 60 ms, frame 1 waits in the queue, later frames
    # overflow and resolve at once, i.e. before frames 0 and 1. Delivery must still be 0, 1, 2, ...
    rt = FocusRuntime.load(identity_model, ladder=False, warmup=5, threads=1, queue_size=1, deadline_ms=30_000)
    eng = rt.engines[0]
    eng.backend = SlowBackend(eng.backend, 0.06)
    got: list[StreamFrame] = []
    img = np.full((SIZE, SIZE, 3), 128, np.uint8)
    try:
        with FrameStream(rt, on_frame=got.append) as stream:
            for i in range(6):
                seq = stream.push(img, {"i": i})
                assert seq == i
            stream.flush(5.0)
    finally:
        rt.close()
    assert [f.seq for f in got] == list(range(6))
    assert [f.metadata["i"] for f in got] == list(range(6))
    statuses = [f.status for f in got]
    assert statuses[0] is FrameStatus.RESTORED
    assert FrameStatus.OVERFLOW in statuses  # these completed before frame 0 and were still held back
    for f in got:
        assert f.metadata["virtualfocus.status"] == f.status.value
        assert f.image.shape == img.shape and f.image.dtype == img.dtype


def test_bad_input_and_raising_listener(runtime, field, caplog):
    good = capture(field, 0.4)
    frames = [good, good[:8, :8], good.astype(np.int32), [[1, 2], [3, 4]], good]
    seen: list[int] = []
    lock = threading.Lock()

    def boom(frame: StreamFrame) -> None:
        raise RuntimeError("listener bug")

    def record(frame: StreamFrame) -> None:
        with lock:
            seen.append(frame.seq)

    with caplog.at_level(logging.WARNING, logger="virtualfocus"), FrameStream(runtime, on_frame=boom) as stream:
        stream.connect(record)
        for i, f in enumerate(frames):
            stream.push(f, {"i": i})  # never raises, whatever the frame
        assert stream.flush(10.0)
        counts = dict(stream.counts)
    assert seen == [0, 1, 2, 3, 4]
    assert counts == {"restored": 2, "rejected": 3}
    text = caplog.text
    assert "listener" in text and "listener bug" in text and "acquisition continues" in text
    assert "flagged 'rejected'" in text and "too small" in text and "dtype int32" in text


def test_pycromanager_function_contract(runtime, field, caplog):
    fn = image_process_fn(runtime, telemetry=True)
    assert list(inspect.signature(fn).parameters) == ["image", "metadata"]  # pycro-manager accepts 2 (or 3)
    # pycro-manager images are usually 2-D: a sharp capture, then 0.6 and 1.0 µm from focus at stage position 2,
    # then one at position 3; the telemetry is the drift monitor's estimate for the image at its position
    shots = [(0.0, 2), (0.6, 2), (1.0, 2), (0.6, 3)]
    reference = DriftMonitor.for_runtime(runtime)  # the same estimator, fed the same captures by hand
    for seq, (defocus_um, position) in enumerate(shots):
        img = capture(field, defocus_um, 1)[..., 1].copy()
        md = {"Axes": {"position": position, "time": 0}, "Camera": "Sim"}
        out, out_md = fn(img, md)
        assert out.shape == img.shape and out.dtype == img.dtype
        assert np.array_equal(out, img)  # identity model
        assert md == {"Axes": {"position": position, "time": 0}, "Camera": "Sim"}  # caller's dict untouched
        assert out_md["Camera"] == "Sim" and out_md["Axes"] == md["Axes"]
        assert out_md["virtualfocus.status"] == "restored" and out_md["virtualfocus.variant"] == "identity"
        assert out_md["virtualfocus.seq"] == seq
        expected = reference.observe(img, key=position, seq=seq).defocus_um
        assert out_md["virtualfocus.defocus_um"] == round(expected, 4)
        assert json.loads(json.dumps(out_md)) == out_md  # JSON-safe, as pycro-manager's storage needs
        shots[seq] = (defocus_um, out_md["virtualfocus.defocus_um"])
    # a magnitude relative to the sharpest capture at the same position: 0 for the first one at a position, and
    # growing with the distance from focus
    assert shots[0][1] == 0.0 and shots[3][1] == 0.0
    assert 0.0 < shots[1][1] < shots[2][1]
    # bad inputs: returned as given, flagged, warned, never raised
    with caplog.at_level(logging.WARNING, logger="virtualfocus"):
        tiny = np.zeros((4, 4), np.uint8)
        out2, md2 = fn(tiny, None)
    assert out2 is tiny or np.array_equal(out2, tiny)
    assert md2["virtualfocus.status"] == "rejected" and md2["virtualfocus.seq"] == 4
    assert "not a dict" in caplog.text and "rejected" in caplog.text
