"""The napari plugin, headless: the widget restores the sample stack into a layer of the same shape and dtype with
per-plane status and trust; bad layers and Cancel leave napari running and add nothing; the reader puts focus
offsets on the z axis; the core install never imports Qt."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

napari = pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from virtualfocus.napari_plugin import get_reader, read_stack_layer, restore_planes, sample_stack  # noqa: E402
from virtualfocus.napari_plugin._widget import _make_widget  # noqa: E402
from virtualfocus.zstacks.stack import write_stack  # noqa: E402

from tests.edge.helpers import use_shipped_models  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")


@pytest.fixture
def shipped_root(tmp_path, monkeypatch):
    return use_shipped_models(tmp_path, monkeypatch, "ident")


def _wait_done(qtbot, widget):
    qtbot.waitUntil(lambda: widget.worker() is None, timeout=120_000)


@pytest.fixture
def viewer():
    """napari's viewer model without a canvas: CI has Qt offscreen but no OpenGL; the widget needs only the layers."""
    from napari.components import ViewerModel

    return ViewerModel()


def test_widget_restores_the_sample_stack_into_a_new_layer(viewer, qtbot, shipped_root):
    for data, kwargs, kind in sample_stack(size=96):
        assert kind == "image"
        viewer.add_image(data, **kwargs)
    widget = _make_widget(viewer)
    qtbot.addWidget(widget)
    widget.layer_box.setCurrentText("defocus stack")
    assert widget.model_box.currentText() == "ident"
    widget.start()
    _wait_done(qtbot, widget)
    src, out = viewer.layers["defocus stack"], viewer.layers["defocus stack restored"]
    assert out.data.shape == src.data.shape and out.data.dtype == src.data.dtype
    assert out.rgb and tuple(out.scale) == tuple(src.scale)
    rows = out.metadata["virtualfocus"]["planes"]
    assert len(rows) == 17 and widget.table.rowCount() == 17
    assert {r["status"] for r in rows} <= {"restored", "in-focus"}
    np.testing.assert_array_equal(out.data, src.data)  # identity model
    assert "Restored 17 plane(s)" in widget.status_label.text()


def test_non_image_and_too_small_layers_get_a_message_and_no_layer(viewer, qtbot, shipped_root):
    viewer.add_labels(np.zeros((32, 32), np.int32), name="cells")
    viewer.add_points(np.zeros((2, 2)), name="marks")
    viewer.add_image(np.zeros((20, 1), np.uint8), name="line")
    widget = _make_widget(viewer)
    qtbot.addWidget(widget)
    for name, words in (("cells", "Labels layer"), ("marks", "Points layer"), ("line", "at least 16×16")):
        widget.layer_box.setCurrentText(name)
        widget.start()
        assert words in widget.status_label.text()
        assert widget.worker() is None
    assert len(viewer.layers) == 3


def test_cancel_adds_no_layer(viewer, qtbot, shipped_root):
    viewer.add_image(np.random.default_rng(0).integers(0, 255, (400, 64, 64), dtype=np.uint8), name="long")
    widget = _make_widget(viewer)
    qtbot.addWidget(widget)
    widget.layer_box.setCurrentText("long")
    widget.start()
    qtbot.waitUntil(lambda: widget.progress.value() > 0, timeout=60_000)
    widget.stop()
    _wait_done(qtbot, widget)
    assert [layer.name for layer in viewer.layers] == ["long"]
    assert "Cancelled" in widget.status_label.text()


def test_reader_puts_offsets_on_the_z_axis(tmp_path):
    data, _kwargs, _ = sample_stack(size=64)[0]
    from virtualfocus.zstacks.stack import ZStack

    offsets = np.round(np.arange(-8, 9) * 0.2, 6)
    write_stack(tmp_path / "s", ZStack(data, offsets, 8, name="s", meta={"pixel_um": 0.1}))
    assert get_reader(str(tmp_path / "s.tif")) is read_stack_layer
    assert get_reader(str(tmp_path / "other.tif")) is None
    [(planes, kw, kind)] = read_stack_layer(str(tmp_path / "s.tif"))
    assert kind == "image" and planes.shape == data.shape and kw["rgb"]
    assert kw["scale"][0] == pytest.approx(0.2) and kw["translate"][0] == pytest.approx(-1.6)


