"""``virtualfocus import-stacks SRC --out DST``: real z-stacks from a microscope into the project's stack format.

SRC holds one folder per field of view with its plane images (PNG, TIFF, BMP or JPEG; gray or RGB; 8 or 16 bit),
or multi-page TIFFs (one per field). SRC may also be a single field itself (a folder of planes, or one TIFF).
For every field the importer

1. orders the planes: by a z sidecar (``z.csv`` with ``file,z_um`` lines, or ``z.json`` mapping file → z in µm),
   else by a ``-0.4um``-style offset in every file name, else by the plane number in the file names
   (``plane_2`` before ``plane_10``); a multi-page TIFF keeps its page order (an ImageJ ``spacing`` gives µm);
2. takes as ground truth the plane with the highest thesis focus measure ``F``;
3. registers every plane to it with sub-pixel accuracy: upsampled phase cross-correlation
   (``skimage.registration.phase_cross_correlation``) for the translation, refined by OpenCV's
   ``findTransformECC`` for a ``rigid`` or ``affine`` transform;
4. matches brightness (gain and offset per channel, least squares on smoothed images, which defocus leaves
   nearly unchanged), crops every plane to the area all planes cover, and
5. writes ``DST/<field>.tif`` + ``.json`` (:func:`~virtualfocus.zstacks.stack.write_stack`) with provenance:
   source files, plane order, focus curve, transforms, brightness gains, crop, and the residual misregistration
   measured by registering the output again.

Offsets are in µm when the z positions are known (sidecar, µm in the names, ``--step-um``); otherwise in plane
steps from the sharpest plane, and the sidecar says ``"offset_unit": "plane"`` (the values still sit in
``offsets_um``, the format's one offset field). A bad field (fewer than 3 planes, unreadable file, planes that
cannot be registered) is reported in one line naming it and what is accepted; the other fields are still
imported, and nothing of the bad one is written.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from skimage.registration import phase_cross_correlation
from virtualfocus.edge import metrics as M
from virtualfocus.edge.errors import InputError
from virtualfocus.zstacks.realstacks import IMAGE_SUFFIXES, plane_order, read_image
from virtualfocus.zstacks.stack import ZStack, write_stack

__all__ = ["ACCEPTED", "ImportOptions", "ImportResult", "Transform", "find_fields", "import_field",
           "import_stacks", "main", "residual_shifts"]

log = logging.getLogger("virtualfocus")
ACCEPTED = ("accepted: a folder per field of view with ≥ 3 plane images (PNG, TIFF, BMP or JPEG; gray or RGB; "
            "8 or 16 bit) numbered in their file names or listed in z.csv/z.json, or a multi-page TIFF per field")
MIN_PLANES = 3
_TIFF = (".tif", ".tiff")
_Z_SIDECARS = ("z.csv", "z.json")


class Transform(StrEnum):
    """Geometric model that registers a plane to the ground truth."""

    TRANSLATION = "translation"  #: sub-pixel shift (phase cross-correlation only)
    RIGID = "rigid"  #: shift + rotation (ECC ``MOTION_EUCLIDEAN``)
    AFFINE = "affine"  #: shift + rotation + scale + shear (ECC ``MOTION_AFFINE``)


@dataclass(frozen=True, kw_only=True)
class ImportOptions:
    """How fields are imported.

    Attributes
    ----------
    transform : Transform
        Registration model (default translation; ``rigid``/``affine`` refine it with ECC).
    step_um : float, optional
        Plane spacing in µm when neither a sidecar nor the names give z (negative when higher plane numbers are
        closer to the slide). Without it offsets are stored in plane steps.
    match_brightness : bool
        Gain/offset-match every plane to the ground truth.
    max_shift : float
        Largest plausible shift as a fraction of the plane's smaller side; beyond it the planes are not one field.
    """

    transform: Transform = Transform.TRANSLATION
    step_um: float | None = None
    match_brightness: bool = True
    max_shift: float = 0.1


@dataclass(frozen=True)
class ImportResult:
    """Outcome for one field: ``stack`` (the written TIFF) or ``error`` (one line)."""

    source: Path
    name: str
    stack: Path | None = None
    error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None

    def line(self) -> str:
        if self.error is not None:
            return f"skipped {self.source}: {self.error}"
        i = self.info
        return (f"imported {self.source} -> {self.stack}: {i['planes']} planes, ground truth {i['sharp_file']} "
                f"(index {i['sharp_index']}), offsets in {i['offset_unit']}, residual misregistration "
                f"{i['residual_max_px']:.2f} px max (independent ECC check {i['residual_check_max_px']:.2f} px), crop {i['crop_hw'][0]}×{i['crop_hw'][1]}")


# ------------------------------------------------------------------------------------------------ discovery
def _tiff_pages(path: Path) -> int:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tf:
            return len(tf.pages)
    except Exception:  # an unreadable TIFF is a field that will fail with a clear message when read
        return 2


def _images(folder: Path) -> list[Path]:
    return sorted(f for f in folder.iterdir()
                  if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith("."))


def find_fields(src: str | os.PathLike[str]) -> list[Path]:
    """The fields of view under ``src``: each sub-folder and each multi-page TIFF, or ``src`` itself.

    ``src`` is one field when it is a TIFF file, or a folder of single-plane images without sub-folders.
    """
    root = Path(src)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise InputError(f"{root}: no such folder or file; {ACCEPTED}")
    subdirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    images = _images(root)
    stacks = [f for f in images if f.suffix.lower() in _TIFF and _tiff_pages(f) > 1]
    if not subdirs and images and len(stacks) < len(images):
        return [root]  # a folder of planes: one field
    fields = subdirs + stacks
    if not fields:
        raise InputError(f"{root}: no fields of view found; {ACCEPTED}")
    return fields


# ------------------------------------------------------------------------------------------------ reading
def _z_sidecar(folder: Path, files: Sequence[Path]) -> dict[str, float] | None:
    for name in _Z_SIDECARS:
        p = folder / name
        if not p.is_file():
            continue
        try:
            if name.endswith(".json"):
                data = json.loads(p.read_text())
                z = {str(k): float(v) for k, v in data.items()}
            else:
                rows = [r for r in csv.reader(p.read_text().splitlines()) if r and not r[0].startswith("#")]
                if rows and not _is_number(rows[0][-1]):
                    rows = rows[1:]  # header
                z = {r[0].strip(): float(r[1]) for r in rows}
        except (OSError, ValueError, IndexError, AttributeError) as e:
            raise InputError(f"{p}: unreadable z sidecar ({e}); expected lines 'file,z_um' "
                             "(z.csv) or {\"file\": z_um} (z.json)") from e
        missing = [f.name for f in files if f.name not in z]
        if missing:
            raise InputError(f"{p}: no z for {', '.join(missing[:3])}; list every plane image with its z in µm")
        return z
    return None


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _read_folder(folder: Path) -> tuple[list[np.ndarray], list[str], np.ndarray | None, str]:
    files = _images(folder)
    if len(files) < MIN_PLANES:
        raise InputError(f"{len(files)} plane image(s); a z-stack needs at least {MIN_PLANES}")
    z = _z_sidecar(folder, files)
    if z is not None:
        files = sorted(files, key=lambda f: z[f.name])
        z_um: np.ndarray | None = np.array([z[f.name] for f in files])
        how = "z sidecar"
    else:
        order, z_um, how = plane_order([f.name for f in files])
        files = [files[i] for i in order]
    planes = [read_image(f) for f in files]
    return planes, [f.name for f in files], z_um, how


def _read_tiff(path: Path) -> tuple[list[np.ndarray], list[str], np.ndarray | None, str]:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tf:
            arr = np.asarray(tf.asarray())
            ij = tf.imagej_metadata or {}
    except Exception as e:  # tifffile raises many types for bad files
        raise InputError(f"unreadable TIFF ({type(e).__name__}: {e})") from e
    if arr.ndim == 4 and arr.shape[1] in (3, 4) and arr.shape[-1] not in (3, 4):
        arr = np.moveaxis(arr, 1, -1)  # (Z, C, H, W) → (Z, H, W, C)
    if arr.ndim == 4 and arr.shape[-1] == 4:
        arr = arr[..., :3]
    if arr.ndim < 3 or (arr.ndim == 3 and arr.shape[-1] in (3, 4) and arr.shape[0] > 4):
        raise InputError(f"one page of shape {arr.shape}; a z-stack needs at least {MIN_PLANES} planes")
    z_um = None
    how = "TIFF page order"
    spacing = ij.get("spacing")
    if spacing and str(ij.get("unit", "micron")).lower() in ("micron", "um", "µm", "\\u00b5m"):
        z_um, how = np.arange(arr.shape[0]) * float(spacing), "TIFF page order, ImageJ z spacing"
    return list(arr), [f"page {i}" for i in range(arr.shape[0])], z_um, how


def _check(planes: list[np.ndarray]) -> list[np.ndarray]:
    if len(planes) < MIN_PLANES:
        raise InputError(f"{len(planes)} plane(s); a z-stack needs at least {MIN_PLANES}")
    kinds = {(p.ndim, p.shape[2] if p.ndim == 3 else 1, p.dtype) for p in planes}
    if len(kinds) != 1:
        raise InputError(f"planes mix channel counts or bit depths {sorted(map(str, kinds))}; "
                         "all planes of a field must be alike")
    if planes[0].dtype not in (np.uint8, np.uint16):
        raise InputError(f"dtype {planes[0].dtype}; expected 8- or 16-bit images")
    shapes = {p.shape[:2] for p in planes}
    if len(shapes) > 1:
        h, w = min(s[0] for s in shapes), min(s[1] for s in shapes)
        hh, ww = max(s[0] for s in shapes), max(s[1] for s in shapes)
        if hh - h > 0.05 * h or ww - w > 0.05 * w:
            raise InputError(f"planes have different sizes {sorted(shapes)} that cannot be registered "
                             "(more than 5 % apart); all planes of a field must show the same view")
        planes = [_centre_crop(p, h, w) for p in planes]  # registration absorbs the small offsets
    return planes


def _centre_crop(p: np.ndarray, h: int, w: int) -> np.ndarray:
    y0, x0 = (p.shape[0] - h) // 2, (p.shape[1] - w) // 2
    return np.ascontiguousarray(p[y0 : y0 + h, x0 : x0 + w])


# ------------------------------------------------------------------------------------------------ registration
def _gray(img: np.ndarray) -> np.ndarray:
    return M.green(img).astype(np.float32)


def _hann(shape: tuple[int, ...]) -> np.ndarray:
    return np.outer(np.hanning(shape[0]), np.hanning(shape[1])).astype(np.float32)


def _translation(ref: np.ndarray, mov: np.ndarray, win: np.ndarray, upsample: int = 50) -> tuple[float, float]:
    """Shift ``(dy, dx)`` that moves ``mov`` onto ``ref`` (windowed cross-correlation, two passes)."""
    ref_w = (ref - ref.mean()) * win
    dy = dx = 0.0
    for _ in range(2):  # the second pass, on the shifted plane, removes the bias of the window
        cur = mov if dy == dx == 0.0 else _warp(mov, _shift_matrix(dy, dx))
        shift, _, _ = phase_cross_correlation(ref_w, (cur - cur.mean()) * win, upsample_factor=upsample,
                                              normalization=None)
        dy, dx = dy + float(shift[0]), dx + float(shift[1])
    return dy, dx


def _shift_matrix(dy: float, dx: float) -> np.ndarray:
    """Inverse map (output → source coordinates) of a shift by (dy, dx)."""
    return np.array([[1, 0, -dx], [0, 1, -dy]], np.float32)


def _warp(img: np.ndarray, inv: np.ndarray, interp: int = cv2.INTER_CUBIC, border: int = cv2.BORDER_REFLECT_101,
          ) -> np.ndarray:
    h, w = img.shape[:2]
    return cv2.warpAffine(img, inv, (w, h), flags=interp | cv2.WARP_INVERSE_MAP, borderMode=border)


def _ecc(ref: np.ndarray, mov: np.ndarray, init: np.ndarray, transform: Transform) -> np.ndarray | None:
    """Refine ``init`` with ECC; ``None`` when it does not converge or wanders from the translation."""
    mode = cv2.MOTION_EUCLIDEAN if transform is Transform.RIGID else cv2.MOTION_AFFINE
    warp = init.copy()
    crit = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 200, 1e-6)
    try:
        _, warp = cv2.findTransformECC(ref, mov, warp, mode, crit, np.full(ref.shape, 255, np.uint8), 5)
    except cv2.error:
        return None
    h, w = ref.shape
    corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], np.float32).T
    if np.max(np.abs(warp @ corners - init @ corners)) > 3.0:  # ECC drifted: keep the robust translation
        return None
    return warp.astype(np.float32)


def register(planes: Sequence[np.ndarray], sharp: int, transform: Transform, *, max_shift: float
             ) -> tuple[list[np.ndarray], list[str]]:
    """Inverse-map matrices (2×3, output → source) that register every plane to ``planes[sharp]``.

    Returns the matrices and, per plane, how it was registered.

    Raises
    ------
    InputError
        When a plane would have to move by more than ``max_shift`` of the plane's smaller side.
    """
    ref = _gray(planes[sharp])
    win = _hann(ref.shape)
    limit = max_shift * min(ref.shape)
    mats: list[np.ndarray] = []
    how: list[str] = []
    ref_s = cv2.GaussianBlur(ref, (0, 0), 1.5)
    for i, p in enumerate(planes):
        if i == sharp:
            mats.append(np.array([[1, 0, 0], [0, 1, 0]], np.float32))
            how.append("reference")
            continue
        mov = _gray(p)
        dy, dx = _translation(ref, mov, win)
        if max(abs(dy), abs(dx)) > limit:
            raise InputError(f"plane {i} would move by ({dy:.1f}, {dx:.1f}) px, more than {limit:.0f} px: the "
                             "planes cannot be registered (not one field of view?)")
        mat = _shift_matrix(dy, dx)
        method = "translation"
        if transform is not Transform.TRANSLATION:
            refined = _ecc(ref_s, cv2.GaussianBlur(mov, (0, 0), 1.5), mat, transform)
            if refined is not None:
                mat, method = refined, f"{transform.value} (ECC)"
            else:
                method = f"translation ({transform.value} ECC did not converge)"
        mats.append(mat)
        how.append(method)
    return mats, how


def common_area(mats: Sequence[np.ndarray], shape: tuple[int, int], margin: int = 2) -> tuple[int, int, int, int]:
    """``(y0, x0, h, w)``: the largest window (found by trimming edges) that every warped plane covers."""
    h, w = shape
    valid = np.ones((h, w), bool)
    ones = np.ones((h, w), np.float32)
    for m in mats:
        cover = _warp(ones, m, cv2.INTER_LINEAR, cv2.BORDER_CONSTANT)
        valid &= cover >= 0.999
    valid = cv2.erode(valid.astype(np.uint8), np.ones((2 * margin + 1, 2 * margin + 1), np.uint8),
                      borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)
    ys, xs = np.nonzero(valid)
    if ys.size == 0:
        raise InputError("the registered planes share no common area")
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    while y1 - y0 > 16 and x1 - x0 > 16:  # the covered area is convex: trim the worst edge until none is bad
        bad = [int((~valid[y0, x0:x1]).sum()), int((~valid[y1 - 1, x0:x1]).sum()),
               int((~valid[y0:y1, x0]).sum()), int((~valid[y0:y1, x1 - 1]).sum())]
        k = int(np.argmax(bad))
        if bad[k] == 0:
            break
        if k == 0:
            y0 += 1
        elif k == 1:
            y1 -= 1
        elif k == 2:
            x0 += 1
        else:
            x1 -= 1
    if y1 - y0 < 0.5 * h or x1 - x0 < 0.5 * w:
        raise InputError(f"the registered planes share only {y1 - y0}×{x1 - x0} of {h}×{w} px: the planes "
                         "cannot be registered (not one field of view?)")
    return y0, x0, y1 - y0, x1 - x0


def _brightness(ref: np.ndarray, img: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel gain and offset mapping ``img`` onto ``ref``: least squares on heavily smoothed copies (σ = 5 %
    of the plane), whose slow variation (illumination, vignetting) defocus leaves alone; on finer scales the
    fit would take the contrast that defocus removes for a brightness change and sharpen the plane."""
    sigma = max(4.0, 0.05 * min(ref.shape[:2]))
    r = cv2.GaussianBlur(ref, (0, 0), sigma).reshape(-1, ref.shape[2] if ref.ndim == 3 else 1)
    x = cv2.GaussianBlur(img, (0, 0), sigma).reshape(r.shape)
    gains, offsets = [], []
    for c in range(r.shape[1]):
        xc, rc = x[:, c].astype(np.float64), r[:, c].astype(np.float64)
        a, b = np.polyfit(xc, rc, 1) if xc.std() > 1e-6 else (1.0, 0.0)
        if not 0.7 <= a <= 1.4 or np.corrcoef(xc, rc)[0, 1] < 0.8:
            a, b = float(rc.mean() / max(xc.mean(), 1e-6)), 0.0  # too little structure: match the mean only
        gains.append(float(a))
        offsets.append(float(b))
    return gains, offsets


