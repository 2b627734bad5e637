"""Realism of the randomized simulator, measured against real through-focus stacks.

Usage::

    python benchmarks/realism.py [--real DIR ...] [--n 40] [--size 256] [--out benchmarks/results]

For every real stack (a folder of plane images in focus order, a multi-page TIFF, or the project's stack format;
default: ``../shared/data/real-focus-stacks/urjc-s1`` when present) and for ``--n`` randomized simulated stacks
(:func:`virtualfocus.simulation.randomize.random_stack`, seeds 0…n−1) it computes, for the planes ``k`` steps
either side of the sharpest (:mod:`virtualfocus.simulation.realism`):

* ``x`` — mean relative focus measure of the pair (blur), ``y`` — correlation of the two sides' changes,
* ``r`` — ``|ln F(−k)/F(+k)|``, how differently the focus measure falls off on the two sides,

then the simulator's 10–90 % band of ``y`` and ``r`` at each blur level ``x``, prints a table with every real
point and whether it lies inside the band, and writes ``realism.json`` and ``realism.png``. Exits 0 whatever the
verdict (it is a measurement, not a gate).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from virtualfocus.simulation.randomize import RandomOptics, random_stack
from virtualfocus.simulation.realism import PairStats, band, pair_statistics
from virtualfocus.zstacks.realstacks import load_stack

DEFAULT_REAL = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real-focus-stacks" / "urjc-s1"
)
XS = np.round(np.arange(0.15, 0.951, 0.05), 3)


def _inside(stats: list[PairStats], lo: np.ndarray, hi: np.ndarray, field: str) -> list[bool | None]:
    out: list[bool | None] = []
    for s in stats:
        a, b = np.interp(s.x, XS, lo), np.interp(s.x, XS, hi)
        if not (XS[0] <= s.x <= XS[-1]) or not np.isfinite(a) or not np.isfinite(b):
            out.append(None)
        else:
            v = getattr(s, field)
            out.append(bool(a <= v <= b))
    return out


def _plot(path: Path, real: dict[str, list[PairStats]], bands: dict[str, Any], n_sim: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, field, label in (
        (axes[0], "y", "y = corr(I(−k) − I(0), I(+k) − I(0))"),
        (axes[1], "r", "r = |ln F(−k)/F(+k)|"),
    ):
        lo, med, hi = (np.array(bands[field][q], dtype=float) for q in ("p10", "p50", "p90"))
        ax.fill_between(XS, lo, hi, color="tab:blue", alpha=0.25, label=f"simulator 10–90 % ({n_sim} stacks)")
        ax.plot(XS, med, color="tab:blue", lw=1)
        for name, stats in real.items():
            ax.plot([s.x for s in stats], [getattr(s, field) for s in stats], "o-", label=f"real: {name}")
        ax.set_xlabel("x = mean F(±k)/F(0)   (more blur →)")
        ax.set_ylabel(label)
        ax.invert_xaxis()
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower left")
    fig.suptitle("Both sides of focus: real stacks vs the randomized simulator")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--real", nargs="*", default=None, help="real stack folders/files (default: urjc-s1)")
    ap.add_argument("--n", type=int, default=40, help="simulated stacks (default 40)")
    ap.add_argument("--size", type=int, default=256, help="simulated field size in pixels (default 256)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    ap.add_argument("--replot", action="store_true", help="only redraw realism.png from --out/realism.json")
    args = ap.parse_args(argv)
    if args.replot:
        saved = json.loads((args.out / "realism.json").read_text())
        stats = {
            name: [PairStats(p["k"], p["x"], p["y"], p["r"]) for p in points]
            for name, points in saved["real"].items()
        }
        _plot(args.out / "realism.png", stats, saved["band"], saved["n_sim"])
        return 0

    reals = (
        [Path(p) for p in args.real]
        if args.real is not None
        else ([DEFAULT_REAL] if DEFAULT_REAL.exists() else [])
    )
    real: dict[str, list[PairStats]] = {}
    for p in reals:
        real[p.name] = pair_statistics(load_stack(p), register=True)

    t0 = time.perf_counter()
    sims = [pair_statistics(random_stack(seed, size=args.size), register=False) for seed in range(args.n)]
    sim_s = time.perf_counter() - t0
    bands: dict[str, Any] = {}
    for field in ("y", "r"):
        lo, med, hi, count = band(sims, XS, field)
        bands[field] = {"p10": lo.tolist(), "p50": med.tolist(), "p90": hi.tolist(), "count": count.tolist()}

    print(f"randomized simulator: {args.n} stacks of {args.size}×{args.size}×17 in {sim_s:.1f} s")
    print(f"{'x':>5} | {'y p10':>6} {'y p50':>6} {'y p90':>6} | {'r p10':>6} {'r p50':>6} {'r p90':>6} | n")
    for j, x in enumerate(XS):
        yb, rb = bands["y"], bands["r"]
        print(
            f"{x:5.2f} | {yb['p10'][j]:6.2f} {yb['p50'][j]:6.2f} {yb['p90'][j]:6.2f} | "
            f"{rb['p10'][j]:6.2f} {rb['p50'][j]:6.2f} {rb['p90'][j]:6.2f} | {yb['count'][j]}"
        )
    report: dict[str, Any] = {
        "n_sim": args.n,
        "size": args.size,
        "xs": XS.tolist(),
        "band": bands,
        "real": {},
    }
    for name, stats in real.items():
        in_y = _inside(stats, np.array(bands["y"]["p10"]), np.array(bands["y"]["p90"]), "y")
        in_r = _inside(stats, np.array(bands["r"]["p10"]), np.array(bands["r"]["p90"]), "r")
        print(f"\nreal {name}:  k     x      y  in-band      r  in-band")
        for s, a, b in zip(stats, in_y, in_r, strict=True):
            fa = "-" if a is None else ("yes" if a else "NO")
            fb = "-" if b is None else ("yes" if b else "NO")
            print(f"{'':>{len(name) + 6}}{s.k:2d} {s.x:6.3f} {s.y:+6.3f}  {fa:>7} {s.r:6.3f}  {fb:>7}")
        report["real"][name] = [
            {"k": s.k, "x": s.x, "y": s.y, "r": s.r, "y_inside": a, "r_inside": b}
            for s, a, b in zip(stats, in_y, in_r, strict=True)
        ]
    report["ranges"] = {k: v for k, v in RandomOptics().__dict__.items()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "realism.json").write_text(json.dumps(report, indent=1, default=str))
    _plot(args.out / "realism.png", real, bands, args.n)
    print(f"\nwrote {args.out / 'realism.json'} and {args.out / 'realism.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
