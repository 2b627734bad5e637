"""Screenshot of the napari "Restore defocus" widget on the sample stack, for the README.

    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/napari-screenshot.py [--out docs/napari-widget.png]

Opens napari without a window, loads the simulated sample stack, restores it with the shipped default model, and
saves a picture of the dock widget (layer and model pickers, progress, per-plane status / defocus / trust table).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("docs/napari-widget.png"))
    args = ap.parse_args()
    from napari.components import ViewerModel
    from qtpy.QtCore import QCoreApplication
    from qtpy.QtWidgets import QApplication
    from virtualfocus.napari_plugin import sample_stack
    from virtualfocus.napari_plugin._widget import _make_widget

    app = QApplication.instance() or QApplication([])
    viewer = ViewerModel()  # the widget needs the layers, not a canvas (no OpenGL offscreen)
    for data, kwargs, _ in sample_stack(size=256):
        viewer.add_image(data, **kwargs)
    widget = _make_widget(viewer)
    widget.resize(460, 640)
    widget.layer_box.setCurrentText("defocus stack")
    widget.start()
    while widget.worker() is not None:
        QCoreApplication.processEvents()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    widget.grab().save(str(args.out))
    print(f"{widget.status_label.text()}\nwrote {args.out}")
    app.processEvents()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