def residual_shifts(planes: np.ndarray, sharp: int) -> tuple[np.ndarray, np.ndarray]:
    """Shifts ``(Z, 2)`` ``[dy, dx]`` of every plane against ``planes[sharp]`` found by registering the output
    again (0 = aligned): by the importer's own phase cross-correlation, and by an independent estimator (ECC,
    translation only; NaN where it does not converge)."""
    ref = _gray(planes[sharp])
    win = _hann(ref.shape)
    ref_s = cv2.GaussianBlur(ref, (0, 0), 2.0)
    same = np.zeros((len(planes), 2))
    other = np.zeros((len(planes), 2))
    crit = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-6)
    for i, p in enumerate(planes):
        if i == sharp:
            continue
        g = _gray(p)
        same[i] = _translation(ref, g, win, upsample=100)
        try:
            _, w = cv2.findTransformECC(ref_s, cv2.GaussianBlur(g, (0, 0), 2.0), np.eye(2, 3, dtype=np.float32),
                                        cv2.MOTION_TRANSLATION, crit, np.full(ref.shape, 255, np.uint8), 5)
            other[i] = [w[1, 2], w[0, 2]]
        except cv2.error:
            other[i] = np.nan
    return same, other


# ------------------------------------------------------------------------------------------------ one field
def _apply(planes: Sequence[np.ndarray], mats: Sequence[np.ndarray], crop: tuple[int, int, int, int],
           sharp: int, match: bool) -> tuple[np.ndarray, list[list[float]], list[list[float]]]:
    y0, x0, h, w = crop
    top = 255.0 if planes[0].dtype == np.uint8 else 65535.0
    ref = planes[sharp].astype(np.float32)[y0 : y0 + h, x0 : x0 + w]
    out, gains, offs = [], [], []
    for p, m in zip(planes, mats, strict=True):
        x = _warp(p.astype(np.float32), m)[y0 : y0 + h, x0 : x0 + w]
        g, b = _brightness(ref, x) if match and p is not planes[sharp] else ([1.0], [0.0])
        gain, off = np.asarray(g, np.float32), np.asarray(b, np.float32)
        x = x * (gain if x.ndim == 3 else gain[0]) + (off if x.ndim == 3 else off[0])
        out.append(np.clip(x + 0.5, 0, top).astype(planes[0].dtype))
        gains.append([round(v, 5) for v in g])
        offs.append([round(v * 255.0 / top, 4) for v in b])  # offsets on the 0..255 scale
    return np.stack(out), gains, offs


