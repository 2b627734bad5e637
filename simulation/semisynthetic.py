"""Semi-synthetic z-stacks from real in-focus smear images (numpy + OpenCV, no torch).

A real sharp field supplies the staining and texture a simulator cannot; the project's optics supply defocus:

1. the image is resampled to the simulator's pixel size and converted to the fraction of light absorbed per
   channel relative to the empty background, ``A = 1 − I / I_bg``;
2. cells are segmented on stain (Otsu threshold of the green optical density, distance-transform watershed to
   split touching red cells); white cells are the segments holding a nucleus (dark, red-absorbing stain);
3. every cell gets a depth — red cells around the red-cell layer, white cells higher and their nuclei higher
   still, platelets near the glass — and ``A`` is split into depth layers with feathered masks, so that the
   layers sum exactly to the real image at focus;
4. the layered field is rendered with :mod:`virtualfocus.simulation.optics` exactly like simulated fields
   (:func:`virtualfocus.simulation.simulate.capture_stack`: pupil PSFs, chromatic shift, flicker, camera noise).

``virtualfocus semisynth --images DIR --out DIR --seed S`` turns a folder of images into stacks.
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from virtualfocus.edge.errors import InputError
from virtualfocus.simulation.optics import fast_len
from virtualfocus.simulation.simulate import SimConfig, SmearField, capture_stack, focus_frame
from virtualfocus.zstacks.stack import ZStack, write_stack

__all__ = ["Segmentation", "main", "segment_cells", "semisynthetic_stack", "semisynthetic_stacks"]

log = logging.getLogger("virtualfocus")
_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


@dataclass(frozen=True)
class Segmentation:
    """Cells found in a sharp smear image.

    Attributes
    ----------
    labels : np.ndarray
        ``(H, W)`` int32, 0 = background, ``1..n`` = cells.
    kinds : dict
        ``label -> "rbc" | "wbc" | "platelet"``.
    nucleus : np.ndarray
        ``(H, W)`` bool mask of white-cell nuclei.
    background : np.ndarray
        ``(3,)`` float RGB of the empty background (0..255 scale).
    """

    labels: np.ndarray
    kinds: dict[int, str]
    nucleus: np.ndarray
    background: np.ndarray

    def nucleus_centres(self) -> list[list[int]]:
        """``[[y, x], ...]`` of nucleus blobs, largest first."""
        n, _, stats, cents = cv2.connectedComponentsWithStats(self.nucleus.astype(np.uint8), connectivity=8)
        order: list[int] = (np.argsort(-stats[1:, cv2.CC_STAT_AREA]) + 1).tolist() if n > 1 else []
        return [[round(cents[k][1]), round(cents[k][0])] for k in order if stats[k, cv2.CC_STAT_AREA] >= 30]


def _as_rgb_float(img: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(img)
    if a.size == 0:
        raise InputError(f"{name}: empty image")
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[-1] not in (3, 4):
        raise InputError(f"{name}: shape {a.shape}; expected an H×W×3 RGB (or gray) image")
    a = a[..., :3]
    if a.dtype == np.uint8:
        return a.astype(np.float32)
    if a.dtype == np.uint16:
        return a.astype(np.float32) / 257.0
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)):
            raise InputError(f"{name}: NaN or infinite values")
        return a.astype(np.float32) * 255.0
    raise InputError(f"{name}: dtype {a.dtype}; expected uint8, uint16 or float 0..1")


def segment_cells(img: np.ndarray, *, name: str = "image", pixel_um: float = 0.1) -> Segmentation:
    """Segment red cells, white cells (with nuclei) and platelets of a sharp Giemsa-stained field.

    Parameters
    ----------
    img : np.ndarray
        RGB image (uint8/uint16/float 0..1).
    pixel_um : float
        Pixel size, used for size thresholds (platelets < 3.5 µm, nucleus blobs > 1.5 µm across).
    """
    return _segment(_as_rgb_float(img, name), pixel_um)


def _segment(a: np.ndarray, pixel_um: float) -> Segmentation:
    """:func:`segment_cells` on an RGB float image already on the 0..255 scale."""
    g = a[..., 1]
    # background: the bright mode — median of the brightest 30 % of green, per channel over those pixels
    thr_bg = np.percentile(g, 70)
    bright = g >= thr_bg
    background = np.median(a[bright], axis=0) + 1e-3
    od = -np.log10(np.clip(a / background, 1e-3, None))
    od_g = cv2.GaussianBlur(od[..., 1], (0, 0), 1.0)
    # cells: optical density clearly above the background's own fluctuation (robust σ of the bright pixels)
    bg_od = od_g[bright]
    sigma = 1.4826 * float(np.median(np.abs(bg_od - np.median(bg_od))))
    thr = max(0.035, float(np.median(bg_od)) + 5.0 * sigma)
    cells = (od_g > thr).astype(np.uint8)
    top = max(float(np.percentile(od_g, 95)), 1e-3)
    v = np.clip(od_g * 255 / top, 0, 255).astype(np.uint8)
    cells = cv2.morphologyEx(cells, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    # fill central pallor holes: a red cell's pale centre belongs to the cell
    inv = (1 - cells).astype(np.uint8)
    n_bg, bg_lab, bg_stats, _ = cv2.connectedComponentsWithStats(inv, connectivity=4)
    hole_max = math.pi * (3.0 / pixel_um) ** 2
    for k in range(1, n_bg):
        if bg_stats[k, cv2.CC_STAT_AREA] < hole_max:
            cells[bg_lab == k] = 1
    # nuclei: strong absorption of red and green light
    od_r = cv2.GaussianBlur(od[..., 0], (0, 0), 1.0)
    nucleus = (od_r > 0.25) & (od_g > 0.35)
    nucleus = cv2.morphologyEx(nucleus.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).astype(
        bool
    )
    # split touching cells: distance-transform peaks as watershed markers
    dist = cv2.distanceTransform(cells, cv2.DIST_L2, 5)
    min_r = 1.5 / pixel_um
    peaks = (dist >= min_r) & (dist >= cv2.dilate(dist, np.ones((int(2 * min_r) | 1,) * 2, np.uint8)) - 0.5)
    _n_mark, markers = cv2.connectedComponents(peaks.astype(np.uint8))
    markers = markers.astype(np.int32) + 1
    markers[cells == 0] = 1  # background marker
    unknown = (cells == 1) & (~peaks)
    markers[unknown] = 0
    ws = cv2.watershed(cv2.cvtColor(v, cv2.COLOR_GRAY2BGR), markers)
    labels = np.where(ws > 1, ws - 1, 0).astype(np.int32)
    labels[cells == 0] = 0
    # small cells the watershed missed (platelets, no distance peak): their own components
    missing = (cells == 1) & (labels == 0)
    _n_small, small = cv2.connectedComponents(missing.astype(np.uint8))
    labels = np.where(small > 0, small + labels.max(), labels).astype(np.int32)
    kinds: dict[int, str] = {}
    plate_area = math.pi * (1.75 / pixel_um) ** 2
    ids = np.unique(labels)
    for lab in ids[ids > 0]:
        m = labels == lab
        area = int(m.sum())
        if np.count_nonzero(nucleus & m) > 0.1 * area:
            kinds[int(lab)] = "wbc"
        elif area < plate_area:
            kinds[int(lab)] = "platelet"
        else:
            kinds[int(lab)] = "rbc"
    return Segmentation(labels=labels, kinds=kinds, nucleus=nucleus, background=background.astype(np.float32))


def _layers_from_image(
    a: np.ndarray, seg: Segmentation, rng: np.random.Generator, cfg: SimConfig
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Split the absorbed fraction of a real image into feathered depth layers (summing to the image)."""
    absorbed = 1.0 - a / seg.background  # per channel; slightly negative where brighter than background
    absorbed = np.clip(absorbed, -0.3, 1.0).astype(np.float32)
    depth_of = np.zeros(int(seg.labels.max()) + 1)
    wbc_height = float(rng.uniform(*cfg.wbc_height_um))
    for lab, kind in seg.kinds.items():
        if kind == "wbc":
            depth_of[lab] = wbc_height
        elif kind == "platelet":
            depth_of[lab] = rng.normal(0.05, 0.05)
        else:
            depth_of[lab] = rng.normal(0.0, cfg.rbc_depth_sd_um)
    depth_map = depth_of[seg.labels]
    depth_map[seg.nucleus & (seg.labels > 0)] = wbc_height + 0.1
    q = 0.05
    keys = np.round(depth_map / q).astype(np.int32)
    uniq = np.unique(keys)
    # feathered masks: blur each layer's indicator so cell borders do not become hard seams between layers
    weights = np.stack([cv2.GaussianBlur((keys == k).astype(np.float32), (0, 0), 1.5) for k in uniq])
    weights /= np.maximum(weights.sum(axis=0, keepdims=True), 1e-6)
    layers = weights[..., None] * absorbed[None]
    info = {
        "wbc_depth_um": round(wbc_height, 4),
        "cell_counts": {k: sum(1 for v in seg.kinds.values() if v == k) for k in ("rbc", "wbc", "platelet")},
    }
    return layers.astype(np.float32), uniq * q, info


