"""Headless Qt for the napari plugin's tests (CI has no screen)."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
