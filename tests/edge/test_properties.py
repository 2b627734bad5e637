"""Property-based tests (hypothesis): any capture the runtime accepts comes back with its shape and dtype, any
capture it refuses raises InputError — never another exception; image readers never crash on arbitrary bytes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from virtualfocus.edge import FocusRuntime, FrameStatus, InputError
from virtualfocus.edge.imageio import read_image
from virtualfocus.edge.preprocess import MIN_SIDE

from tests.edge.helpers import make_model_folder

DTYPES = st.sampled_from([np.uint8, np.uint16, np.float32, np.float64, np.float16, np.int16, np.bool_])


@st.composite
def captures(draw):
    dtype = draw(DTYPES)
    h = draw(st.integers(0, 80))
    w = draw(st.integers(0, 80))
    layout = draw(st.sampled_from([(), (1,), (3,), (4,), (2,)]))
    if np.dtype(dtype).kind == "f":
        elements = st.floats(allow_nan=True, allow_infinity=True, width=np.dtype(dtype).itemsize * 8)
    else:
        elements = None
    arr = draw(arrays(dtype, (h, w, *layout), elements=elements))
    if draw(st.booleans()) and arr.ndim >= 2 and arr.shape[0] > 1:
        arr = arr[::2]  # non-contiguous view
    if draw(st.booleans()):
        arr.flags.writeable = False
    return arr


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    folder = make_model_folder(tmp_path_factory.mktemp("m") / "identity")
    rt = FocusRuntime.load(folder, warmup=5, budget_ms=1e9)
    yield rt
    rt.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(img=captures())
def test_restore_accepts_or_refuses_cleanly(runtime, img):
    valid_layout = img.ndim == 2 or (img.ndim == 3 and img.shape[2] in (1, 3, 4))
    valid = (
        img.dtype in (np.uint8, np.uint16, np.float16, np.float32, np.float64)
        and valid_layout
        and min(img.shape[:2]) >= MIN_SIDE
        and not (img.dtype.kind == "f" and not np.isfinite(img[..., :3] if img.ndim == 3 and img.shape[2] == 4 else img).any())
    )
    try:
        frame = runtime.restore(img)
    except InputError as e:
        assert not valid, f"valid capture refused: {e}"
        assert str(e).startswith("image:")
        return
    assert valid, f"invalid capture accepted: {img.dtype} {img.shape}"
    assert frame.status is FrameStatus.RESTORED
    assert frame.image.shape == img.shape and frame.image.dtype == img.dtype
    if img.dtype.kind == "u":
        np.testing.assert_array_equal(frame.image, img)  # identity model: integers come back exactly


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=2048), ext=st.sampled_from([".png", ".jpg", ".tif", ".bmp"]),
       prefix=st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"BM"]))
def test_reader_never_crashes_on_arbitrary_bytes(tmp_path_factory, data, ext, prefix):
    path = tmp_path_factory.mktemp("fuzz") / f"f{ext}"
    path.write_bytes(prefix + data)
    try:
        img = read_image(path)
    except InputError as e:
        assert str(path) in str(e)
        return
    assert isinstance(img, np.ndarray) and img.dtype in (np.uint8, np.uint16) and img.size > 0
