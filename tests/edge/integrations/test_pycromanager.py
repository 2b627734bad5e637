"""The pycro-manager hook run by pycro-manager's own image processor (the real package, no Micro-Manager).

pycro-manager's Python-backend ``Acquisition`` hands every image to an ``ImageProcessor`` thread, which calls the
``image_process_fn`` through ``Acquisition._call_image_process_fn`` (signature checked, any exception aborts the
acquisition) and passes what it returns on to storage. Only the hardware side needs Micro-Manager, so the
processing side is built here without it: an acquisition object whose hardware engine is a stand-in.
"""

from __future__ import annotations

import logging
import queue
from types import SimpleNamespace

import numpy as np
import pytest
from virtualfocus.edge.integrations import image_process_fn

from tests.edge.integrations.conftest import capture

pytest.importorskip("pycromanager")
from pycromanager.acquisition.python_backend_acquisitions import (
    ImageProcessor,
    PythonBackendAcquisition,
)


class _Engine:
    """Stand-in for the hardware acquisition engine: what the image processor calls on it."""

    def __init__(self) -> None:
        self.aborted = False

    def check_for_exceptions(self) -> None:
        pass

    def abort(self) -> None:
        self.aborted = True


def _acquisition(process_fn) -> tuple[PythonBackendAcquisition, _Engine]:
    acq = PythonBackendAcquisition.__new__(PythonBackendAcquisition)  # __init__ would start Micro-Manager's core
    engine = _Engine()
    acq._process_fn, acq._exception, acq._acq = process_fn, None, engine
    acq._create_event_queue()
    return acq, engine


def _run(acq: PythonBackendAcquisition, engine: _Engine, images: list[tuple[np.ndarray, dict]]) -> list:
    inq: queue.Queue = queue.Queue()
    outq: queue.Queue = queue.Queue()
    processor = ImageProcessor(acq)
    processor.set_acq_and_queues(engine, inq, outq)
    for pix, tags in images:
        inq.put(SimpleNamespace(pix=pix, tags=tags))
    inq.put(SimpleNamespace(pix=None, tags=None))  # pycro-manager's end-of-acquisition signal
    processor._process_thread.join(60)
    assert not processor._process_thread.is_alive()
    out = []
    while not outq.empty():
        out.append(outq.get_nowait())
    return out


def test_pycromanagers_image_processor_stores_what_the_hook_returns(runtime, field):
    images = [(capture(field, z, i)[..., 1].copy(), {"Axes": {"position": 0, "z": i}, "BitDepth": 8})
              for i, z in enumerate((0.0, 0.4, -0.4))]
    acq, engine = _acquisition(image_process_fn(runtime))
    out = _run(acq, engine, images)
    assert acq._exception is None and not engine.aborted  # the hook never made pycro-manager abort
    assert len(out) == len(images) + 1 and out[-1].pix is None and out[-1].tags is None  # in order, then the end
    for i, ((pix, tags), got) in enumerate(zip(images, out, strict=False)):
        assert np.array_equal(got.pix, pix) and got.pix.dtype == pix.dtype  # identity model
        assert got.tags["Axes"] == tags["Axes"] and got.tags["BitDepth"] == 8
        assert got.tags["virtualfocus.status"] == "restored" and got.tags["virtualfocus.seq"] == i


def test_an_image_the_runtime_refuses_does_not_abort_the_acquisition(runtime, field, caplog):
    good = capture(field, 0.2)[..., 1].copy()
    tiny = np.zeros((4, 4), np.uint8)
    acq, engine = _acquisition(image_process_fn(runtime))
    with caplog.at_level(logging.WARNING, logger="virtualfocus"):
        out = _run(acq, engine, [(tiny, {"Axes": {}}), (good, {"Axes": {}})])
    assert acq._exception is None and not engine.aborted
    assert np.array_equal(out[0].pix, tiny) and out[0].tags["virtualfocus.status"] == "rejected"
    assert out[1].tags["virtualfocus.status"] == "restored" and "rejected" in caplog.text


def test_a_hook_that_raises_would_abort_it(runtime):
    # the contract the hook keeps: pycro-manager aborts the acquisition on any exception from image_process_fn
    def bad(image, metadata):
        raise RuntimeError("boom")

    acq, engine = _acquisition(bad)
    out = _run(acq, engine, [(np.zeros((8, 8), np.uint8), {})])
    assert isinstance(acq._exception, Exception) and "boom" in str(acq._exception)
    assert engine.aborted and len(out) == 1  # nothing stored but the end signal
