"""Soak test of the capture-triggered path: N frames through ``FocusRuntime.submit``, nothing may be lost.

    python benchmarks/soak.py [--frames 20000] [--size 360] [--model NAME] [--rate HZ] [--json PATH]

Frames (simulated defocused smear captures, cycled) are submitted as an acquisition would submit them — at a
fixed rate (default: as fast as the runtime keeps up, i.e. waiting for the previous frame only when the queue is
full) — and every future is collected. Reported: latency percentiles per tenth of the run (to see drift over
time), p99.9 / p50 jitter, resident memory (RSS) after warm-up and at the end, and the count of lost, failed,
late and overflowed frames. Exit code 1 if any frame was lost or RSS grew more than 5% after warm-up.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np


def rss_mb() -> float:
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:  # Linux fallback without psutil
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * 4096 / 2**20


def frames_for(size: int, n: int = 8) -> list[np.ndarray]:
    from virtualfocus.simulation.simulate import simulate_stack

    st = simulate_stack(11)
    idx = np.linspace(0, len(st) - 1, n).astype(int)
    out = []
    for i in idx:
        p = st.planes[i]
        if p.dtype != np.uint8:
            p = (p / 257).astype(np.uint8)
        out.append(np.ascontiguousarray(p[:size, :size]))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=20_000)
    ap.add_argument("--size", type=int, default=360)
    ap.add_argument("--model", default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--rate", type=float, default=0.0, help="submission rate in frames/s (0: keep the queue fed)")
    ap.add_argument("--warmup", type=int, default=500, help="frames before the RSS baseline is taken")
    ap.add_argument("--json", dest="json_path", default=None)
    args = ap.parse_args(argv)

    from virtualfocus.edge import FocusRuntime, FrameStatus

    rt = FocusRuntime.load(args.model, threads=args.threads, budget_ms=70.0, queue_size=4, deadline_ms=1000.0)
    print(f"model: {rt.load_report}")
    pool = frames_for(args.size)
    n = args.frames
    lat = np.zeros(n, np.float32)
    statuses: Counter[str] = Counter()
    received = 0
    rss_start = rss_end = 0.0
    pending = []
    period = 1.0 / args.rate if args.rate > 0 else 0.0
    t_start = time.perf_counter()
    next_t = t_start

    def collect(block: bool) -> None:
        nonlocal received
        while pending and (block or pending[0].done()):
            fr = pending.pop(0).result()
            lat[fr.meta["i"]] = fr.latency_ms if fr.status is FrameStatus.RESTORED else np.nan
            statuses[fr.status.value] += 1
            received += 1

    for i in range(n):
        if period:
            now = time.perf_counter()
            if now < next_t:
                time.sleep(next_t - now)
            next_t += period
        elif len(pending) >= 4:
            pending[0].result()  # keep the queue fed without overflowing it
        fut = rt.submit(pool[i % len(pool)], meta={"i": i})
        pending.append(fut)
        collect(block=False)
        if i == args.warmup:
            gc.collect()
            rss_start = rss_mb()
    collect(block=True)
    rt.close()
    gc.collect()
    rss_end = rss_mb()
    wall = time.perf_counter() - t_start

    ok = lat[~np.isnan(lat)]
    lost = n - received
    growth = (rss_end - rss_start) / rss_start * 100 if rss_start else float("nan")
    p50, p99, p999 = (float(np.percentile(ok, q)) for q in (50, 99, 99.9)) if ok.size else (float("nan"),) * 3
    print(f"\n{n} frames of {args.size}×{args.size} in {wall:.1f} s ({n / wall:.0f} frames/s) with {rt.ladder[0]}")
    print(f"statuses: {dict(statuses)}; lost: {lost}")
    print(f"latency (restored frames): p50 {p50:.2f} ms, p99 {p99:.2f} ms, p99.9 {p999:.2f} ms, "
          f"p99.9/p50 = {p999 / p50:.2f}")
    print(f"RSS after {args.warmup} warm-up frames {rss_start:.1f} MB → end {rss_end:.1f} MB ({growth:+.2f}%)")
    print("\nlatency over time (per tenth of the run, restored frames):")
    print(f"{'frames':>15} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8}")
    per = max(1, n // 10)
    rows = []
    for k in range(0, n, per):
        seg = lat[k : k + per]
        seg = seg[~np.isnan(seg)]
        if not seg.size:
            continue
        r = {"from": k, "to": min(n, k + per), "p50": float(np.percentile(seg, 50)),
             "p95": float(np.percentile(seg, 95)), "p99": float(np.percentile(seg, 99)), "max": float(seg.max())}
        rows.append(r)
        print(f"{r['from']:>7}-{r['to']:<7} {r['p50']:>8.2f} {r['p95']:>8.2f} {r['p99']:>8.2f} {r['max']:>8.2f}")
    passed = lost == 0 and (growth <= 5.0 or not np.isfinite(growth))
    result = {"frames": n, "size": args.size, "variant": rt.ladder[0], "wall_s": wall, "statuses": dict(statuses),
              "lost": lost, "p50_ms": p50, "p99_ms": p99, "p999_ms": p999, "rss_start_mb": rss_start,
              "rss_end_mb": rss_end, "rss_growth_pct": growth, "over_time": rows, "passed": passed}
    if args.json_path:
        from virtualfocus.edge.manifest import write_json_atomic

        Path(args.json_path).parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(args.json_path, result)
    print(f"\nsoak: {'PASSED' if passed else 'FAILED'} (0 lost required, RSS growth ≤ 5%)")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
