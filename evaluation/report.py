"""The evaluation report: ``report.md`` (thesis tables), ``report.json`` and PNG plots of one evaluation.

Written by :func:`write_report` from an :class:`~virtualfocus.evaluation.evaluate.EvaluationResult`. Focus levels
are in µm, or in plane steps for stacks whose z step is unknown (``result.info["offset_unit"] == "plane"``).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from virtualfocus.edge import metrics as M

if TYPE_CHECKING:
    from .evaluate import EvaluationResult

__all__ = ["atomic_write", "fmt", "level_unit", "write_report"]

METRIC_NAMES = tuple(M.METRICS)

def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.fchmod(fd, 0o644)  # mkstemp creates 0600; outputs are ordinary shared files
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def level_unit(result: EvaluationResult) -> str:
    """Unit of the focus levels: "µm", or "planes" for stacks whose z step is unknown."""
    return "planes" if result.info.get("offset_unit") == "plane" else "µm"


def _sharp_band(result: EvaluationResult) -> tuple[float, ...]:
    return tuple(result.info.get("sharp_band") or M.SHARP_BAND_UM)


def _fmt(m: str, v: float) -> str:
    if not np.isfinite(v):
        return "–"
    if m == "SSIM":
        return f"{v:.6f}"
    if m == "FR":
        return f"{v:.4f}"
    if m == "FPW":
        return f"{v:.4g}" if abs(v) < 1000 else f"{v:.0f}"
    return f"{v:.4g}"


def _level_table_md(result: EvaluationResult, method: str) -> list[str]:
    t = result.level_table(method)
    means = result.mean_scores(method)
    lines = [
        "| focus level | " + " | ".join(METRIC_NAMES) + " | n |",
        "|---|" + "---|" * (len(METRIC_NAMES) + 1),
    ]
    counts = np.sum(~np.isnan(result.scores[method]["MSE"]), axis=0)
    for j, lv in enumerate(result.levels):
        cells = [_fmt(m, float(t[m][j])) for m in METRIC_NAMES]
        lines.append(f"| {lv:+.1f} {level_unit(result)} | " + " | ".join(cells) + f" | {int(counts[j])} |")
    lines.append("| **Mean** | " + " | ".join(_fmt(m, means[m]) for m in METRIC_NAMES) + " | |")
    return lines


def _pass_through_note(flag: Any) -> str:
    if flag is True:
        return (" The runtime returned captures its model barely sharpens untouched (in-focus pass-through; "
                "`--restore-all` scores the model alone).")
    if flag is False:
        return " Every capture was restored (`--restore-all`: the model alone)."
    return ""


def _markdown(result: EvaluationResult, plots: Mapping[str, str], plot_error: str | None) -> str:
    info = result.info
    out = [f"# Evaluation: {info.get('method', 'model')}", ""]
    out.append(
        f"{len(result.stacks)} stacks evaluated"
        + (f" from `{info['data']}`" if info.get("data") else "")
        + (f", crop {info['crop']}×{info['crop']}" if info.get("crop") else ", whole planes")
        + f"; {len(result.skipped)} skipped. Evaluation took {info.get('evaluation_s', 0):.1f} s"
        + " (inference included)."
        + _pass_through_note(info.get("in_focus_pass_through"))
    )
    out.append("")
    if result.skipped:
        out += ["## Skipped stacks", ""]
        out += [f"- `{n}`: {r}" for n, r in result.skipped]
        out.append("")
    out += [
        "## Mean scores (thesis Table 6.2)",
        "",
        "| method | " + " | ".join(METRIC_NAMES) + " | ms/image |",
        "|---|" + "---|" * (len(METRIC_NAMES) + 1),
    ]
    for k in result.methods:
        ms = result.mean_scores(k)
        lat = result.latency_ms.get(k)
        out.append(
            f"| {k} | "
            + " | ".join(_fmt(m, ms[m]) for m in METRIC_NAMES)
            + f" | {'' if lat is None else f'{lat:.1f}'} |"
        )
    out.append("")
    if "metric_vs_level" in plots:
        out += [f"![metric vs focus level]({plots['metric_vs_level']})", ""]
    versus = [k for k in result.methods if k not in ("input", "identity")]
    if versus:
        u, sb = level_unit(result), _sharp_band(result)
        band = (min(sb), max(sb))
        out += [f"## Against the input outside the sharp band ({band[0]:+.1f}…{band[1]:+.1f} {u})", "",
                "| method | MSE | FPW |", "|---|---|---|"]
        for k in versus:
            lost = result.levels_not_beating_input(k, band=band)
            out.append(f"| {k} | " + " | ".join(
                "better at every level" if not v else "not better at " + ", ".join(f"{x:+.1f}" for x in v) + f" {u}"
                for v in (lost["MSE"], lost["FPW"])) + " |")
        out.append("")
    out += ["## Input images per focus level (thesis Table 6.1)", ""]
    out += _level_table_md(result, "input")
    out.append("")
    for k in result.methods:
        if k == "input" or k == "identity":  # identity's table is the input table
            continue
        out += [f"## {k} per focus level", ""]
        out += _level_table_md(result, k)
        out.append("")
    if result.success:
        intervals = None
        out += ["## Success rate per interval (thesis Table 7.1)", ""]
        out.append(
            "A restored image succeeds when its score is no worse than the worst input of its own stack in the "
            f"sharp band ({', '.join(f'{b:+.1f}' for b in _sharp_band(result))} {level_unit(result)})."
        )
        out.append("")
        for k, d in result.success.items():
            for m, t in d.items():
                if intervals is None:
                    intervals = list(t.per_interval)
                    out.append("| method | metric | " + " | ".join(intervals) + " |")
                    out.append("|---|---|" + "---|" * len(intervals))
                out.append(
                    f"| {k} | {m} | " + " | ".join(_fmt("MSE", t.per_interval[i]) for i in intervals) + " |"
                )
        out.append("")
        for k, d in result.success.items():
            for m, t in d.items():
                lv = [f"{v:+.1f}" for v in t.levels]
                out += [f"### {k}: matched input level by {m} (appendix A)", ""]
                out.append(
                    "Rows: focus level of the restored image; columns: the input level whose score is the tightest "
                    "upper bound of the restored score (% of stacks); SR: success rate."
                )
                out.append("")
                out.append("| level | " + " | ".join(lv) + " | worse | SR (%) |")
                out.append("|---|" + "---|" * (len(lv) + 2))
                for j, row in enumerate(t.match):
                    cells = ["–" if not np.isfinite(v) else f"{v:.1f}" for v in row]
                    sr = t.per_level[j]
                    out.append(
                        f"| {lv[j]} | "
                        + " | ".join(cells)
                        + f" | {'–' if not np.isfinite(sr) else f'{sr:.1f}'} |"
                    )
                out.append("")
    if "focus_curves" in plots:
        out += ["## Focus curves", "", f"![focus curves]({plots['focus_curves']})", ""]
    panel_keys = sorted(k for k in plots if k.startswith("panel"))
    if panel_keys:
        out += ["## Image panels (input | restored | ground truth)", ""]
        out += [f"![{k}]({plots[k]})" for k in panel_keys]
        out.append("")
    if plot_error:
        out += ["## Plots", "", f"Plots were not drawn: {plot_error}", ""]
    if info.get("baselines"):
        out += ["## Baseline parameters", ""]
        for k, v in info["baselines"].items():
            out.append(f"- {k}: {v}")
        out.append("")
    return "\n".join(out)


def _plots(result: EvaluationResult, out: Path) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: dict[str, str] = {}

    def save(fig: Any, fname: str, key: str) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{fname}.", suffix=".png", dir=out)
        os.fchmod(fd, 0o644)  # mkstemp creates 0600; outputs are ordinary shared files
        os.close(fd)
        try:
            fig.savefig(tmp, dpi=110, bbox_inches="tight")
            os.replace(tmp, out / fname)
        finally:
            plt.close(fig)
            if os.path.exists(tmp):
                os.unlink(tmp)
        written[key] = fname

    styles = ["s-", "o-", "^-", "v-", "d-"]
    colours = ["tab:blue", "tab:purple", "tab:green", "tab:orange", "tab:red"]
    fig, axes = plt.subplots(1, 4, figsize=(17, 4))
    for ax, m in zip(axes, ("MSE", "FPW", "FR", "SSIM"), strict=True):
        target = {"MSE": 0.0, "FPW": 0.0, "FR": 1.0, "SSIM": 1.0}[m]
        ax.axhline(target, color="black", lw=1.2, label="target")
        ax.plot(result.levels, result.level_table("input")[m], "k--", label="input")
        for i, k in enumerate(k for k in result.methods if k != "input"):
            ax.plot(
                result.levels, result.level_table(k)[m], styles[i % 5], color=colours[i % 5], ms=4, label=k
            )
        ax.set_xlabel(f"focus level ({level_unit(result)})")
        ax.set_title(m)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("metric vs focus level (thesis Fig. 6.8)")
    save(fig, "metric_vs_level.png", "metric_vs_level")

    if result.focus_curves:
        n = len(result.focus_curves)
        fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.4), squeeze=False)
        for ax, (sname, c) in zip(axes[0], result.focus_curves.items(), strict=True):
            x = c["offsets"]
            ax.plot(x, c["input"], "k--", label="input")
            for i, k in enumerate(k for k in c if k not in ("offsets", "input")):
                ax.plot(x, c[k], styles[i % 5], color=colours[i % 5], ms=3, label=k)
            ax.set_title(sname, fontsize=9)
            ax.set_xlabel(f"focus level ({level_unit(result)})")
            ax.grid(alpha=0.3)
        axes[0][0].set_ylabel("focus measure F")
        axes[0][0].legend(fontsize=8)
        save(fig, "focus_curves.png", "focus_curves")

    by_stack: dict[str, list[dict[str, Any]]] = {}
    for p in result.panels:
        by_stack.setdefault(p["stack"], []).append(p)
    for si, (sname, items) in enumerate(by_stack.items()):
        methods = list(items[0]["restored"])
        cols = 2 + len(methods)
        fig, axes = plt.subplots(len(items), cols, figsize=(2.6 * cols, 2.6 * len(items)), squeeze=False)
        for r, p in enumerate(items):
            ims = [p["input"], *[p["restored"][k] for k in methods], p["truth"]]
            titles = [f"input {p['offset']:+.1f} {level_unit(result)}", *methods, "ground truth"]
            for col, (im, t) in enumerate(zip(ims, titles, strict=True)):
                show = M.to_255(im).clip(0, 255).astype(np.uint8)
                axes[r][col].imshow(show, cmap=None if show.ndim == 3 else "gray")
                axes[r][col].set_title(t, fontsize=8)
                axes[r][col].axis("off")
        fig.suptitle(sname, fontsize=9)
        save(fig, f"panel_{si}.png", f"panel_{si}")
    return written


def write_report(result: EvaluationResult, out_dir: str | os.PathLike[str]) -> Path:
    """Write ``report.json``, ``report.md`` and PNG plots into ``out_dir`` (atomically, file by file).

    Plots need matplotlib; without it the report says so and everything else is still written.

    Returns
    -------
    Path
        The Markdown report.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plot_error = None
    try:
        plots = _plots(result, out)
    except ImportError as e:
        plots, plot_error = {}, f"matplotlib is not installed ({e}); `pip install matplotlib` for figures"
    _atomic_write(out / "report.json", json.dumps(result.to_dict(), indent=1).encode())
    md = out / "report.md"
    _atomic_write(md, _markdown(result, plots, plot_error).encode())
    return md


atomic_write = _atomic_write
fmt = _fmt
