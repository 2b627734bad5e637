"""Z-stacks: the unit of data for training and evaluation.

A z-stack is a series of captures of one field at known focus offsets (µm; negative = objective closer to the
slide, the thesis's convention) plus the index of the in-focus plane that serves as ground truth.

On disk a stack is a multi-page TIFF (one page per plane, gray or RGB, 8- or 16-bit) with a JSON sidecar of the
same stem holding the offsets and provenance::

    stacks/
      sim-000000.tif      # Z pages, H×W×3 uint8
      sim-000000.json     # {"offsets_um": [...], "sharp_index": 8, "bit_depth": 8, "source": "simulated", ...}

Real stacks without a sidecar (a folder of images, or a TIFF alone) are brought into this format by
``virtualfocus import-stacks`` (:mod:`virtualfocus.zstacks.importer`), which picks the ground truth by focus
measure, registers and brightness-matches the planes. Imported stacks whose z step is unknown hold plane steps in
``offsets_um`` and say so with ``"offset_unit": "plane"`` in the sidecar.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from virtualfocus.edge.errors import InputError

__all__ = ["ZStack", "iter_stacks", "read_stack", "write_stack"]


@dataclass
class ZStack:
    """A focus series of one field.

    Attributes
    ----------
    planes : np.ndarray
        ``(Z, H, W)`` gray or ``(Z, H, W, 3)`` RGB, dtype uint8, uint16 or float32 (0..1).
    offsets_um : np.ndarray
        ``(Z,)`` float focus offset of each plane in µm; 0 at the ground-truth plane.
    sharp_index : int
        Index of the ground-truth (in-focus) plane.
    name : str
        Identifier, the file stem on disk.
    meta : dict
        Provenance (simulator seed and optics, source image, bit depth, nucleus centres ``[[y, x], ...]``).
    """

    planes: np.ndarray
    offsets_um: np.ndarray
    sharp_index: int
    name: str = "stack"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.planes = np.asarray(self.planes)
        self.offsets_um = np.asarray(self.offsets_um, dtype=np.float64)
        if self.planes.ndim not in (3, 4) or (self.planes.ndim == 4 and self.planes.shape[-1] not in (1, 3)):
            raise InputError(
                f"stack {self.name!r}: planes have shape {self.planes.shape}; expected (Z, H, W) or (Z, H, W, 3)"
            )
        if self.planes.shape[0] < 2:
            raise InputError(f"stack {self.name!r}: has {self.planes.shape[0]} plane(s); a z-stack needs at least 2")
        if min(self.planes.shape[1:3]) == 0:
            raise InputError(f"stack {self.name!r}: planes are empty (shape {self.planes.shape})")
        if self.offsets_um.shape != (self.planes.shape[0],):
            raise InputError(
                f"stack {self.name!r}: {self.offsets_um.size} offsets for {self.planes.shape[0]} planes; "
                "expected one offset per plane"
            )
        if not 0 <= int(self.sharp_index) < self.planes.shape[0]:
            raise InputError(f"stack {self.name!r}: sharp_index {self.sharp_index} outside 0..{len(self.planes) - 1}")
        self.sharp_index = int(self.sharp_index)

    @property
    def sharp(self) -> np.ndarray:
        """The ground-truth plane."""
        return self.planes[self.sharp_index]

    def __len__(self) -> int:
        return int(self.planes.shape[0])


def _bit_depth(dtype: np.dtype) -> int:
    return 8 if dtype == np.uint8 else 16


def write_stack(path: str | os.PathLike[str], stack: ZStack) -> Path:
    """Write ``stack`` as ``<path>.tif`` + ``<path>.json`` atomically (temp files, then rename).

    ``path`` may be given with or without the ``.tif`` suffix. Float planes are stored as 16-bit.
    """
    base = Path(path)
    if base.suffix.lower() in (".tif", ".tiff"):
        base = base.with_suffix("")
    base.parent.mkdir(parents=True, exist_ok=True)
    planes = stack.planes
    if planes.dtype not in (np.uint8, np.uint16):
        planes = np.clip(np.nan_to_num(planes.astype(np.float64)) * 65535.0 + 0.5, 0, 65535).astype(np.uint16)
    pages = [p[..., ::-1] if p.ndim == 3 and p.shape[-1] == 3 else p for p in planes]  # OpenCV stores BGR
    meta = dict(stack.meta)
    meta.update(
        offsets_um=[round(float(o), 6) for o in stack.offsets_um],
        sharp_index=stack.sharp_index,
        bit_depth=_bit_depth(planes.dtype),
    )
    tif, side = base.with_suffix(".tif"), base.with_suffix(".json")
    fd, tmp_tif = tempfile.mkstemp(prefix=f".{base.name}.", suffix=".tif", dir=base.parent)
    os.fchmod(fd, 0o644)  # mkstemp creates 0600; outputs are ordinary shared files
    os.close(fd)
    try:
        if not cv2.imwritemulti(tmp_tif, [np.ascontiguousarray(p) for p in pages]):
            raise InputError(f"{tif}: OpenCV could not encode the stack as TIFF")
        fd, tmp_json = tempfile.mkstemp(prefix=f".{base.name}.", suffix=".json", dir=base.parent)
        os.fchmod(fd, 0o644)  # mkstemp creates 0600; outputs are ordinary shared files
        with os.fdopen(fd, "w") as fh:
            json.dump(meta, fh, indent=1)
        os.replace(tmp_tif, tif)
        os.replace(tmp_json, side)
    finally:
        if os.path.exists(tmp_tif):
            os.unlink(tmp_tif)
    return tif


def read_stack(path: str | os.PathLike[str]) -> ZStack:
    """Read a stack written by :func:`write_stack` (multi-page TIFF + JSON sidecar).

    Raises
    ------
    InputError
        When the TIFF or sidecar is missing, unreadable, or the two disagree.
    """
    tif = Path(path)
    if tif.suffix.lower() not in (".tif", ".tiff"):
        tif = tif.with_suffix(".tif")
    side = tif.with_suffix(".json")
    if not tif.is_file():
        raise InputError(f"{tif}: no such stack file; expected a multi-page TIFF written by `virtualfocus simulate`")
    if not side.is_file():
        raise InputError(f"{tif}: missing sidecar {side.name} with offsets_um and sharp_index")
    try:
        meta = json.loads(side.read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"{side}: not valid JSON ({e})") from e
    ok, pages = cv2.imreadmulti(str(tif), flags=cv2.IMREAD_UNCHANGED)
    if not ok or not pages:
        raise InputError(f"{tif}: unreadable or truncated TIFF; expected a multi-page 8/16-bit gray or RGB TIFF")
    shapes = {p.shape for p in pages}
    if len(shapes) != 1:
        raise InputError(f"{tif}: planes have different sizes {sorted(shapes)}; all planes of a stack must match")
    planes = np.stack([p[..., ::-1] if p.ndim == 3 else p for p in pages])
    if planes.ndim == 4 and planes.shape[-1] == 4:
        planes = planes[..., :3]
    try:
        offsets = meta.pop("offsets_um")
        sharp = meta.pop("sharp_index")
    except KeyError as e:
        raise InputError(f"{side}: missing key {e}; the sidecar needs offsets_um and sharp_index") from e
    return ZStack(np.ascontiguousarray(planes), np.asarray(offsets), int(sharp), name=tif.stem, meta=meta)


def iter_stacks(folder: str | os.PathLike[str], *, on_error: str = "raise") -> Iterator[ZStack]:
    """Yield every stack in ``folder`` (sorted by name).

    Parameters
    ----------
    on_error : {"raise", "skip"}
        With ``"skip"`` a bad stack is reported through :mod:`logging` and the rest are still yielded.
    """
    import logging

    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error={on_error!r}; expected 'raise' or 'skip'")
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder of stacks")
    for tif in sorted(root.glob("*.tif")):
        try:
            yield read_stack(tif)
        except InputError as e:
            if on_error == "raise":
                raise
            logging.getLogger("virtualfocus").warning("skipping stack: %s", e)
