"""The "Restore defocus" dock widget.

Pick an image layer and a shipped model, press Restore: every 2-D plane (with its RGB channels) goes through
:class:`virtualfocus.edge.FocusRuntime` in a worker thread, a progress bar counts planes, Cancel stops between
planes (no layer is added then; napari keeps running), and a new layer ``<name> restored`` with the input's shape and dtype appears.
The table lists each plane's status, estimated defocus and trust; untrusted planes are shown in red, and the
same rows are kept in the new layer's ``metadata["virtualfocus"]``.

"Show focus map" also adds, per restored layer, ``<name> focus map``: the runtime's per-tile map of estimated
|defocus| (µm) upscaled to the image, in a colormap at opacity 0.4 over the input; each plane's map (tile values and
edges) is in both layers' metadata.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np

__all__ = ["FOCUS_MAP_COLORMAP", "RestoreWidget", "focus_map_layer", "iter_restore", "restore_planes"]

#: Colormap and opacity of the focus-map overlay (dark: in focus, bright: far from focus).
FOCUS_MAP_COLORMAP = "inferno"
FOCUS_MAP_OPACITY = 0.4


def _check_layer(layer: Any) -> str | None:
    """Why ``layer`` cannot be restored (a sentence for the widget), or None."""
    from napari.layers import Image

    if layer is None:
        return "Select an image layer to restore."
    if not isinstance(layer, Image):
        return f"“{layer.name}” is a {type(layer).__name__} layer; select an image layer."
    data = np.asarray(layer.data) if not hasattr(layer.data, "shape") else layer.data
    spatial = data.shape[-3:-1] if layer.rgb else data.shape[-2:]
    if min(spatial) < 16:
        return f"“{layer.name}” is {'×'.join(map(str, spatial))} pixels; captures need at least 16×16."
    if getattr(layer, "multiscale", False):
        return f"“{layer.name}” is a multiscale (pyramid) layer; open its full-resolution level as one layer."
    return None


def iter_restore(runtime: Any, data: np.ndarray, *, rgb: bool, maps: list[Any] | None = None
                 ) -> Generator[tuple[int, int], None, tuple[np.ndarray, list[dict[str, Any]]]]:
    """Restore every 2-D plane of ``data`` (leading axes = z, t, …; last axis RGB(A) when ``rgb``), yielding
    ``(planes done, planes)`` after each; returns the restored array (same shape and dtype) and one row per plane:
    ``index`` (leading-axis position), ``status``, ``defocus_um``, ``signed`` (False: a magnitude, sign unknown),
    ``trusted``, ``message``, ``focus_map`` (:meth:`~virtualfocus.edge.focusmap.FocusMap.to_dict`, None without
    one). ``maps``: a list that receives every plane's :class:`~virtualfocus.edge.focusmap.FocusMap` (or None).

    A generator so that a napari worker can report progress and stop between planes (``worker.quit()``).
    """
    arr = np.asarray(data)
    lead = arr.shape[:-3] if rgb else arr.shape[:-2]
    planes = arr.reshape(-1, *arr.shape[len(lead):])
    out = np.empty_like(planes)
    rows: list[dict[str, Any]] = []
    for k, plane in enumerate(planes):
        frame = runtime.restore(np.ascontiguousarray(plane))
        out[k] = frame.image
        rows.append({"index": [int(i) for i in np.unravel_index(k, lead)] if lead else [],
                     "status": frame.status.value,
                     "defocus_um": None if frame.defocus_um is None else round(float(frame.defocus_um), 3),
                     "signed": bool(frame.defocus is not None and frame.defocus.signed),
                     "trusted": frame.trusted, "message": frame.message,
                     "focus_map": None if frame.focus_map is None else frame.focus_map.to_dict()})
        if maps is not None:
            maps.append(frame.focus_map)
        yield k + 1, len(planes)
    return out.reshape(arr.shape), rows


def restore_planes(runtime: Any, data: np.ndarray, *, rgb: bool) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """:func:`iter_restore` run to the end (scripts, notebooks)."""
    gen = iter_restore(runtime, data, rgb=rgb)
    while True:
        try:
            next(gen)
        except StopIteration as e:
            return e.value


def focus_map_layer(maps: list[Any], shape: tuple[int, ...], *, rgb: bool) -> np.ndarray | None:
    """The overlay's data: every plane's map upscaled to the plane (NaN where a plane or tile has none), shaped like
    ``shape`` without its RGB axis; None when no plane has a map."""
    if all(m is None for m in maps):
        return None
    spatial = shape[:-1] if rgb else shape
    h, w = spatial[-2:]
    out = np.full((len(maps), h, w), np.nan, np.float32)
    for k, m in enumerate(maps):
        if m is not None:
            out[k] = m.upscale((h, w))
    return out.reshape(spatial)


def _shipped_names() -> list[str]:
    from virtualfocus.edge.models import shipped

    s = shipped()
    return list(dict.fromkeys([s.default, *s.ladder]))


class RestoreWidget:
    """Factory napari calls with the viewer; returns the Qt widget (see module notes)."""

    def __new__(cls, napari_viewer: Any) -> Any:  # npe2 widget contributions may be any callable returning a widget
        return _make_widget(napari_viewer)


def _make_widget(viewer: Any) -> Any:
    from qtpy.QtGui import QColor
    from qtpy.QtWidgets import (
        QCheckBox,
        QComboBox,
        QLabel,
        QProgressBar,
        QPushButton,
        QTableWidget,
        QTableWidgetItem,
        QVBoxLayout,
        QWidget,
    )

    w = QWidget()
    w.setObjectName("virtualfocus-restore")
    lay = QVBoxLayout(w)
    layer_box, model_box = QComboBox(), QComboBox()
    model_box.addItems(_shipped_names())
    map_box = QCheckBox("Show focus map")
    map_box.setToolTip("Add a layer with the estimated |defocus| (µm) per tile over the input")
    run_btn, cancel_btn = QPushButton("Restore"), QPushButton("Cancel")
    cancel_btn.setEnabled(False)
    bar, status = QProgressBar(), QLabel("")
    status.setWordWrap(True)
    table = QTableWidget(0, 4)
    table.setHorizontalHeaderLabels(["plane", "status", "defocus µm", "trusted"])
    for label, widget in (("Image layer", layer_box), ("Model", model_box)):
        lay.addWidget(QLabel(label))
        lay.addWidget(widget)
    for widget in (map_box, run_btn, cancel_btn, bar, status, table):
        lay.addWidget(widget)
    state: dict[str, Any] = {"worker": None}

    def refresh(*_: Any) -> None:
        current = layer_box.currentText()
        layer_box.clear()
        layer_box.addItems([layer.name for layer in viewer.layers])
        if current in [layer.name for layer in viewer.layers]:
            layer_box.setCurrentText(current)

    def fill(rows: list[dict[str, Any]]) -> None:
        table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            vals = [",".join(map(str, row["index"])) or "0", row["status"],
                    "" if row["defocus_um"] is None else (f"{row['defocus_um']:+.2f}" if row["signed"]
                                                          else f"|{row['defocus_um']:.2f}|"),
                    {True: "yes", False: "NO", None: "–"}[row["trusted"]]]
            for c, v in enumerate(vals):
                item = QTableWidgetItem(v)
                if row["trusted"] is False:
                    item.setForeground(QColor("red"))
                table.setItem(r, c, item)

    def done(result: tuple[Any, Any, np.ndarray, list[dict[str, Any]], list[Any] | None]) -> None:
        layer, model, out, rows, maps = result
        meta = {"virtualfocus": {"model": model, "source_layer": layer.name, "planes": rows}}
        viewer.add_image(out, name=f"{layer.name} restored", rgb=layer.rgb, scale=layer.scale,
                         translate=layer.translate, metadata=meta)
        fill(rows)
        untrusted = sum(r["trusted"] is False for r in rows)
        note = ""
        if maps is not None:
            overlay = focus_map_layer(maps, out.shape, rgb=bool(layer.rgb))
            if overlay is None:
                why = next((r["message"] for r in rows if "no focus map" in r["message"]), "")
                note = "; no focus map" + (f" ({why.split('no focus map: ', 1)[-1]})" if why else
                                           " (the model ran on no plane)")
            else:
                top = float(np.nanmax(overlay)) if np.isfinite(overlay).any() else 1.0
                map_meta = {"virtualfocus": {"model": model, "source_layer": layer.name, "unit": "µm",
                                             "signed": False, "planes": [r["focus_map"] for r in rows]}}
                viewer.add_image(overlay, name=f"{layer.name} focus map", scale=layer.scale,
                                 translate=layer.translate, colormap=FOCUS_MAP_COLORMAP, opacity=FOCUS_MAP_OPACITY,
                                 blending="translucent", contrast_limits=(0.0, max(top, 0.4)), metadata=map_meta)
                note = f"; focus map: |defocus| up to {top:.2f} µm"
        status.setText(f"Restored {len(rows)} plane(s) with {model}"
                       + (f"; {untrusted} outside the trusted defocus range (red)" if untrusted else "") + note + ".")

    def finished() -> None:
        run_btn.setEnabled(True)
        cancel_btn.setEnabled(False)
        state["worker"] = None

    def start() -> None:
        from napari.qt.threading import create_worker

        name = layer_box.currentText()
        layer: Any = viewer.layers[name] if name in viewer.layers else None  # noqa: SIM401 (LayerList has no .get)
        why = _check_layer(layer)
        if why is not None or layer is None:
            status.setText(why or "Select an image layer to restore.")
            return
        model = model_box.currentText() or None
        data, rgb = np.asarray(layer.data), bool(layer.rgb)
        maps: list[Any] | None = [] if map_box.isChecked() else None

        def job() -> Generator[tuple[int, int], None, Any]:
            from virtualfocus.edge import FocusRuntime

            with FocusRuntime.load(model, budget_ms=1e9, ladder=False, focus_map=maps is not None) as rt:
                out, rows = yield from iter_restore(rt, data, rgb=rgb, maps=maps)
            return layer, model, out, rows, maps

        worker = create_worker(job)
        def show_progress(done_total: tuple[int, int]) -> None:
            bar.setMaximum(done_total[1])
            bar.setValue(done_total[0])

        worker.yielded.connect(show_progress)
        worker.returned.connect(done)
        worker.aborted.connect(lambda: status.setText("Cancelled: no layer added."))
        worker.errored.connect(lambda e: status.setText(f"Could not restore “{layer.name}”: {e}"))
        worker.finished.connect(finished)
        state["worker"] = worker
        run_btn.setEnabled(False)
        cancel_btn.setEnabled(True)
        status.setText(f"Restoring “{layer.name}” with {model or 'the default model'}…")
        bar.setValue(0)
        worker.start()

    def stop() -> None:
        if state["worker"] is not None:
            state["worker"].quit()

    run_btn.clicked.connect(start)
    cancel_btn.clicked.connect(stop)
    viewer.layers.events.inserted.connect(refresh)
    viewer.layers.events.removed.connect(refresh)
    refresh()
    w.start, w.stop, w.layer_box, w.model_box = start, stop, layer_box, model_box  # for scripts and tests
    w.focus_map_box = map_box
    w.status_label, w.table, w.progress = status, table, bar
    w.worker = lambda: state["worker"]
    return w
