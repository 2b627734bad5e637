"""FrameStream: in-order delivery under out-of-order completion, bad input, raising listeners; pycro-manager contract."""

from __future__ import annotations

import logging
import threading

import numpy as np
from virtualfocus.edge import FocusRuntime, FrameStatus
from virtualfocus.edge.integrations import FrameStream, StreamFrame, image_process_fn

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
    img = capture(field, 0.6)[..., 1].copy()  # pycro-manager images are usually 2-D
    md = {"Axes": {"position": 2, "time": 0}, "Camera": "Sim"}
    out, out_md = fn(img, md)
    assert out.shape == img.shape and out.dtype == img.dtype
    assert np.array_equal(out, img)  # identity model
    assert md == {"Axes": {"position": 2, "time": 0}, "Camera": "Sim"}  # caller's dict untouched
    assert out_md["Camera"] == "Sim" and out_md["virtualfocus.status"] == "restored"
    assert out_md["virtualfocus.variant"] == "identity" and out_md["virtualfocus.seq"] == 0
    assert isinstance(out_md["virtualfocus.defocus_um"], float)
    # bad inputs: returned as given, flagged, warned, never raised
    with caplog.at_level(logging.WARNING, logger="virtualfocus"):
        tiny = np.zeros((4, 4), np.uint8)
        out2, md2 = fn(tiny, None)
    assert out2 is tiny or np.array_equal(out2, tiny)
    assert md2["virtualfocus.status"] == "rejected" and md2["virtualfocus.seq"] == 1
    assert "not a dict" in caplog.text and "rejected" in caplog.text
