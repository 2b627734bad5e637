"""Simulator throughput: stacks/s of 401×401×17 RGB on N processes, and where one stack's time goes.

Usage::

    python benchmarks/simulator.py [--stacks 40] [--workers 2] [--size 401]

Prints the steady-state rate (each worker warms its transfer-function cache first, as a long
`virtualfocus simulate` run does) and a per-stage breakdown measured in one process. Target: ≥ 20 stacks/s on
2 cores.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time

import numpy as np
from virtualfocus.edge.optics import add_camera_noise
from virtualfocus.edge.simulate import SimConfig, _focus_measure_green, make_field, simulate_stack


def _warm_then_run(args: tuple[int, int, int]) -> tuple[int, float]:
    first, count, size = args
    cfg = SimConfig(size=size)
    for i in range(3):  # warm the per-process OTF cache
        simulate_stack(10_000_000 + first + i, config=cfg)
    t0 = time.perf_counter()
    for i in range(count):
        simulate_stack(first + i, config=cfg)
    return count, time.perf_counter() - t0


def breakdown(size: int, n: int = 6) -> dict[str, float]:
    """Median milliseconds per stage of one stack, single process, warm cache."""
    cfg = SimConfig(size=size)
    for i in range(3):
        simulate_stack(20_000_000 + i, config=cfg)
    times: dict[str, list[float]] = {
        "field": [],
        "fft+render": [],
        "noise": [],
        "focus measure": [],
        "total": [],
    }
    for i in range(n):
        rng = np.random.default_rng(i)
        t0 = time.perf_counter()
        fld = make_field(rng, cfg)
        t1 = time.perf_counter()
        inten = fld.intensity(cfg.offsets_um)
        t2 = time.perf_counter()
        planes = add_camera_noise(inten, cfg.camera, rng)
        t3 = time.perf_counter()
        _focus_measure_green(planes)
        t4 = time.perf_counter()
        simulate_stack(i, config=cfg)
        t5 = time.perf_counter()
        for k, v in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
            times[k].append(v * 1e3)
    return {k: float(np.median(v)) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stacks", type=int, default=40, help="stacks per measurement (default 40)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--size", type=int, default=401)
    args = ap.parse_args()

    per = max(1, args.stacks // args.workers)
    jobs = [(w * per, per, args.size) for w in range(args.workers)]
    t0 = time.perf_counter()
    with mp.get_context("fork").Pool(args.workers) as pool:
        results = pool.map(_warm_then_run, jobs)
    wall = time.perf_counter() - t0
    done = sum(c for c, _ in results)
    steady = sum(c / t for c, t in results)
    print(f"simulator: {args.size}x{args.size}x17 RGB, {args.workers} workers, {done} stacks")
    print(f"  steady-state rate : {steady:.1f} stacks/s  (target >= 20)")
    print(f"  wall incl. warm-up: {wall:.1f} s")
    b = breakdown(args.size)
    print("  one stack, one process, warm cache (median ms):")
    for k, v in b.items():
        print(f"    {k:<14s} {v:7.1f}")


if __name__ == "__main__":
    main()
