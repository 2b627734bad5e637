"""Training stacks with randomized microscopes: every stack its own objective, condenser, pixel size, aberration,
camera, noise, bit depth and compression (numpy + OpenCV, no torch).

A model that has seen one microscope learns that microscope's blur. Real captures come from objectives of NA
0.75–1.4, pixel sizes of 0.05–0.35 µm in the specimen, coverslips that add spherical aberration of either sign,
gray or colour cameras of 8–16 bit, noisy raw frames or soft JPEGs. Each stack here draws one of each (seeded,
recorded in ``meta["randomization"]``), and its focus step is drawn so that the blur at the outermost planes, in
pixels, spans the range from a slight miss to a plane far outside the depth of field (tens of pixels, as in the
outer planes of real low-magnification stacks).

Most stacks are semi-synthetic (real sharp smear fields through the optics: their texture is real); the rest are
simulated fields.

``python -m virtualfocus.training.randomdata --images DIR --out DIR --stacks N --seed S [--sim N]``
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from virtualfocus.edge.errors import InputError
from virtualfocus.simulation.optics import Camera, Optics
from virtualfocus.simulation.semisynthetic import semisynthetic_stack
from virtualfocus.simulation.simulate import SimConfig, simulate_stack
from virtualfocus.zstacks.stack import ZStack, write_stack

__all__ = ["degrade_planes", "main", "random_stack", "sample_config"]

log = logging.getLogger("virtualfocus.training")
_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def sample_config(rng: np.random.Generator, *, size: int = 256) -> tuple[SimConfig, dict[str, Any]]:
    """One randomized microscope and stack geometry; returns the config and what else to apply after capture.

    The focus step is drawn so that the outermost of the 17 planes has a geometric blur radius
    ``z · NA / √(n² − NA²)`` between about 4 and 32 pixels.
    """
    na = float(rng.uniform(0.75, 1.4))
    immersion = 1.515 if na > 0.9 else 1.0
    pixel_um = _log_uniform(rng, 0.06, 0.3)
    sigma = float(rng.uniform(0.3, 0.95))
    optics = Optics(
        na=na,
        condenser_na=min(sigma * na, immersion - 1e-3),
        immersion_index=immersion,
        spherical_waves=float(rng.choice([-1.0, 1.0]) * rng.uniform(0.0, 0.08)),
        focal_shift_positive=float(rng.uniform(0.75, 1.0)),
        chromatic_shift_um=(float(rng.uniform(0.0, 0.12)), 0.0, float(-rng.uniform(0.0, 0.12))),
        pixel_um=pixel_um,
    )
    slope = na / math.sqrt(immersion**2 - min(na, immersion - 0.05) ** 2)
    blur_px = _log_uniform(rng, 4.0, 32.0)  # geometric blur radius at the outermost plane
    half_range = blur_px * pixel_um / slope
    step = round(max(half_range / 8.0, 0.02), 4)
    bit_depth = int(rng.choice([8, 8, 12, 16]))
    camera = Camera(full_well_e=_log_uniform(rng, 4e3, 1e6), read_noise_e=float(rng.uniform(1.0, 10.0)),
                    bit_depth=bit_depth)
    cfg = SimConfig(size=size, z_step_um=step, z_half_range_um=step * 8, optics=optics, camera=camera,
                    focus_jitter_um=0.25 * step, flicker=float(rng.uniform(0.0, 0.02)),
                    vignetting=float(rng.uniform(0.0, 0.25)), stain_variation=float(rng.uniform(0.5, 1.5)))
    post = {
        "gray": bool(rng.random() < 0.25),
        "jpeg_quality": int(rng.integers(70, 96)) if rng.random() < 0.3 else None,
        "illumination_tilt": float(rng.uniform(0.0, 0.15)),
        "blur_px_outermost": blur_px,
    }
    return cfg, post


def degrade_planes(planes: np.ndarray, post: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """Camera-side effects applied to every plane alike: uneven illumination, gray sensor, JPEG compression.

    ``planes`` is ``(Z, H, W, 3)`` uint8/uint16; the result has the same shape and dtype (gray stays 3 equal
    channels, as the runtime feeds a gray capture).
    """
    h, w = planes.shape[1:3]
    top = 255.0 if planes.dtype == np.uint8 else 65535.0
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    ramp = 1.0 + post["illumination_tilt"] * (np.cos(ang) * (xx / w - 0.5) + np.sin(ang) * (yy / h - 0.5))
    out = planes.astype(np.float32) * ramp[None, :, :, None]
    if post["gray"]:
        g = out @ np.array([0.299, 0.587, 0.114], np.float32)
        out = np.repeat(g[..., None], 3, axis=-1)
    out = np.clip(np.rint(out), 0, top).astype(planes.dtype)
    q = post["jpeg_quality"]
    if q is not None:  # JPEG is 8-bit: compressed stacks are 8-bit stacks
        if out.dtype != np.uint8:
            out = (out.astype(np.float32) * (255.0 / 65535.0)).round().astype(np.uint8)
        enc = [cv2.imdecode(cv2.imencode(".jpg", p[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, q])[1], cv2.IMREAD_COLOR)
               for p in out]
        out = np.stack([e[..., ::-1] for e in enc])
    return np.ascontiguousarray(out)


def random_stack(seed: int, image: np.ndarray | None, *, size: int = 256, source_pixel_um: float = 0.1,
                 name: str, source: str = "") -> ZStack:
    """One stack with a freshly drawn microscope: semi-synthetic from ``image``, or simulated when None."""
    rng = np.random.default_rng([int(seed), 7])
    cfg, post = sample_config(rng, size=size)
    if image is not None:
        # Upsampling a real field would make its "sharp" texture soft: never go finer than the source; nor so
        # coarse that the field no longer holds the stack (the renderer needs a margin of 48 px).
        coarsest = source_pixel_um * min(image.shape[:2]) / (size + 56)
        px = float(np.clip(cfg.optics.pixel_um, source_pixel_um, max(source_pixel_um, coarsest)))
        if px != cfg.optics.pixel_um:
            cfg = dataclasses.replace(cfg, optics=dataclasses.replace(cfg.optics, pixel_um=px))
        st = semisynthetic_stack(image, seed, config=cfg, source_pixel_um=source_pixel_um, name=name, source=source)
    else:
        st = simulate_stack(seed, config=cfg, name=name)
    planes = degrade_planes(st.planes, post, rng)
    meta = dict(st.meta)
    meta["randomization"] = {"optics": cfg.optics.to_dict(), "camera": cfg.camera.to_dict(),
                             "z_step_um": cfg.z_step_um, **post}
    return dataclasses.replace(st, planes=planes, meta=meta)


def _read_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"{path}: unreadable image; expected PNG/JPEG/TIFF/BMP")
    return img[..., ::-1]


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m virtualfocus.training.randomdata", description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=Path, default=None, help="folder of real in-focus smear images")
    ap.add_argument("--source-pixel-um", type=float, default=0.1, help="pixel size of --images in µm")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--stacks", type=int, default=0, help="semi-synthetic stacks (one per image, cycling)")
    ap.add_argument("--sim", type=int, default=0, help="simulated stacks")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    files: list[Path] = []
    if args.stacks:
        if args.images is None or not args.images.is_dir():
            raise InputError(f"--images {args.images}: not a folder of images")
        files = sorted(f for f in args.images.iterdir() if f.suffix.lower() in _SUFFIXES)
        if not files:
            raise InputError(f"--images {args.images}: no images ({', '.join(_SUFFIXES)})")
    t0, done, skipped = time.perf_counter(), 0, 0
    for k in range(args.stacks + args.sim):
        seed = args.seed + k
        try:
            if k < args.stacks:
                f = files[k % len(files)]
                st = random_stack(seed, _read_rgb(f), size=args.size, source_pixel_um=args.source_pixel_um,
                                  name=f"rand-{f.stem}-{seed}", source=str(f))
            else:
                st = random_stack(seed, None, size=args.size, name=f"rand-sim-{seed}")
        except InputError as e:
            log.warning("skipping stack %d: %s", seed, e)
            skipped += 1
            continue
        write_stack(args.out / st.name, st)
        done += 1
        if done % 50 == 0:
            print(f"{done} stacks, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    print(f"wrote {done} stacks to {args.out} ({skipped} skipped) in {time.perf_counter() - t0:.0f} s")
    return 0 if done else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