def _offsets(n: int, sharp: int, z_um: np.ndarray | None, step_um: float | None) -> tuple[np.ndarray, str]:
    if z_um is not None:
        return np.round(z_um - z_um[sharp], 6), "um"
    if step_um is not None:
        return np.round((np.arange(n) - sharp) * float(step_um), 6), "um"
    return (np.arange(n) - sharp).astype(np.float64), "plane"


def _sha256(paths: Sequence[Path]) -> list[str]:
    return [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]


def import_field(path: str | os.PathLike[str], out: str | os.PathLike[str], *,
                 options: ImportOptions | None = None, name: str | None = None) -> ImportResult:
    """Import one field of view (a folder of planes or a multi-page TIFF) into ``out/<name>.tif`` + ``.json``.

    Returns an :class:`ImportResult`; a bad field gives ``error`` (one line) and writes nothing.
    """
    opts = options or ImportOptions()
    src = Path(path)
    stem = name or (src.stem if src.is_file() else src.name)
    try:
        if src.is_dir():
            planes, files, z_um, how = _read_folder(src)
            sources = [src / f for f in files]
        elif src.is_file() and src.suffix.lower() in _TIFF:
            planes, files, z_um, how = _read_tiff(src)
            sources = [src]
        else:
            raise InputError("not a folder of plane images nor a multi-page TIFF")
        raw_shape = planes[0].shape[:2]
        planes = _check(planes)
        curve = M.focus_curve(planes, name=str(src))
        sharp = int(np.argmax(curve))
        mats, how_reg = register(planes, sharp, Transform(opts.transform), max_shift=opts.max_shift)
        crop = common_area(mats, planes[0].shape[:2])
        arr, gains, offs = _apply(planes, mats, crop, sharp, opts.match_brightness)
        resid, check = residual_shifts(arr, sharp)
        offsets, unit = _offsets(len(arr), sharp, z_um, opts.step_um)
        meta = _provenance(src, files, sources, how, z_um, curve, sharp, unit, opts, mats, how_reg, crop,
                           raw_shape, gains, offs, resid, check)
        meta["focus_curve"] = [round(float(f), 4) for f in M.focus_curve(arr)]
        written = write_stack(Path(out) / stem, ZStack(arr, offsets, sharp, name=stem, meta=meta))
    except (InputError, OSError, ValueError) as e:
        msg = str(e) if isinstance(e, InputError) else f"{type(e).__name__}: {e}"
        if "accepted:" not in msg:
            msg = f"{msg}; {ACCEPTED}"
        return ImportResult(src, stem, error=msg)
    info = {"planes": len(arr), "sharp_index": sharp, "sharp_file": files[sharp], "offset_unit": unit,
            "residual_max_px": meta["registration"]["residual_max_px"],
            "residual_check_max_px": meta["registration"]["residual_check_max_px"], "crop_hw": [crop[2], crop[3]]}
    return ImportResult(src, stem, stack=written, info=info)


