"""Reader for the project's z-stack format (multi-page TIFF + JSON sidecar): focus offsets become the z axis."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from virtualfocus.zstacks.stack import read_stack

__all__ = ["get_reader", "read_stack_layer"]

LayerData = list[tuple[Any, dict[str, Any], str]]


def _is_stack(path: Path) -> bool:
    tif, side = path.with_suffix(".tif"), path.with_suffix(".json")
    if not (tif.is_file() and side.is_file()):
        return False
    try:
        meta = json.loads(side.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and "offsets_um" in meta


def get_reader(path: str | list[str]) -> Callable[[Any], LayerData] | None:
    """npe2 reader hook: a callable for a stack written by ``write_stack``, else None (other readers take it)."""
    if isinstance(path, list):
        return None
    return read_stack_layer if _is_stack(Path(path)) else None


def read_stack_layer(path: str | list[str]) -> LayerData:
    """One image layer: planes on the first axis, scaled so the z axis is in µm and starts at the first offset."""
    p = Path(path if isinstance(path, str) else path[0])
    st = read_stack(p.with_suffix(".tif"))
    offsets = [float(o) for o in st.offsets_um]
    step = (offsets[-1] - offsets[0]) / max(len(offsets) - 1, 1) or 1.0
    rgb = st.planes.ndim == 4 and st.planes.shape[-1] == 3
    pixel = float(st.meta.get("pixel_um", 1.0) or 1.0)
    meta = {"virtualfocus": {"offsets_um": offsets, "sharp_index": int(st.sharp_index), "source": str(p)}}
    kwargs = {"name": st.name, "rgb": rgb, "scale": (step, pixel, pixel), "translate": (offsets[0], 0.0, 0.0),
              "metadata": meta, "axis_labels": ("z (µm)", "y", "x")}
    return [(st.planes, kwargs, "image")]
