"""Simulator throughput: stacks/s of 401×401×17 RGB on N processes, where one stack's time goes, and the cost of
randomized imaging chains.

Usage::

    python benchmarks/simulator.py [--stacks 40] [--workers 2] [--size 401] [--json PATH]

Prints the steady-state rate (each worker warms its transfer-function cache first, as a long
`virtualfocus simulate` run does; workers run OpenCV single-threaded, one process per core, as the CLI does), the
CPU time per stack (and the rate it implies on idle cores: the figure to read when other jobs load the machine)
and a per-stage breakdown measured in one process. The optics are partially coherent (weak-object transfer
functions for absorption and phase, :mod:`virtualfocus.simulation.wotf`). Then, single process: CPU time of a
randomized stack (:func:`~virtualfocus.simulation.randomize.random_stack`: a new objective, camera and stain per
stack, so nothing is cached) and per plane of the semi-synthetic path
(:func:`~virtualfocus.simulation.randomize.defocus_image` on a 256×256 image, 17 planes per drawn chain).
``--json`` also writes the figures to a file. Target: ≥ 8 stacks/s on 2 cores (default optics). Stacks are
deterministic by seed, whatever the number of workers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from virtualfocus.simulation.optics import add_camera_noise
from virtualfocus.simulation.simulate import (
    SimConfig,
    _init_worker,
    _pool,
    _sharpest_plane,
    make_field,
    simulate_stack,
)

TARGET = 8.0


def _warm_then_run(args: tuple[int, int, int]) -> tuple[int, float, float]:
    """Stacks done, wall seconds and CPU seconds of one worker's steady-state run."""
    first, count, size = args
    cfg = SimConfig(size=size)
    for i in range(3):  # warm the per-process OTF cache
        simulate_stack(10_000_000 + first + i, config=cfg)
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(count):
        simulate_stack(first + i, config=cfg)
    return count, time.perf_counter() - t0, time.process_time() - c0


def breakdown(size: int, n: int = 8) -> dict[str, float]:
    """Median CPU milliseconds per stage of one stack, single process (OpenCV single-threaded), warm cache.

    CPU time rather than wall time, so a busy machine skews the split less.
    """
    _init_worker()
    cfg = SimConfig(size=size)
    for i in range(3):
        simulate_stack(20_000_000 + i, config=cfg)
    times: dict[str, list[float]] = {
        "field": [],  # make_field: cells, layers, focus search
        "layer fft": [],  # forward transforms of the layers (pass band)
        "render+noise": [],  # fused: transfer functions, inverse transforms, intensity, camera noise
        "focus measure": [],  # ground-truth plane (highest focus measure)
        "total": [],  # simulate_stack, another seed
        "fft+render": [],  # unfused, for reference: intensity stack (float32) of a fresh field ...
        "noise": [],  # ... and add_camera_noise on it
    }
    for i in range(n):
        rng = np.random.default_rng(i)
        t0 = time.process_time()
        fld = make_field(rng, cfg)
        t1 = time.process_time()
        fld.bands  # noqa: B018 - computes and caches the layers' spectra
        t2 = time.process_time()
        planes = fld.captures(cfg.offsets_um, rng=rng, camera=cfg.camera)
        t3 = time.process_time()
        _sharpest_plane(planes)
        t4 = time.process_time()
        simulate_stack(i, config=cfg)
        t5 = time.process_time()
        fresh = make_field(np.random.default_rng(1000 + i), cfg)
        t6 = time.process_time()
        inten = fresh.intensity(cfg.offsets_um)
        t7 = time.process_time()
        add_camera_noise(inten, cfg.camera, rng)
        t8 = time.process_time()
        stages = (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t7 - t6, t8 - t7)
        for k, v in zip(times, stages, strict=True):
            times[k].append(v * 1e3)
    return {k: round(float(np.median(v)), 2) for k, v in times.items()}


