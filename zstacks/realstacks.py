"""Real z-stacks: loaders and the thesis's preprocessing (numpy / OpenCV / tifffile / scikit-image, no torch).

A real stack arrives as a folder of images (one per focus plane, sorted by name) or as a multi-page TIFF, 8- or
16-bit, gray or RGB. The preprocessing follows the reference thesis (chapter 2.1):

1. ground truth = the plane with the highest focus measure ``F`` (:func:`virtualfocus.edge.metrics.focus_curve`);
2. re-centre the focus curve on it, and discard stacks whose peak lies outside the sharp band (the microscope's
   own autofocus was too far off to trust the stack) — :func:`recentre`;
3. align every plane to the sharp one with sub-pixel accuracy (upsampled phase cross-correlation, then an affine
   warp) — :func:`align_stack`;
4. training samples are random 256×256 crops around the white cell's nucleus (normal jitter so the cell appears
   anywhere in the crop) — :func:`random_crop_pair`;
5. training-only augmentation (contrast, brightness, white balance, saturation, stain, rotation), identical for
   input and target — :func:`augment_pair`.

The torch ``Dataset`` lives in :mod:`virtualfocus.training.datasets` and calls these functions.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from virtualfocus.edge import metrics as M
from virtualfocus.edge.errors import InputError
from virtualfocus.zstacks.stack import ZStack, read_stack

__all__ = [
    "IMAGE_SUFFIXES",
    "align_stack",
    "augment_pair",
    "load_stack",
    "load_stacks",
    "nucleus_centre",
    "plane_order",
    "random_crop_pair",
    "read_image",
    "recentre",
]

log = logging.getLogger("virtualfocus")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
_OFFSET_RE = re.compile(r"(?:z|dz|offset|focus)?[_=]?([+-]?\d+(?:\.\d+)?)\s*(?:um|µm)", re.IGNORECASE)


# ----------------------------------------------------------------------------------------------------- loading
def read_image(path: Path) -> np.ndarray:
    """One plane image as gray ``(H, W)`` or RGB ``(H, W, 3)`` in its own dtype (alpha dropped).

    Raises
    ------
    InputError
        Naming the file, when OpenCV cannot decode it or it is empty.
    """
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputError(f"{path}: unreadable image; expected an 8/16-bit gray or RGB PNG, JPEG, TIFF or BMP")
    if img.size == 0:
        raise InputError(f"{path}: empty image")
    if img.ndim == 3:
        if img.shape[-1] == 4:
            img = img[..., :3]
        img = np.ascontiguousarray(img[..., ::-1])  # OpenCV reads BGR
    return img


_read_image = read_image
_NUMBER_RE = re.compile(r"\d+")


def plane_order(names: Sequence[str]) -> tuple[list[int], np.ndarray | None, str]:
    """Order plane files by focus: ``(indices in plane order, z in µm or None, how the order was found)``.

    Every name holding an offset in µm (``z-0.4um.png``) gives z; otherwise the plane number that varies between
    the names (``plane_2`` before ``plane_10``, ``field3_z07`` by its ``07``).

    Raises
    ------
    InputError
        When the names hold no plane number that tells the planes apart.
    """
    offsets = _offsets_from_names(names)
    if offsets is not None and len(set(offsets.tolist())) == len(names):
        order = [int(i) for i in np.argsort(offsets, kind="stable")]
        return order, offsets[order], "µm offsets in the file names"
    stems = [Path(n).stem for n in names]
    tokens = [[int(t) for t in _NUMBER_RE.findall(s)] for s in stems]
    if len(names) > 1 and len({len(t) for t in tokens}) == 1 and tokens[0]:
        cols = np.array(tokens)
        varying = [c for c in range(cols.shape[1]) if len(set(cols[:, c].tolist())) > 1]
        if varying and len(set(cols[:, varying[-1]].tolist())) == len(names):
            order = [int(i) for i in np.argsort(cols[:, varying[-1]], kind="stable")]
            return order, None, "plane numbers in the file names"
    if len(names) <= 1:
        return list(range(len(names))), None, "single plane"
    raise InputError(
        f"cannot tell the plane order from the file names ({', '.join(list(names)[:3])}, …): number the planes "
        "in the names (plane_01.png, plane_02.png …) or list z in µm in z.csv ('file,z_um' lines)"
    )


def _check_planes(planes: list[np.ndarray], source: Path) -> np.ndarray:
    if len(planes) < 2:
        raise InputError(f"{source}: {len(planes)} plane(s); a z-stack needs at least 2")
    shapes = {p.shape for p in planes}
    if len(shapes) != 1:
        raise InputError(
            f"{source}: planes have different sizes {sorted(shapes)}; all planes of a stack must match"
        )
    dtypes = {p.dtype for p in planes}
    if len(dtypes) != 1:
        raise InputError(f"{source}: planes have different dtypes {sorted(map(str, dtypes))}")
    arr = np.stack(planes)
    if arr.dtype not in (np.uint8, np.uint16) and arr.dtype.kind != "f":
        raise InputError(f"{source}: dtype {arr.dtype}; expected 8/16-bit integers or float 0..1")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise InputError(f"{source}: planes contain NaN or infinite values")
    if min(arr.shape[1:3]) == 0:
        raise InputError(f"{source}: planes are empty (shape {arr.shape})")
    if arr.ndim == 4 and arr.shape[-1] not in (1, 3):
        raise InputError(f"{source}: {arr.shape[-1]} channels; expected gray or RGB")
    return arr


def _offsets_from_names(names: Sequence[str]) -> np.ndarray | None:
    vals = []
    for n in names:
        m = _OFFSET_RE.search(n)
        if m is None:
            return None
        vals.append(float(m.group(1)))
    return np.array(vals)


def load_stack(path: str | os.PathLike[str], *, step_um: float = 0.2, name: str | None = None) -> ZStack:
    """Read a real z-stack from a folder of images or a multi-page TIFF.

    Parameters
    ----------
    path : path
        A folder (every image in it is one plane, sorted by file name — or by offset when every name holds one,
        such as ``z-0.4um.png``), or a multi-page TIFF (pages = planes, in order). A TIFF with a
        JSON sidecar written by :func:`virtualfocus.zstacks.stack.write_stack` is read with its labels.
    step_um : float
        Plane spacing when the offsets are not in the file names (default 0.2 µm, the thesis's).
    name : str, optional
        Stack name (default: the folder or file stem).

    Returns
    -------
    ZStack
        Offsets are relative to the plane with the highest focus measure, which is the ``sharp_index``.

    Raises
    ------
    InputError
        Unreadable file, fewer than 2 planes, planes of different sizes, NaN values or empty images; the
        message names the file.
    """
    p = Path(path)
    if p.is_dir():
        files = sorted(
            f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith(".")
        )
        try:  # planes in focus order, whatever the names sort as
            order, offsets, _how = plane_order([f.name for f in files])
            files = [files[i] for i in order]
        except InputError:  # no plane numbers: file-name order
            offsets = None
        planes = [_read_image(f) for f in files]
        arr = _check_planes(planes, p)
        meta: dict[str, object] = {"source": str(p), "files": [f.name for f in files]}
    elif p.is_file():
        if p.with_suffix(".json").is_file() and p.suffix.lower() in (".tif", ".tiff"):
            return read_stack(p)
        try:
            import tifffile

            arr = tifffile.imread(str(p))
        except Exception as e:  # tifffile raises many types for bad files
            raise InputError(
                f"{p}: unreadable TIFF ({type(e).__name__}: {e}); expected a multi-page TIFF"
            ) from e
        arr = np.asarray(arr)
        if arr.ndim == 4 and arr.shape[1] in (3, 4) and arr.shape[-1] not in (3, 4):
            arr = np.moveaxis(arr, 1, -1)  # (Z, C, H, W) → (Z, H, W, C)
        if arr.ndim == 4 and arr.shape[-1] == 4:
            arr = arr[..., :3]
        if arr.ndim < 3:
            raise InputError(f"{p}: one page of shape {arr.shape}; a z-stack needs at least 2 planes")
        arr = _check_planes(list(arr), p)
        offsets = None
        meta = {"source": str(p)}
    else:
        raise InputError(f"{p}: no such folder or file; expected a folder of images or a multi-page TIFF")
    curve = M.focus_curve(arr, name=str(p))
    sharp = int(np.argmax(curve))
    if offsets is None:
        offsets = (np.arange(len(arr)) - sharp) * step_um
    meta["nominal_offsets_um"] = [round(float(o), 4) for o in offsets]
    meta["focus_curve"] = [round(float(f), 4) for f in curve]
    meta["bit_depth"] = 8 if arr.dtype == np.uint8 else 16
    return ZStack(arr, np.round(offsets - offsets[sharp], 6), sharp, name=name or p.stem, meta=meta)


def load_stacks(
    root: str | os.PathLike[str], *, step_um: float = 0.2
) -> tuple[list[ZStack], list[tuple[str, str]]]:
    """Load every stack under ``root`` (each sub-folder of images and each TIFF is one stack).

    Bad stacks are logged and returned in the second list as ``(path, reason)``; the others are still loaded.
    """
    r = Path(root)
    if not r.is_dir():
        raise InputError(f"{r}: not a folder of stacks")
    good: list[ZStack] = []
    bad: list[tuple[str, str]] = []
    for entry in sorted(r.iterdir()):
        if entry.name.startswith(".") or entry.suffix.lower() == ".json":
            continue
        if not (entry.is_dir() or entry.suffix.lower() in (".tif", ".tiff")):
            continue
        try:
            good.append(load_stack(entry, step_um=step_um))
        except InputError as e:
            log.warning("skipping stack: %s", e)
            bad.append((str(entry), str(e)))
    return good, bad


# ------------------------------------------------------------------------------------------------ preprocessing
def recentre(
    stack: ZStack, *, band_um: tuple[float, float] = (-0.2, 0.4), nominal: Sequence[float] | None = None
) -> ZStack | None:
    """Re-centre a stack on its sharpest plane; ``None`` when the peak lies outside the sharp band.

    Parameters
    ----------
    stack : ZStack
    band_um : (low, high)
        Allowed position of the focus peak relative to the nominal focus (the thesis's sharp band).
    nominal : sequence of float, optional
        The offsets as the microscope labelled them (default ``stack.meta["nominal_offsets_um"]`` or
        ``stack.offsets_um``).

    Returns
    -------
    ZStack or None
        Offsets relative to the highest-``F`` plane (which becomes ``sharp_index``), and the nominal peak in
        ``meta["peak_nominal_um"]``; ``None`` if the peak is outside ``band_um``.
    """
    nom = np.asarray(
        nominal if nominal is not None else stack.meta.get("nominal_offsets_um", stack.offsets_um), float
    )
    if nom.shape != (len(stack),):
        raise InputError(f"stack {stack.name!r}: {nom.size} nominal offsets for {len(stack)} planes")
    curve = M.focus_curve(stack.planes, name=stack.name)
    peak = int(np.argmax(curve))
    lo, hi = band_um
    if not lo - 1e-6 <= nom[peak] <= hi + 1e-6:
        log.info("stack %s: focus peak at %+.2f µm is outside %s; discarded", stack.name, nom[peak], band_um)
        return None
    meta = {
        **stack.meta,
        "peak_nominal_um": float(nom[peak]),
        "focus_curve": [round(float(f), 4) for f in curve],
    }
    return ZStack(stack.planes, np.round(nom - nom[peak], 6), peak, name=stack.name, meta=meta)


def _gray_float(img: np.ndarray) -> np.ndarray:
    return M.green(img).astype(np.float32)


def align_stack(stack: ZStack, *, upsample: int = 20, max_shift_px: float | None = 20.0) -> ZStack:
    """Align every plane to the sharp plane with sub-pixel accuracy (translation only).

    Shifts are found by upsampled phase cross-correlation of the green channels
    (``skimage.registration.phase_cross_correlation(upsample_factor=upsample)``) and applied with
    ``cv2.warpAffine`` (bicubic, reflected borders). The shifts go to ``meta["alignment_shifts_px"]`` as
    ``[dy, dx]`` per plane.

    Raises
    ------
    InputError
        When a shift exceeds ``max_shift_px`` (the planes are not of the same field).
    """
    from skimage.registration import phase_cross_correlation

    ref = _gray_float(stack.sharp)
    win = _hann(ref.shape)
    ref_w = (ref - ref.mean()) * win
    out = np.empty_like(stack.planes)
    shifts: list[list[float]] = []
    _h, _w = ref.shape
    for i, plane in enumerate(stack.planes):
        if i == stack.sharp_index:
            out[i] = plane
            shifts.append([0.0, 0.0])
            continue
        mov = _gray_float(plane)
        dy = dx = 0.0
        for _ in range(2):  # a second pass on the warped plane removes the bias of the window
            cur = mov if dy == dx == 0.0 else _shift(mov, dy, dx)
            shift, _, _ = phase_cross_correlation(
                ref_w, (cur - cur.mean()) * win, upsample_factor=upsample, normalization=None
            )
            dy, dx = dy + float(shift[0]), dx + float(shift[1])
        if max_shift_px is not None and max(abs(dy), abs(dx)) > max_shift_px:
            raise InputError(
                f"stack {stack.name!r}: plane {i} is shifted by ({dy:.1f}, {dx:.1f}) px, more than {max_shift_px}; "
                "not a z-stack of one field?"
            )
        out[i] = _shift(plane, dy, dx)
        shifts.append([round(dy, 4), round(dx, 4)])
    meta = {**stack.meta, "alignment_shifts_px": shifts}
    return ZStack(out, stack.offsets_um, stack.sharp_index, name=stack.name, meta=meta)


def _shift(img: np.ndarray, dy: float, dx: float) -> np.ndarray:
    h, w = img.shape[:2]
    mat = np.array([[1, 0, dx], [0, 1, dy]], dtype=np.float32)
    return cv2.warpAffine(img, mat, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)


def _hann(shape: tuple[int, ...]) -> np.ndarray:
    return np.outer(np.hanning(shape[0]), np.hanning(shape[1])).astype(np.float32)


def nucleus_centre(img: np.ndarray) -> tuple[int, int] | None:
    """Centre ``(y, x)`` of the largest dark, purple segment (a white-cell nucleus), or ``None``.

    Like the thesis: threshold the darkness of the image and take the largest dark segment. Nuclei are the
    darkest objects in the green channel of a Giemsa-stained smear and absorb red light (red cells do not).
    """
    a = M.to_255(img)
    if a.ndim == 2 or a.shape[-1] == 1:
        g = a.reshape(a.shape[:2])
        dark = g < min(float(np.percentile(g, 3)) + 10.0, 0.6 * float(np.median(g)))
    else:
        r, g = a[..., 0], a[..., 1]
        bg = np.percentile(a.reshape(-1, 3), 90, axis=0) + 1.0
        od_r = -np.log10(np.clip(r / bg[0], 1e-3, 1))
        od_g = -np.log10(np.clip(g / bg[1], 1e-3, 1))
        dark = (od_r > 0.2) & (od_g > 0.3)
    opened = cv2.morphologyEx(dark.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    n, _labels, stats, cents = cv2.connectedComponentsWithStats(opened, connectivity=8)
    if n <= 1:
        return None
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if stats[k, cv2.CC_STAT_AREA] < 30:
        return None
    return round(cents[k][1]), round(cents[k][0])


def random_crop_pair(
    stack: ZStack,
    rng: np.random.Generator,
    size: int = 256,
    nucleus: bool = True,
    *,
    jitter: float = 0.2,
    include_sharp: bool = True,
    plane: int | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """A random training pair: (defocused plane crop, sharp plane crop, focus offset in µm).

    Parameters
    ----------
    stack : ZStack
        Preferably aligned (:func:`align_stack`).
    rng : numpy.random.Generator
    size : int
        Crop size (256 as in the thesis).
    nucleus : bool
        Centre the crop on the white cell's nucleus (``meta["nucleus_centres"]`` or :func:`nucleus_centre`
        of the sharp plane), moved by a normal jitter of ``jitter · size`` px so the cell lands anywhere in the
        crop; otherwise uniformly random.
    include_sharp : bool
        Whether the ground-truth plane itself may be drawn as input (sharp → sharp pairs).
    plane : int, optional
        Force the input plane.

    Returns
    -------
    (np.ndarray, np.ndarray, float)
        Crops in the stack's dtype, and the input plane's offset.
    """
    h, w = stack.planes.shape[1:3]
    if size > h or size > w:
        raise InputError(f"stack {stack.name!r}: crop {size} larger than its {h}×{w} planes")
    if plane is None:
        choices = [i for i in range(len(stack)) if include_sharp or i != stack.sharp_index]
        plane = int(choices[int(rng.integers(len(choices)))])
    elif not 0 <= plane < len(stack):
        raise InputError(f"stack {stack.name!r}: plane {plane} outside 0..{len(stack) - 1}")
    centre = None
    if nucleus:
        cs = stack.meta.get("nucleus_centres") or []
        centre = (int(cs[0][0]), int(cs[0][1])) if cs else nucleus_centre(stack.sharp)
    if centre is None:
        y0 = int(rng.integers(0, h - size + 1))
        x0 = int(rng.integers(0, w - size + 1))
    else:
        cy = centre[0] + rng.normal(0, jitter * size)
        cx = centre[1] + rng.normal(0, jitter * size)
        y0 = int(np.clip(round(cy - size / 2), 0, h - size))
        x0 = int(np.clip(round(cx - size / 2), 0, w - size))
    sl = np.s_[y0 : y0 + size, x0 : x0 + size]
    return (
        np.ascontiguousarray(stack.planes[plane][sl]),
        np.ascontiguousarray(stack.sharp[sl]),
        float(stack.offsets_um[plane] - stack.offsets_um[stack.sharp_index]),
    )


# ------------------------------------------------------------------------------------------------ augmentation
def _to_unit(img: np.ndarray) -> tuple[np.ndarray, np.dtype]:
    a = np.asarray(img)
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0, a.dtype
    if a.dtype == np.uint16:
        return a.astype(np.float32) / 65535.0, a.dtype
    if a.dtype.kind == "f":
        return a.astype(np.float32), a.dtype
    raise InputError(f"augment_pair: dtype {a.dtype}; expected uint8, uint16 or float 0..1")


def _from_unit(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    if dtype == np.uint8:
        return (x * 255.0 + 0.5).astype(np.uint8)
    if dtype == np.uint16:
        return (x * 65535.0 + 0.5).astype(np.uint16)
    return x.astype(np.float32)


def augment_pair(
    x: np.ndarray,
    y: np.ndarray,
    rng: np.random.Generator,
    *,
    rotation: bool = True,
    free_rotation_deg: float = 15.0,
    brightness: float = 0.08,
    contrast: float = 0.15,
    white_balance: float = 0.06,
    saturation: float = 0.2,
    stain: float = 0.12,
) -> tuple[np.ndarray, np.ndarray]:
    """Training-only augmentation with the SAME random transform for input ``x`` and target ``y``.

    Geometric: rotation by a multiple of 90°, a flip, and a small free rotation (reflected borders).
    Photometric (thesis §2.3): brightness, contrast, per-channel white balance, saturation, and stain — a random
    near-identity mixing of the optical densities, which changes the hue and strength of the stain as differing
    May-Grünwald-Giemsa batches do. Amplitudes are the maximum relative change; 0 switches a part off.

    Parameters
    ----------
    x, y : np.ndarray
        H×W×3 (or H×W) images of equal shape, uint8/uint16 or float 0..1. Returned in the same dtype.
    rng : numpy.random.Generator
    """
    if x.shape != y.shape:
        raise InputError(f"augment_pair: input {x.shape} and target {y.shape} differ; expected equal shapes")
    xs, dt = _to_unit(x)
    ys, _ = _to_unit(y)
    k = int(rng.integers(4)) if rotation else 0
    flip = bool(rng.integers(2)) if rotation else False
    angle = (
        float(rng.uniform(-free_rotation_deg, free_rotation_deg)) if rotation and free_rotation_deg else 0.0
    )
    rgb = xs.ndim == 3 and xs.shape[-1] == 3
    gain = 1.0 + rng.uniform(-white_balance, white_balance, 3).astype(np.float32)
    c = np.float32(1.0 + rng.uniform(-contrast, contrast))
    b = np.float32(rng.uniform(-brightness, brightness))
    s = np.float32(1.0 + rng.uniform(-saturation, saturation))
    mix = (
        np.eye(3, dtype=np.float32)
        + rng.uniform(-stain, stain, (3, 3)).astype(np.float32) * np.float32(0.5)
        + np.diag(rng.uniform(-stain, stain, 3)).astype(np.float32)
    )

    def apply(im: np.ndarray, mean: np.ndarray) -> np.ndarray:
        im = np.rot90(im, k)
        if flip:
            im = im[:, ::-1]
        im = np.ascontiguousarray(im)
        if angle:
            hh, ww = im.shape[:2]
            mat = cv2.getRotationMatrix2D((ww / 2, hh / 2), angle, 1.0)
            im = cv2.warpAffine(im, mat, (ww, hh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        if rgb:
            if stain:
                od = -np.log(np.clip(im, 1e-3, 1.0))
                im = np.exp(-(od @ mix.T))
            im = im * gain
            gray = im.mean(axis=2, keepdims=True)
            im = gray + (im - gray) * s
        im = (im - mean) * c + mean + b
        return im

    # contrast pivots on the target's mean so input and target change identically
    mean = np.asarray(ys.mean(axis=(0, 1)), np.float32)
    return _from_unit(apply(xs, mean), dt), _from_unit(apply(ys, mean), dt)