def test_restore_planes_keeps_layout_of_time_series(shipped_root):
    from virtualfocus.edge import FocusRuntime

    arr = np.random.default_rng(1).integers(0, 4095, (2, 3, 32, 40), dtype=np.uint16)
    with FocusRuntime.load(budget_ms=1e9, ladder=False) as rt:
        out, rows = restore_planes(rt, arr, rgb=False)
    assert out.shape == arr.shape and out.dtype == arr.dtype and len(rows) == 6
    assert rows[4]["index"] == [1, 1]


def test_core_runtime_never_imports_qt_or_napari():
    code = "import sys, virtualfocus.edge, virtualfocus.cli; print(any(m.split('.')[0] in ('napari', 'qtpy', 'PyQt5') for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def _calibrate(root, name="ident"):
    """Give the shipped test model a restoration-gain calibration: the identity's gain 1 reads as 0.5 µm."""
    from virtualfocus.edge.defocus import FocusGainCalibration
    from virtualfocus.edge.manifest import Manifest

    m = Manifest.load(root / name)
    m.focus_gain = FocusGainCalibration.from_dict({"levels_um": [0.0, 1.0], "gain": [0.5, 1.5],
                                                   "in_focus_below": None})
    m.save()


def test_show_focus_map_adds_a_translucent_overlay_with_the_map_in_metadata(viewer, qtbot, shipped_root):
    _calibrate(shipped_root)
    for data, kwargs, _ in sample_stack(size=96):
        viewer.add_image(data, **kwargs)
    widget = _make_widget(viewer)
    qtbot.addWidget(widget)
    widget.layer_box.setCurrentText("defocus stack")
    widget.focus_map_box.setChecked(True)
    widget.start()
    _wait_done(qtbot, widget)
    src, fm = viewer.layers["defocus stack"], viewer.layers["defocus stack focus map"]
    assert fm.data.shape == src.data.shape[:-1] and fm.data.dtype == np.float32  # one map per plane, no RGB axis
    np.testing.assert_allclose(fm.data, 0.5, atol=1e-3)  # identity model: gain 1 in every tile
    assert fm.opacity == pytest.approx(0.4) and fm.blending == "translucent" and not fm.rgb
    assert fm.colormap.name == "inferno" and tuple(fm.scale) == tuple(src.scale)
    planes = fm.metadata["virtualfocus"]["planes"]
    assert len(planes) == 17 and planes[0]["y_edges"] == [0, 48, 96] and planes[0]["signed"] is False
    assert np.allclose(planes[3]["um"], 0.5, atol=1e-3)
    rows = viewer.layers["defocus stack restored"].metadata["virtualfocus"]["planes"]
    assert rows[3]["focus_map"] == planes[3]
    assert "focus map" in widget.status_label.text()
    # Layers stack in order: the overlay lies over the restored layer and the input.
    assert [layer.name for layer in viewer.layers][-1] == "defocus stack focus map"


def test_focus_map_is_off_by_default_and_explained_when_the_model_cannot_make_one(viewer, qtbot, shipped_root):
    viewer.add_image(np.random.default_rng(1).integers(0, 255, (2, 80, 80), dtype=np.uint8), name="pair")
    widget = _make_widget(viewer)
    qtbot.addWidget(widget)
    widget.layer_box.setCurrentText("pair")
    assert not widget.focus_map_box.isChecked()
    widget.start()
    _wait_done(qtbot, widget)
    assert "pair focus map" not in viewer.layers
    # The test model has no gain calibration: asked for a map, the widget says why there is none and adds none.
    widget.focus_map_box.setChecked(True)
    widget.layer_box.setCurrentText("pair")
    widget.start()
    _wait_done(qtbot, widget)
    assert "pair focus map" not in viewer.layers
    assert "no focus map (ident has no restoration-gain calibration" in widget.status_label.text()
