"""Batch restoration throughput: a folder through ``virtualfocus restore`` vs ``FocusRuntime.restore`` in a loop.

Writes N captures (default 200, 360×360 RGB PNG, simulated defocused smear planes) to a temporary folder, then in
one run:

1. ``loop``: the images already decoded in memory, ``rt.restore(img)`` one after another (inference alone, no I/O);
2. ``batch``: ``restore_batch`` on the folder: decode, restore, encode and write every file (what the CLI runs).

Prints images/s for both and their ratio (target ≥ 0.9: reading and writing hidden behind inference), and writes
``benchmarks/results/batch_throughput.json``. Both use the same runtime and model; the ratio is what to compare
across machines.

    python benchmarks/batch_throughput.py [--n 200] [--model vf-quality]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from virtualfocus.edge import FocusRuntime
from virtualfocus.edge.batch import discover, restore_batch
from virtualfocus.edge.imageio import read_image, write_image_atomic
from virtualfocus.evaluation.machine import cpu_name
from virtualfocus.simulation.simulate import SimConfig, simulate_stack


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--model", default=None)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/batch_throughput.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in", Path(tmp) / "out"
        src.mkdir()
        planes = []
        for seed in range((args.n + 16) // 17):
            planes += list(simulate_stack(seed, config=SimConfig(size=360)).planes)
        for i in range(args.n):
            write_image_atomic(src / f"cap{i:04d}.png", planes[i])
        rt = FocusRuntime.load(args.model, budget_ms=1e9, ladder=False)
        try:
            imgs = [read_image(p) for p in sorted(src.iterdir())]
            rt.restore(imgs[0])
            t0 = time.perf_counter()
            for img in imgs:
                rt.restore(img)
            loop_s = time.perf_counter() - t0
            summary = restore_batch(rt, discover([str(src)], dst), progress=False)
        finally:
            rt.close()
    loop_ips, batch_ips = args.n / loop_s, summary.planes / summary.wall_s
    row = {"images": args.n, "size": 360, "model": args.model or "default", "cpu": cpu_name(),
           "loop_images_per_s": round(loop_ips, 2), "batch_images_per_s": round(batch_ips, 2),
           "ratio": round(batch_ips / loop_ips, 3), "batch_failed": summary.files_failed}
    print(f"restore() loop: {loop_ips:.1f} images/s; virtualfocus restore on a folder: {batch_ips:.1f} images/s; "
          f"ratio {row['ratio']:.2f} (target ≥ 0.9) on {row['cpu']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(row, indent=2) + "\n")
    return 0 if summary.files_failed == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