def randomized(n: int = 4) -> dict[str, float]:
    """Median CPU ms of a randomized 401×401×17 stack and per plane of ``defocus_image`` at 256×256."""
    from virtualfocus.simulation.randomize import defocus_image, random_stack, sample_optics

    _init_worker()
    stack_ms, plane_ms = [], []
    image = make_field(np.random.default_rng(99), SimConfig(size=256)).render(0.0, noise=False)
    for i in range(n):
        t0 = time.process_time()
        random_stack(30_000_000 + i)
        t1 = time.process_time()
        rng = np.random.default_rng(i)
        sample = sample_optics(rng)
        t2 = time.process_time()
        defocus_image(image, sample, sample.offsets_um, rng=rng)
        t3 = time.process_time()
        stack_ms.append((t1 - t0) * 1e3)
        plane_ms.append((t3 - t2) * 1e3 / len(sample.offsets_um))
    return {
        "random_stack_401_ms": round(float(np.median(stack_ms)), 1),
        "semisynthetic_plane_256_ms": round(float(np.median(plane_ms)), 1),
    }


def _busy_note() -> str | None:
    """Other CPU-heavy work on the machine skews the figures: say so (load average before the run)."""
    try:
        load = os.getloadavg()[0]
    except OSError:  # pragma: no cover - not on every platform
        return None
    cpus = os.cpu_count() or 1
    return f"load average {load:.2f} on {cpus} CPUs before the run" if load > 0.5 else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stacks", type=int, default=40, help="stacks per measurement (default 40)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--size", type=int, default=401)
    ap.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the figures as JSON")
    args = ap.parse_args()

    busy = _busy_note()
    per = max(1, args.stacks // args.workers)
    jobs = [(w * per, per, args.size) for w in range(args.workers)]
    t0 = time.perf_counter()
    with _pool(args.workers) as pool:
        results = pool.map(_warm_then_run, jobs)
    wall = time.perf_counter() - t0
    done = sum(c for c, _, _ in results)
    steady = sum(c / t for c, t, _ in results)
    # CPU time per stack hardly depends on other load: workers / it is the rate the same workers reach on as many
    # idle cores (what to compare with the target when the machine is busy)
    cpu_ms = 1e3 * sum(cpu for _, _, cpu in results) / done
    cpu_rate = min(args.workers, os.cpu_count() or 1) / (cpu_ms / 1e3)
    planes = len(SimConfig(size=args.size).offsets_um)
    print(f"simulator: {args.size}x{args.size}x{planes} RGB, {args.workers} workers, {done} stacks")
    print(f"  steady-state rate : {steady:.1f} stacks/s  (target >= {TARGET:g})")
    print(f"  wall incl. warm-up: {wall:.1f} s")
    print(f"  CPU time per stack: {cpu_ms:.1f} ms  (=> {cpu_rate:.1f} stacks/s on {args.workers} idle cores)")
    if busy:
        print(f"  note: machine busy ({busy}); figures are pessimistic")
    b = breakdown(args.size)
    print("  one stack, one process, warm cache (median CPU ms):")
    for k, v in b.items():
        if k == "fft+render":
            print("  unfused, for reference (intensity stack, then add_camera_noise):")
        print(f"    {k:<14s} {v:7.1f}")
    rnd = randomized()
    print("  randomized imaging chains, one process (median CPU ms, nothing cached between chains):")
    print(f"    random_stack 401x401x17     {rnd['random_stack_401_ms']:7.1f}")
    print(f"    defocus_image per 256 plane {rnd['semisynthetic_plane_256_ms']:7.1f}")
    if args.json is not None:
        record: dict[str, Any] = {
            "benchmark": "simulator",
            "size": args.size,
            "planes": planes,
            "workers": args.workers,
            "stacks": done,
            "stacks_per_s": round(steady, 2),
            "target_stacks_per_s": TARGET,
            "meets_target": steady >= TARGET,
            "wall_incl_warmup_s": round(wall, 2),
            "cpu_ms_per_stack": round(cpu_ms, 2),
            "cpu_bound_stacks_per_s": round(cpu_rate, 2),
            "stage_ms": b,
            "randomized_ms": rnd,
            "busy": busy,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "opencv": cv2.__version__,
            "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=2) + "\n")
        print(f"  wrote {args.json}")


if __name__ == "__main__":
    main()