def semisynthetic_stack(
    image: np.ndarray,
    seed: int,
    *,
    config: SimConfig | None = None,
    source_pixel_um: float = 0.1,
    name: str = "semi",
    source: str = "",
) -> ZStack:
    """Defocus stack of one real sharp field (a crop of ``config.size``, centred on a white cell if any).

    Parameters
    ----------
    image : np.ndarray
        Real in-focus RGB smear image.
    seed : int
        Seeds crop position, cell depths, focus error and noise.
    config : SimConfig, optional
        Optics, camera, stack geometry (as for :func:`virtualfocus.simulation.simulate.simulate_stack`).
    source_pixel_um : float
        Pixel size of ``image`` in µm; it is resampled to ``config.optics.pixel_um`` (chula-rbc12 ≈ 0.2).
    name, source : str
        Stack name and provenance for ``meta``.

    Raises
    ------
    InputError
        Invalid image, or an image smaller than the requested field.
    """
    cfg = config or SimConfig()
    rng = np.random.default_rng(int(seed))
    a = _as_rgb_float(image, name)
    if source_pixel_um <= 0:
        raise InputError(f"source_pixel_um={source_pixel_um}; expected a positive pixel size in µm")
    scale = source_pixel_um / cfg.optics.pixel_um
    if abs(scale - 1.0) > 1e-3:
        a = cv2.resize(
            a, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA
        )
    size = cfg.size
    p = fast_len(size + 48)
    h, w = a.shape[:2]
    if h < size or w < size:
        raise InputError(
            f"{name}: image is {h}×{w} px at {cfg.optics.pixel_um} µm/px; need at least {size}×{size}"
        )
    seg_full = _segment(a, cfg.optics.pixel_um)
    centres = seg_full.nucleus_centres()
    if centres:
        cy, cx = centres[0]
        cy += int(rng.normal(0, size * 0.08))
        cx += int(rng.normal(0, size * 0.08))
    else:
        cy, cx = (
            int(rng.integers(size // 2, h - size // 2 + 1)),
            int(rng.integers(size // 2, w - size // 2 + 1)),
        )
    y0 = int(np.clip(cy - size // 2, 0, h - size))
    x0 = int(np.clip(cx - size // 2, 0, w - size))
    # canvas of size p: the crop plus real surroundings (reflected at the image border), rolled so the crop sits
    # at the top-left and the margins wrap around it — the periodic blur then sees real content on every side
    m0 = (p - size) // 2
    pad = p
    big = cv2.copyMakeBorder(a, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
    win = big[pad + y0 - m0 : pad + y0 - m0 + p, pad + x0 - m0 : pad + x0 - m0 + p]
    seg = _segment(np.ascontiguousarray(win), cfg.optics.pixel_um)
    seg = Segmentation(seg.labels, seg.kinds, seg.nucleus, seg_full.background)
    layers, depths, info = _layers_from_image(win, seg, rng, cfg)
    layers = np.roll(layers, (-m0, -m0), axis=(1, 2))
    depths_focus, focus = focus_frame(layers, depths, cfg.optics, rng=rng, jitter_um=cfg.focus_jitter_um)
    nuc = [[int(c[0]) - m0, int(c[1]) - m0] for c in seg.nucleus_centres()]
    nuc = [c for c in nuc if 0 <= c[0] < size and 0 <= c[1] < size]
    field = SmearField(
        layers,
        depths_focus,
        seg_full.background / 255.0,
        cfg.optics,
        size=(size, size),
        nucleus_centres=nuc,
        info={**info, "focus_um": round(focus, 4)},
    )
    planes, offsets, sharp, extra = capture_stack(field, rng, cfg)
    meta: dict[str, Any] = {
        "source": "semisynthetic",
        "source_image": source,
        "source_pixel_um": source_pixel_um,
        "crop_origin": [y0, x0],
        "seed": int(seed),
        "optics": cfg.optics.to_dict(),
        "camera": cfg.camera.to_dict(),
        "camera_bit_depth": cfg.camera.bit_depth,
        "pixel_um": cfg.optics.pixel_um,
        "nucleus_centres": nuc,
        **extra,
        **field.info,
    }
    return ZStack(planes, offsets, sharp, name=name, meta=meta)


def _read_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)  # also reads PNGs named .jpg
    if img is None or img.size == 0:
        raise InputError(f"{path}: unreadable image; expected a PNG/JPEG/TIFF/BMP smear image")
    return np.ascontiguousarray(img[..., ::-1])


def semisynthetic_stacks(
    images: str | Path,
    out: str | Path,
    *,
    seed: int = 0,
    limit: int | None = None,
    per_image: int = 1,
    config: SimConfig | None = None,
    source_pixel_um: float = 0.1,
    randomize: bool = False,
) -> tuple[list[Path], list[tuple[str, str]]]:
    """Write ``per_image`` stacks for every image of a folder; returns (written files, skipped (file, reason)).

    Stack ``j`` of image ``i`` (sorted by name) uses seed ``seed + i·per_image + j`` and is named
    ``semi-<stem>-<j>``. Bad images are logged and skipped; the others are still written. With ``randomize``
    every stack draws its own optics, camera and stain
    (:func:`virtualfocus.simulation.randomize.random_semisynthetic_stack`, field size ``config.size``).
    """
    from .randomize import random_semisynthetic_stack

    root = Path(images)
    if not root.is_dir():
        raise InputError(f"--images {root}: not a folder of images")
    files = sorted(f for f in root.iterdir() if f.suffix.lower() in _SUFFIXES and not f.name.startswith("."))
    if limit is not None:
        files = files[:limit]
    if not files:
        raise InputError(f"--images {root}: no images ({', '.join(_SUFFIXES)}) found")
    written: list[Path] = []
    skipped: list[tuple[str, str]] = []
    for i, f in enumerate(files):
        try:
            img = _read_rgb(f)
            for j in range(per_image):
                if randomize:
                    st = random_semisynthetic_stack(
                        img,
                        seed + i * per_image + j,
                        size=(config or SimConfig()).size,
                        source_pixel_um=source_pixel_um,
                        name=f"semi-{f.stem}-{j}",
                        source=str(f),
                    )
                    written.append(write_stack(Path(out) / st.name, st))
                    continue
                st = semisynthetic_stack(
                    img,
                    seed + i * per_image + j,
                    config=config,
                    source_pixel_um=source_pixel_um,
                    name=f"semi-{f.stem}-{j}",
                    source=str(f),
                )
                written.append(write_stack(Path(out) / st.name, st))
        except InputError as e:
            log.warning("skipping %s: %s", f, e)
            skipped.append((str(f), str(e)))
    return written, skipped


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="virtualfocus semisynth",
        description="Defocus z-stacks from real in-focus smear images (segmented cells at synthetic depths).",
    )
    ap.add_argument("--images", required=True, help="folder of sharp smear images")
    ap.add_argument("--out", required=True, help="output folder for stacks (*.tif + *.json)")
    ap.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    ap.add_argument("--limit", type=int, default=None, help="use at most N images (first N by name)")
    ap.add_argument("--per-image", type=int, default=1, help="stacks per image (default 1)")
    ap.add_argument("--size", type=int, default=401, help="field size in pixels (default 401)")
    ap.add_argument(
        "--source-pixel-um",
        type=float,
        default=0.2,
        help="pixel size of the images in µm (chula-rbc12 ≈ 0.2)",
    )
    ap.add_argument(
        "--randomize",
        action="store_true",
        help="draw optics, camera and stain per stack (partially coherent, phase, noise, JPEG; see "
        "virtualfocus.simulation.randomize)",
    )
    return ap


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``virtualfocus semisynth``."""
    args = _parser().parse_args(argv)
    if args.limit is not None and args.limit < 1:
        raise InputError(f"--limit {args.limit}; expected at least 1")
    if args.per_image < 1:
        raise InputError(f"--per-image {args.per_image}; expected at least 1")
    t0 = time.perf_counter()
    written, skipped = semisynthetic_stacks(
        args.images,
        args.out,
        seed=args.seed,
        limit=args.limit,
        per_image=args.per_image,
        config=SimConfig(size=args.size),
        source_pixel_um=args.source_pixel_um,
        randomize=args.randomize,
    )
    print(
        f"wrote {len(written)} stacks to {args.out} in {time.perf_counter() - t0:.1f} s; skipped {len(skipped)}"
    )
    for f, reason in skipped:
        print(f"  skipped {f}: {reason}")
    return 0 if written else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
