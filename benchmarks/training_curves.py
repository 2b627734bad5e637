"""Validation curves of training runs: iterations reached, wall-clock time and validation quality against the input.

Reads each run's ``log.csv`` (written by ``virtualfocus train``; a resumed run restarts ``time_s``, so wall time is
accumulated across sessions) and writes a markdown table and one PNG with the validation PSNR gain over the input
(the defocused capture) against optimisation steps and against wall-clock minutes. The committed record of the
shipped models' runs and of the paper-sized ``pix2pix-dist`` lives in ``benchmarks/results/training/`` (the
``runs/`` folders are not in git):

    python benchmarks/training_curves.py                                   # every *.log.csv there
    python benchmarks/training_curves.py vf-quality=runs/vf-quality paper=runs/pix2pix-dist-paper \\
        --out /tmp/curves

Columns: steps and minutes trained; the best validation loss and its step; validation PSNR of the output and of the
input at the last validation (same 64 validation crops, every plane of the training range, so the gain is an
average over defocus levels, not the quality report's per-level table).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from virtualfocus.training.runlog import TrainingLog, read_training_log

RESULTS = Path(__file__).resolve().parent / "results" / "training"


@dataclass
class Curve(TrainingLog):
    name: str = ""
    model: str = ""
    focus_range_um: str = ""


def read_log(name: str, path: Path) -> Curve:
    """Parse a run's ``log.csv`` (``path`` may be the file or the run directory) and its config."""
    log = read_training_log(path)
    model, span = _run_config(path / "log.csv" if path.is_dir() else path)
    return Curve(**vars(log), name=name, model=model, focus_range_um=span)


def _run_config(log_csv: Path) -> tuple[str, str]:
    """(architecture, focus offset range) from the run's config.json: beside log.csv in a run directory, or the
    ``NAME.config.json`` copy beside a ``NAME.log.csv``."""
    import json

    cands = [log_csv.parent / "config.json"]
    if log_csv.name.endswith(".log.csv"):
        cands.insert(0, log_csv.with_name(log_csv.name.removesuffix(".log.csv") + ".config.json"))
    for c in cands:
        if c.is_file():
            try:
                run = json.loads(c.read_text())
            except (OSError, ValueError):
                return "", ""
            cfg, spec = run.get("config", {}), run.get("spec", {})
            lo_hi = cfg.get("offset_range_um")
            span = f"{lo_hi[0]:+.1f}…{lo_hi[1]:+.1f}" if isinstance(lo_hi, list) and len(lo_hi) == 2 else ""
            size = (f" ({spec['filters']} filters, {spec['levels']} levels)"
                    if isinstance(spec.get("filters"), int) and isinstance(spec.get("levels"), int) else "")
            return str(cfg.get("model", "")) + size, span
    return "", ""


def markdown(curves: list[Curve]) -> str:
    lines = ["| run | architecture | focus range (µm) | steps | minutes | best val loss (step) | val PSNR | input PSNR "
             "| gain (dB) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for c in curves:
        head = f"| {c.name} | {c.model or '—'} | {c.focus_range_um or '—'} | {c.last_step} | {c.total_minutes:.0f} |"
        if not c.steps:
            lines.append(head + " — | — | — | — |")
            continue
        i = min(range(len(c.val_loss)), key=c.val_loss.__getitem__)
        best = f" {c.val_loss[i]:.5g} ({c.steps[i]}) |"
        if not math.isfinite(c.val_psnr[-1]):  # a classifier: no image quality to compare
            lines.append(head + best + " — | — | — |")
            continue
        gain = c.val_psnr[-1] - c.input_psnr[-1]
        lines.append(head + best + f" {c.val_psnr[-1]:.2f} | {c.input_psnr[-1]:.2f} | {gain:+.2f} |")
    return "\n".join(lines) + "\n"


def _atomic(path: Path, write) -> None:  # type: ignore[no-untyped-def]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.fchmod(fd, 0o644)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def plot(curves: list[Curve], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for c in curves:
        if not c.steps or not any(math.isfinite(v) for v in c.val_psnr):
            continue
        gain = [p - q for p, q in zip(c.val_psnr, c.input_psnr, strict=True)]
        axes[0].plot(c.steps, gain, "o-", ms=3, label=c.name)
        axes[1].plot(c.minutes, gain, "o-", ms=3, label=c.name)
    for ax, xl in zip(axes, ("optimisation steps", "wall-clock minutes (2-core CPU)"), strict=True):
        ax.axhline(0, color="gray", lw=0.8)
        ax.set_xlabel(xl)
        ax.set_ylabel("validation PSNR − input PSNR (dB)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Validation gain over the defocused input during training")
    try:
        _atomic(path, lambda tmp: fig.savefig(tmp, dpi=100, bbox_inches="tight"))
    finally:
        plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="*", metavar="NAME=PATH",
                   help=f"run directory or log.csv per curve (default: every *.log.csv in {RESULTS})")
    p.add_argument("--out", default=str(RESULTS), help="folder for curves.md and curves.png (default: %(default)s)")
    args = p.parse_args(argv)
    pairs: list[tuple[str, Path]] = []
    for item in args.runs:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            p.error(f"run {item!r}: expected NAME=PATH (a run directory or a log.csv)")
        pairs.append((name, Path(path)))
    if not pairs:
        pairs = [(f.name.removesuffix(".log.csv"), f) for f in sorted(RESULTS.glob("*.log.csv"))]
        if not pairs:
            print(f"training_curves: no *.log.csv in {RESULTS}; pass NAME=PATH", file=sys.stderr)
            return 2
    try:
        curves = [read_log(n, f) for n, f in pairs]
    except (OSError, ValueError) as e:
        print(f"training_curves: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    table = markdown(curves)
    doc = ("# Training curves\n\nGenerated by `python benchmarks/training_curves.py` from the runs' `log.csv` "
           "(copies in this folder). Wall time is summed over resumed sessions; validation on 64 held-out crops "
           "over the run's training focus range (a narrower range scores a higher input PSNR, so compare gains "
           "within one range).\n\n" + table + "\n![validation gain](curves.png)\n")
    _atomic(out / "curves.md", lambda tmp: Path(tmp).write_text(doc))
    plot(curves, out / "curves.png")
    print(table, end="")
    print(f"wrote {out / 'curves.md'} and {out / 'curves.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
