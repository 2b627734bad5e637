"""pytest-benchmark timings of the runtime's pieces at the reference size (360×360 uint8 RGB) and of a tiled scan
image; see conftest.py for how they run and where the results are kept."""

from __future__ import annotations

import numpy as np
import pytest
from virtualfocus.edge.defocus import focus_energy, restoration_gain
from virtualfocus.edge.policy import Capture
from virtualfocus.edge.preprocess import Normalizer, PadCrop, Tiler, from_unit, to_unit, validate_image


def test_input_checks(benchmark, capture_360):
    benchmark(validate_image, capture_360)


def test_numpy_preprocessing(benchmark, capture_360):
    """The numpy path's way in (ONNX Runtime, float captures): to unit space, pad, normalise to NCHW."""
    norm, pad = Normalizer(), PadCrop(32, min_size=32)

    def pre() -> np.ndarray:
        unit, _ = to_unit(capture_360)
        return norm.before(pad.pad(unit)[0])

    benchmark(pre)


def test_numpy_postprocessing(benchmark, capture_360):
    unit, info = to_unit(capture_360)
    y = Normalizer().before(unit)
    benchmark(lambda: from_unit(Normalizer().after(y), info))


def test_restoration_gain_capture_side(benchmark, capture_360):
    """F of the capture's green plane, what the runtime computes beside the model on the in-graph path."""
    benchmark(lambda: Capture(capture_360).focus())


def test_restoration_gain_unit_space(benchmark, capture_360):
    """Both focus measures of the numpy path."""
    unit, _ = to_unit(capture_360)
    benchmark(restoration_gain, unit, unit)


def test_focus_energy(benchmark, capture_360):
    benchmark(focus_energy, capture_360[..., 1])


def test_tiling_scan_image(benchmark):
    """Split and blend a 1920×1200 image in 1024-pixel tiles around an identity model."""
    image = np.random.default_rng(1).random((1200, 1920, 3), dtype=np.float32)
    tiler = Tiler(max_tile=1024, overlap=32, multiple=32)
    benchmark(tiler.run, image, lambda tile: tile)


def test_bare_inference(benchmark, runtime, capture_360):
    """The compiled model (pre/post-processing included in the graph) on a tensor already in place."""
    eng = runtime.engines[0]
    spec = eng.capture_spec(capture_360, focus=runtime.policy.wants_gain(eng.manifest))
    if spec is None:
        pytest.skip(f"{eng.name} on {eng.backend_name} has no in-graph path")
    benchmark(eng.backend.capture_request(spec, capture_360))


def test_restore(benchmark, runtime, capture_360):
    """FocusRuntime.restore end to end, shipped default."""
    frame = benchmark(runtime.restore, capture_360)
    assert frame.status.value in ("restored", "in-focus")