def _provenance(src: Path, files: list[str], sources: list[Path], how: str, z_um: np.ndarray | None,
                curve: np.ndarray, sharp: int, unit: str, opts: ImportOptions, mats: list[np.ndarray],
                how_reg: list[str], crop: tuple[int, int, int, int], raw_shape: tuple[int, ...],
                gains: list[list[float]], offs: list[list[float]], resid: np.ndarray, check: np.ndarray
                ) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("virtualfocus")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        ver = "unknown"
    mag = np.hypot(resid[:, 0], resid[:, 1])
    mag_check = np.hypot(check[:, 0], check[:, 1])
    return {
        "source": "imported",
        "importer": f"virtualfocus import-stacks {ver}",
        "imported_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "source_path": str(src.resolve()),
        "files": files,
        "files_sha256": _sha256(sources),
        "plane_order": how,
        "offset_unit": unit,
        "offset_note": ("offsets_um holds plane steps from the sharpest plane (the z step is unknown); sign = "
                        "file order, not necessarily the thesis's (negative = objective closer to the slide)"
                        if unit == "plane" else "µm from the sharpest plane"),
        "z_um": None if z_um is None else [round(float(v), 6) for v in z_um],
        "sharp_file": files[sharp],
        "ground_truth": "highest thesis focus measure F (green channel; gray for gray images)",
        "focus_curve_raw": [round(float(f), 4) for f in curve],
        "registration": {
            "transform": opts.transform.value if isinstance(opts.transform, Transform) else str(opts.transform),
            "method": how_reg,
            "inverse_maps": [[[round(float(v), 6) for v in row] for row in m] for m in mats],
            "residual_shift_px": [[round(float(a), 4), round(float(b), 4)] for a, b in resid],
            "residual_check_ecc_px": [[None if not np.isfinite(a) else round(float(a), 4),
                                       None if not np.isfinite(b) else round(float(b), 4)] for a, b in check],
            "residual_max_px": round(float(mag.max()), 4),
            "residual_median_px": round(float(np.median(np.delete(mag, sharp))), 4),
            # an independent estimator; far from focus it is itself uncertain by a few tenths of a pixel
            "residual_check_max_px": round(float(np.nanmax(mag_check)), 4),
        },
        "brightness": {"matched": opts.match_brightness, "gain": gains, "offset_255": offs},
        "crop": {"y0": crop[0], "x0": crop[1], "height": crop[2], "width": crop[3],
                 "source_shape": [int(v) for v in raw_shape]},
    }


