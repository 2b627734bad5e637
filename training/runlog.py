"""Read a training run's ``log.csv`` (written by :mod:`.trainer`) without torch: validation curve and run length.

A resumed run appends to the same file and restarts its ``time_s`` clock, so wall time is accumulated over the
sessions here. Used by ``benchmarks/training_curves.py`` and by the model cards of ``benchmarks/quality_report.py``.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class TrainingLog:
    """One run's log: validation rows (step, accumulated minutes, loss, PSNR of output and input) and totals."""

    steps: list[int] = field(default_factory=list)
    minutes: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_psnr: list[float] = field(default_factory=list)
    input_psnr: list[float] = field(default_factory=list)
    last_step: int = 0
    total_minutes: float = 0.0
    sessions: int = 1


def read_training_log(path: str | os.PathLike[str]) -> TrainingLog:
    """Parse ``path`` (a run directory or its ``log.csv``, or a copy of it).

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Not a training log (no ``step``/``time_s`` columns).
    """
    path = Path(path)
    if path.is_dir():
        path = path / "log.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no log.csv (expected a run directory or a copied *.log.csv file)")
    log = TrainingLog()
    offset = prev = 0.0
    with open(path, newline="") as fh:
        rows = csv.DictReader(fh)
        if not rows.fieldnames or "step" not in rows.fieldnames or "time_s" not in rows.fieldnames:
            raise ValueError(f"{path}: not a virtualfocus training log (needs 'step' and 'time_s' columns)")
        for row in rows:
            try:
                t = float(row["time_s"])
                step = int(row["step"])
            except (TypeError, ValueError):
                continue
            if t < prev:  # a resumed session restarts its clock
                offset += prev
                log.sessions += 1
            prev = t
            log.last_step = step
            if row.get("val_loss"):
                log.steps.append(step)
                log.minutes.append((offset + t) / 60)
                log.val_loss.append(float(row["val_loss"]))
                log.val_psnr.append(float(row["val_psnr"]) if row.get("val_psnr") else float("nan"))
                log.input_psnr.append(float(row["input_psnr"]) if row.get("input_psnr") else float("nan"))
    log.total_minutes = (offset + prev) / 60
    return log
