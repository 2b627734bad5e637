"""The standard evaluation suite as a benchmark — the report every later change is compared by.

    python benchmarks/suite.py [--model vf-quality] [--out DIR] [--real STACKS ...] [--cache DIR] [--restore-all]

Runs the same code as ``virtualfocus evaluate --suite standard`` (:mod:`virtualfocus.evaluation.suite`): the
runtime as shipped and three baselines on held-out simulated stacks, semi-synthetic held-out BCCD fields and
every real stack given (urjc-s1 from ``../shared`` when present). Writes ``benchmarks/results/suite-<model>/``
(``report.md``, ``report.json``, ``psnr_gain_vs_level.png`` and one full thesis report per set) unless ``--out``
says otherwise. ``--model`` may be a shipped name or a model folder, so new models can be compared.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="vf-quality", help="shipped name or model folder (default vf-quality)")
    ap.add_argument("--out", default=None, help="report folder (default benchmarks/results/suite-<model>)")
    args, rest = ap.parse_known_args(argv)
    out = args.out or str(ROOT / "benchmarks" / "results" / f"suite-{Path(args.model).name}")
    from virtualfocus.edge.errors import VirtualFocusError
    from virtualfocus.evaluation.evaluate import main as evaluate_main

    try:
        return evaluate_main(["--suite", "standard", "--model", args.model, "--out", out, *rest])
    except VirtualFocusError as e:
        print(f"benchmarks/suite.py: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