# ------------------------------------------------------------------------------------------------ many fields
def import_stacks(src: str | os.PathLike[str], out: str | os.PathLike[str], *,
                  options: ImportOptions | None = None) -> list[ImportResult]:
    """Import every field of view under ``src`` into ``out`` (see the module notes); one result per field."""
    fields = find_fields(src)
    results: list[ImportResult] = []
    used: set[str] = set()
    for f in fields:
        name = f.stem if f.is_file() else f.name
        base, k = name, 1
        while name in used:  # a folder and a TIFF of the same name
            k += 1
            name = f"{base}-{k}"
        used.add(name)
        r = import_field(f, out, options=options, name=name)
        (log.info if r.ok else log.warning)("%s", r.line())
        results.append(r)
    return results


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="virtualfocus import-stacks",
        description="Import real z-stacks (a folder per field of view of plane images, or multi-page TIFFs): "
        "ground truth by the thesis focus measure, sub-pixel registration, brightness matching, common-area "
        "crop; writes the project's stack format (TIFF + JSON sidecar) that train/evaluate --data read.",
    )
    ap.add_argument("src", help="folder of fields (sub-folders of planes, or multi-page TIFFs), or one field")
    ap.add_argument("--out", required=True, help="output folder of stacks (created)")
    ap.add_argument("--transform", choices=[t.value for t in Transform], default=Transform.TRANSLATION.value,
                    help="registration model (default translation; rigid/affine refine it with ECC)")
    ap.add_argument("--step-um", type=float, default=None,
                    help="plane spacing in µm when no sidecar or file name gives z (default: offsets in plane steps)")
    ap.add_argument("--no-brightness", action="store_true", help="keep every plane's brightness as captured")
    return ap


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``virtualfocus import-stacks``: 0 when every field imported, 1 when none, 3 when some."""
    args = _parser().parse_args(argv)
    if args.step_um is not None and (args.step_um == 0 or not np.isfinite(args.step_um)):
        raise InputError(f"--step-um {args.step_um}; expected a non-zero plane spacing in µm")
    opts = ImportOptions(transform=Transform(args.transform), step_um=args.step_um,
                         match_brightness=not args.no_brightness)
    results = import_stacks(args.src, args.out, options=opts)
    for r in results:
        print(r.line(), file=sys.stdout if r.ok else sys.stderr)
    ok = sum(r.ok for r in results)
    print(f"{ok} of {len(results)} fields imported into {args.out}")
    return 0 if ok == len(results) else (1 if ok == 0 else 3)
