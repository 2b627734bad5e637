"""The engine's direct paths (pre/post-processing in the OpenVINO graph; ONNX Runtime's fused numpy path) give the
unit-space path's result, and ``warmup_shape`` compiles before the first frame."""

from __future__ import annotations

import numpy as np
import pytest
from virtualfocus.edge import FocusRuntime
from virtualfocus.edge.defocus import restoration_gain
from virtualfocus.edge.engine import ModelEngine
from virtualfocus.edge.policy import Capture
from virtualfocus.edge.preprocess import from_unit, to_unit

CAPTURES = [((72, 90, 3), np.uint8), ((72, 90), np.uint8), ((40, 40, 1), np.uint8), ((64, 48, 3), np.uint16)]


def _capture(shape, dtype) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(3)
    top = 255 if dtype == np.uint8 else 4095
    img = rng.integers(0, top, shape).astype(np.float32)
    return cv2.GaussianBlur(img, (0, 0), 1.5).reshape(shape).astype(dtype)


@pytest.mark.parametrize(("model", "backend"), [("blur_model", "openvino"), ("identity_model", "onnxruntime")])
@pytest.mark.parametrize(("shape", "dtype"), CAPTURES)
def test_direct_path_matches_the_unit_space_path(request, model, backend, shape, dtype):
    eng = ModelEngine.load(request.getfixturevalue(model), backend=backend, precision="f32" if backend == "openvino"
                           else "default")
    img = _capture(shape, dtype)
    cap = Capture(img)
    assert eng.capture_spec(img, focus=True) is not None
    got = eng.restore(cap, focus=True)
    unit, info = to_unit(img)
    out = eng.restore_unit(unit)
    want = from_unit(out, info)
    assert got.image.shape == img.shape and got.image.dtype == img.dtype
    assert np.abs(got.image.astype(int) - want.astype(int)).max() <= 1  # rounding ties may fall either way
    assert got.focus / cap.focus() == pytest.approx(restoration_gain(unit, out), rel=1e-4)


def test_warmup_shape_compiles_before_the_first_frame(identity_model):
    rt = FocusRuntime.load(identity_model, ladder=False, warmup=5, warmup_shape=(72, 90))
    eng = rt.engines[0]
    assert eng is not None
    spec = eng.capture_spec(np.zeros((72, 90, 3), np.uint8))
    assert spec is not None and (*spec.padded, 3, "uint8") in eng._warm
    frame = rt.restore(np.zeros((72, 90, 3), np.uint8))
    rt.close()
    assert frame.status.value == "restored"
    with pytest.raises(Exception, match="warmup_shape"):
        FocusRuntime.load(identity_model, ladder=False, warmup=5, warmup_shape=(72,))
