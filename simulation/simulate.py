"""Physically based blood-smear z-stack simulator (numpy + OpenCV, seeded, fast).

A :class:`SmearField` (:mod:`.field`) is a periodic canvas of thin absorbing layers at known depths: red cells
(Evans–Fung biconcave discs with central pallor, overlapping), one white cell near the centre (neutrophil,
lymphocyte, monocyte, eosinophil or basophil; lobed/round nuclei with chromatin texture and granular cytoplasm)
sitting higher than the red cells, and platelets, in May-Grünwald-Giemsa-like colours with per-field stain
variation (the cells in :mod:`.cells`, placed by :func:`make_field` in :mod:`.specimen`, configured by
:class:`SimConfig` in :mod:`.config`). Captures at any focus offset are rendered with the layered pupil-function
optics of :mod:`.optics` plus camera noise. This module assembles stacks from fields and runs the
``virtualfocus simulate`` command; the names above are importable from here too.

:func:`simulate_stack` makes one labelled :class:`~virtualfocus.zstacks.stack.ZStack` (17 planes at 0.2 µm over
−1.6 … +1.6 µm by default, ground truth = highest focus measure, re-centred to 0 µm). ``virtualfocus simulate``
writes many of them in parallel (``--workers``, one process per core; ≥ 20 stacks/s of 401×401×17 on 2 cores, see
``benchmarks/simulator.py``). A stack depends only on its seed and config, never on the number of workers.

Example
-------
>>> stack = simulate_stack(0)
>>> stack.planes.shape, stack.sharp_index
((17, 401, 401, 3), 8)
>>> field = make_field(np.random.default_rng(1))          # for a simulated microscope
>>> img = field.render(0.35, rng=np.random.default_rng(2))   # one noisy capture 0.35 µm from focus
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from virtualfocus.edge.errors import InputError
from virtualfocus.zstacks.stack import ZStack

from .camera import quantize
from .config import WBC_TYPES, SimConfig
from .field import SmearField, render_field
from .optics import Camera, motion_otf
from .specimen import focus_frame, make_field

__all__ = [
    "WBC_TYPES",
    "SimConfig",
    "SmearField",
    "capture_stack",
    "focus_frame",
    "main",
    "make_field",
    "render_field",
    "simulate_stack",
]

# 2: 401-px fields on a 416-px canvas (was 405), real OTFs, new camera-noise stream (same model)
# 3: partially coherent optics (weak-object transfer functions), phase layers, debris
GENERATOR_VERSION = 3


# ---------------------------------------------------------------------------------------------------- stacks
def _focus_measure_green(planes: np.ndarray) -> np.ndarray:
    from virtualfocus.edge.metrics import focus_measure

    return np.array([focus_measure(p) for p in planes])


def _sharpest_plane(planes: np.ndarray) -> int:
    """``metrics.ground_truth_index(planes)`` — the plane with the highest thesis focus measure — faster.

    Scores every plane's green channel with the same filter responses as :func:`.metrics.focus_measure`, summing
    the squares in double precision with OpenCV (no float64 copies); planes within 1e-6 of the best are then
    re-scored exactly, so near-ties resolve exactly as :func:`.metrics.ground_truth_index` does.
    """
    from virtualfocus.edge.metrics import _responses, focus_measure, to_255

    scores = []
    for p in planes:
        if p.dtype == np.uint8:
            # ω = [−1 0 0 0 0 0 2 0 0 0 0 0 −1] on the valid region, in exact integer arithmetic: the same
            # responses as the float32 filters, without the zero taps
            g = p[..., 1].astype(np.int16)
            c = g[6:-6, 6:-6]
            gx = 2 * c - g[6:-6, :-12] - g[6:-6, 12:]
            gy = 2 * c - g[:-12, 6:-6] - g[12:, 6:-6]
        else:
            gx, gy = _responses(to_255(p[..., 1]))
        scores.append((cv2.norm(gx, cv2.NORM_L2SQR) + cv2.norm(gy, cv2.NORM_L2SQR)) / gx.size)
    best = max(scores)
    near = [i for i, v in enumerate(scores) if v >= best * (1.0 - 1e-6)]
    if len(near) == 1:
        return near[0]
    exact = [focus_measure(planes[i]) for i in near]
    return near[int(np.argmax(exact))]


def capture_stack(
    fld: SmearField, rng: np.random.Generator, cfg: SimConfig
) -> tuple[np.ndarray, np.ndarray, int, dict[str, Any]]:
    """Capture a focus series of ``fld`` as configured (motion blur, flicker, noise, re-centring).

    Returns
    -------
    planes, offsets_um, sharp_index, meta
        Offsets are relative to the plane with the highest focus measure; ``meta`` has ``motion`` and
        ``focus_shift_um``.
    """
    offsets = cfg.offsets_um
    centre = len(offsets) // 2
    motion = None
    motion_meta: dict[str, float] | None = None
    if cfg.motion_probability > 0 and rng.random() < cfg.motion_probability:
        length = float(rng.uniform(*cfg.motion_length_px))
        angle = float(rng.uniform(0, 180))
        motion = motion_otf(length, angle, fld.canvas_shape)
        motion_meta = {"length_px": round(length, 3), "angle_deg": round(angle, 3)}

    noise_rng = np.random.default_rng(rng.integers(2**63))
    flicker = (1.0 + cfg.flicker * rng.standard_normal(len(offsets))).astype(np.float32)
    flicker[centre] = 1.0

    # the ground-truth plane stays free of motion blur (a clean training target)
    motion_planes = np.arange(len(offsets)) != centre

    def capture(shift: float) -> np.ndarray:
        if cfg.noise:
            return fld.captures(
                offsets + shift,
                rng=noise_rng,
                camera=cfg.camera,
                exposure=flicker,
                motion=motion,
                motion_planes=motion_planes,
            )
        inten = fld.intensity(offsets + shift, motion=motion, exposure=flicker)
        if motion is not None:
            inten[centre] = fld.intensity([offsets[centre] + shift], exposure=flicker[centre : centre + 1])[0]
        return quantize(inten, cfg.camera)

    # ground truth = highest focus measure; if it is not the centre plane, move the focus once and re-render so
    # the stack stays symmetric around its ground truth (as the thesis re-centred real stacks)
    shift = 0.0
    planes = capture(shift)
    sharp = _sharpest_plane(planes)
    if sharp != centre:
        shift = float(offsets[sharp])
        planes = capture(shift)
        sharp = _sharpest_plane(planes)
    offsets_rel = offsets - offsets[sharp]
    return planes, np.round(offsets_rel, 6), sharp, {"focus_shift_um": round(shift, 4), "motion": motion_meta}


def simulate_stack(seed: int, *, config: SimConfig | None = None, name: str | None = None) -> ZStack:
    """Simulate one labelled z-stack.

    Parameters
    ----------
    seed : int
        Everything (field, stain, noise, blur) is drawn from ``np.random.default_rng(seed)``; the same seed and
        config always give the same stack.
    config : SimConfig, optional
    name : str, optional
        Stack name; default ``sim-<seed>``.

    Returns
    -------
    ZStack
        Planes ``(Z, H, W, 3)`` (uint8, or uint16 for 12/16-bit cameras), offsets in µm re-centred so that the
        plane with the highest focus measure is at 0 (``sharp_index``), and ``meta`` with ``seed``, ``optics``,
        ``camera``, ``nucleus_centres`` ``[[y, x], ...]``, ``wbc_type``, ``motion`` and (if enabled)
        ``focus_map_tiles_um``.
    """
    cfg = config or SimConfig()
    rng = np.random.default_rng(int(seed))
    fld = make_field(rng, cfg)
    planes, offsets_rel, sharp, extra = capture_stack(fld, rng, cfg)
    meta: dict[str, Any] = {
        "source": "simulated",
        "generator_version": GENERATOR_VERSION,
        "seed": int(seed),
        "optics": cfg.optics.to_dict(),
        "camera": cfg.camera.to_dict(),
        "camera_bit_depth": cfg.camera.bit_depth,
        "pixel_um": cfg.optics.pixel_um,
        "nucleus_centres": fld.nucleus_centres,
        **extra,
        **fld.info,
    }
    return ZStack(planes, np.round(offsets_rel, 6), sharp, name=name or f"sim-{int(seed):06d}", meta=meta)


# ------------------------------------------------------------------------------------------------------- CLI
def _init_worker() -> None:
    """Per-process setup for a pool of simulators: one process per core, so OpenCV runs single-threaded, and
    large arrays are recycled (:func:`_keep_freed_memory`).

    Results never depend on it (every stack's random streams come from its own seed).
    """
    cv2.setNumThreads(1)
    _keep_freed_memory()


def _keep_freed_memory() -> None:
    """glibc: serve large arrays from the heap and keep freed memory for the next stack.

    By default every multi-megabyte array is a fresh mapping that the kernel must fault in and zero: about 8 % of
    a stack's CPU time. A simulator process reuses the same sizes stack after stack, so it keeps them instead
    (its memory stays at its peak). No effect elsewhere (other C libraries, other systems).
    """
    if not sys.platform.startswith("linux"):  # pragma: no cover
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 256 << 20)  # M_MMAP_THRESHOLD: mmap only above 256 MB
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: give memory back only above 1 GB free
    except (OSError, AttributeError):  # not glibc
        pass


def _main_importable() -> bool:
    """Whether ``spawn``/``forkserver`` workers can re-import ``__main__`` (not so for a script read from stdin)."""
    main = sys.modules.get("__main__")
    if main is None or getattr(main, "__spec__", None) is not None:
        return True
    path = getattr(main, "__file__", None)
    return path is None or Path(path).is_file()


def _pool(workers: int) -> Any:
    """A process pool of simulators, each OpenCV single-threaded (:func:`_init_worker`).

    Workers are started from a fresh server process (``forkserver``; ``spawn`` off Linux), never forked from the
    caller: a child forked after OpenCV has started its thread pool deadlocks in OpenCV.
    """
    import multiprocessing as mp

    if sys.platform.startswith("linux"):
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload([__name__])  # import numpy/OpenCV/this module once, in the server
    else:  # pragma: no cover
        ctx = mp.get_context("spawn")
    return ctx.Pool(workers, initializer=_init_worker)


def _worker(args: tuple[int, int, str, SimConfig, bool]) -> tuple[str, float]:
    from virtualfocus.zstacks.stack import write_stack

    from .randomize import random_stack

    index, seed, out, cfg, randomize = args
    t0 = time.perf_counter()
    if randomize:  # a new microscope, camera and stain per stack
        stack = dataclasses.replace(random_stack(seed, size=cfg.size), name=f"rand-{index:06d}")
    else:
        stack = simulate_stack(seed, config=cfg, name=f"sim-{index:06d}")
    write_stack(Path(out) / stack.name, stack)
    return stack.name, time.perf_counter() - t0


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="virtualfocus simulate",
        description="Write simulated blood-smear z-stacks (multi-page TIFF + JSON sidecar) for training and tests.",
    )
    ap.add_argument("--out", required=True, help="output folder (created)")
    ap.add_argument("--stacks", type=int, required=True, help="number of stacks to write")
    ap.add_argument("--seed", type=int, default=0, help="base seed; stack i uses seed S+i (default 0)")
    ap.add_argument("--size", type=int, default=401, help="field size in pixels (default 401)")
    ap.add_argument(
        "--bit-depth", type=int, default=8, choices=(8, 12, 16), help="camera bit depth (default 8)"
    )
    ap.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    ap.add_argument(
        "--motion", type=float, default=0.0, help="probability of motion blur per stack (default 0)"
    )
    ap.add_argument("--focus-map", type=float, default=0.0, help="per-pixel focus variation, µm peak-to-peak")
    ap.add_argument("--start", type=int, default=0, help="first stack index (to extend a folder; default 0)")
    ap.add_argument(
        "--randomize",
        action="store_true",
        help="draw objective, pixel size, condenser, aberrations, specimen, stain and camera per stack "
        "(virtualfocus.simulation.randomize; --bit-depth/--motion/--focus-map are then ignored)",
    )
    return ap


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``virtualfocus simulate``."""
    args = _parser().parse_args(argv)
    if args.stacks < 1:
        raise InputError(f"--stacks {args.stacks}; expected at least 1")
    if args.workers < 1:
        raise InputError(f"--workers {args.workers}; expected at least 1")
    cfg = SimConfig(
        size=args.size,
        camera=Camera(bit_depth=args.bit_depth),
        motion_probability=args.motion,
        focus_map_um=args.focus_map,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [
        (i, args.seed + i, str(out), cfg, bool(args.randomize))
        for i in range(args.start, args.start + args.stacks)
    ]
    t0 = time.perf_counter()
    done = 0
    workers = args.workers
    if workers > 1 and not _main_importable():
        print(
            "note: worker processes could not re-import the main program (run from stdin?); "
            "simulating in this process",
            file=sys.stderr,
        )
        workers = 1
    if workers == 1:
        results = map(_worker, jobs)
        for _ in results:
            done += 1
    else:
        with _pool(workers) as pool:
            for _ in pool.imap_unordered(_worker, jobs, chunksize=4):
                done += 1
    dt = time.perf_counter() - t0
    print(
        f"wrote {done} stacks to {out} in {dt:.1f} s ({done / max(dt, 1e-9):.1f} stacks/s, {workers} workers)"
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
