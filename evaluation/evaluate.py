"""Evaluate a restoration model on z-stacks exactly as the reference thesis did, and write a report.

For every stack, every plane ``X`` (the ground truth included) is restored and both ``X`` and the restored ``Ŷ``
are scored against the stack's ground truth ``Y`` with MSE, SSIM, PSNR, FR and FPW (:mod:`.metrics`). The report
holds:

* the metric per focus level for the input and each method (thesis Table 6.1) and their means (Table 6.2);
* success rates per interval (Table 7.1) and per focus level with appendix A's "matched input level" tables,
  based on MSE and FPW;
* plots: metric vs focus level (input vs model vs baselines, thesis Figure 6.8), focus curves, image panels
  (input | restored | ground truth) at several offsets.

``virtualfocus evaluate --model identity`` scores the input itself and so reproduces Table 6.1 for any data.

Example
-------
>>> from virtualfocus.simulation.simulate import simulate_stack
>>> result = evaluate(lambda x: x, [simulate_stack(s) for s in range(3)], name="identity")
>>> write_report(result, "report")  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from virtualfocus.edge import metrics as M
from virtualfocus.edge.errors import InputError, VirtualFocusError
from virtualfocus.zstacks.stack import ZStack, read_stack

__all__ = ["EvaluationResult", "evaluate", "main", "write_report"]

log = logging.getLogger("virtualfocus")
Restore = Callable[[np.ndarray], np.ndarray]
METRIC_NAMES = tuple(M.METRICS)
PANEL_OFFSETS_UM = (-1.2, -0.6, 0.6, 1.2)


@dataclass
class EvaluationResult:
    """Scores of the input and of every method on every (stack, focus level).

    Attributes
    ----------
    levels : np.ndarray
        ``(Z,)`` focus levels in µm (union over stacks, rounded to 0.1 µm).
    stacks : list of str
        Names of the evaluated stacks (rows of the score arrays).
    scores : dict
        ``method -> metric -> (S, Z)`` array, NaN where a stack lacks the level. Method ``"input"`` is the
        unrestored capture.
    success : dict
        ``method -> {"MSE": SuccessTables, "FPW": SuccessTables}`` (not for ``"input"``).
    skipped : list of (name, reason)
        Stacks that could not be evaluated, with the error message.
    focus_curves : dict
        ``stack -> {"offsets": [...], "input": [...], method: [...]}`` for the first few stacks.
    panels : list of dict
        ``{"stack", "offset", "input", "restored": {method: image}, "truth"}`` examples for the image panels.
    latency_ms : dict
        ``method -> median milliseconds per restored image`` (inference only, not scoring).
    info : dict
        Free-form provenance (model, data folder, baseline parameters, evaluation time).
    """

    levels: np.ndarray
    stacks: list[str]
    scores: dict[str, dict[str, np.ndarray]]
    success: dict[str, dict[str, M.SuccessTables]]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    focus_curves: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    panels: list[dict[str, Any]] = field(default_factory=list)
    latency_ms: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def methods(self) -> list[str]:
        return list(self.scores)

    def level_table(self, method: str) -> dict[str, np.ndarray]:
        """``metric -> (Z,)`` mean over stacks per focus level (thesis Table 6.1 for ``"input"``)."""
        if method not in self.scores:
            raise KeyError(f"method {method!r}; evaluated methods: {self.methods}")
        with np.errstate(all="ignore"), _quiet_nanmean():
            return {m: np.nanmean(v, axis=0) for m, v in self.scores[method].items()}

    def levels_not_beating_input(
        self, method: str, metrics: Sequence[str] = ("MSE", "FPW"), band: tuple[float, float] = (-0.2, 0.4)
    ) -> dict[str, list[float]]:
        """Focus levels outside the sharp ``band`` where ``method``'s mean score is not lower than the input's.

        Empty lists = the method beats the input at every defocused level (levels it has no score for, e.g. a
        two-shot model's levels without a partner, are left out).
        """
        t_in, t_m = self.level_table("input"), self.level_table(method)
        out: dict[str, list[float]] = {}
        for m in metrics:
            out[m] = [round(float(lv), 1) for i, lv in enumerate(self.levels)
                      if not band[0] - 1e-6 <= lv <= band[1] + 1e-6 and np.isfinite(t_m[m][i])
                      and not t_m[m][i] < t_in[m][i]]
        return out

    def mean_scores(self, method: str) -> dict[str, float]:
        """Mean of the per-level means (the thesis's "Mean" row / Table 6.2)."""
        with np.errstate(all="ignore"), _quiet_nanmean():
            return {m: float(np.nanmean(v)) for m, v in self.level_table(method).items()}

    def to_dict(self) -> dict[str, Any]:
        def clean(a: Iterable[float]) -> list[float | None]:
            return [None if not np.isfinite(v) else round(float(v), 6) for v in a]

        return {
            "levels_um": [round(float(v), 3) for v in self.levels],
            "stacks": self.stacks,
            "skipped": [{"stack": n, "reason": r} for n, r in self.skipped],
            "methods": self.methods,
            "per_level_mean": {
                k: {m: clean(v) for m, v in self.level_table(k).items()} for k in self.methods
            },
            "mean": {
                k: {m: (round(v, 6) if np.isfinite(v) else None) for m, v in self.mean_scores(k).items()}
                for k in self.methods
            },
            "success": {k: {m: t.to_dict() for m, t in d.items()} for k, d in self.success.items()},
            "scores": {
                k: {m: [clean(row) for row in v] for m, v in d.items()} for k, d in self.scores.items()
            },
            "latency_ms": {k: round(v, 3) for k, v in self.latency_ms.items()},
            "focus_curves": self.focus_curves,
            "info": self.info,
        }


@contextlib.contextmanager
def _quiet_nanmean() -> Iterator[None]:
    """Silence numpy's 'Mean of empty slice' for all-NaN columns (those levels are reported as missing)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        yield


# ------------------------------------------------------------------------------------------------ evaluation
def _centre_crop(stack: ZStack, size: int | None) -> ZStack:
    if size is None:
        return stack
    h, w = stack.planes.shape[1:3]
    if size > min(h, w):
        raise InputError(f"stack {stack.name!r}: crop {size} larger than its {h}×{w} planes")
    cy, cx = h // 2, w // 2
    centres = stack.meta.get("nucleus_centres") or []
    if centres:
        cy, cx = int(centres[0][0]), int(centres[0][1])
    y0 = int(np.clip(cy - size // 2, 0, h - size))
    x0 = int(np.clip(cx - size // 2, 0, w - size))
    planes = stack.planes[:, y0 : y0 + size, x0 : x0 + size]
    meta = dict(stack.meta)
    meta["nucleus_centres"] = [[int(c[0]) - y0, int(c[1]) - x0] for c in centres]
    meta["crop_origin"] = [y0, x0]
    return ZStack(
        np.ascontiguousarray(planes), stack.offsets_um, stack.sharp_index, name=stack.name, meta=meta
    )


def _panel_window(stack: ZStack, size: int = 224) -> tuple[slice, slice]:
    """A nucleus-centred window for image panels (whole plane when it is small), so detail stays visible."""
    h, w = stack.planes.shape[1:3]
    if max(h, w) <= size:
        return slice(0, h), slice(0, w)
    centres = stack.meta.get("nucleus_centres") or [[h // 2, w // 2]]
    cy, cx = int(centres[0][0]), int(centres[0][1])
    y0 = int(np.clip(cy - size // 2, 0, max(h - size, 0)))
    x0 = int(np.clip(cx - size // 2, 0, max(w - size, 0)))
    return slice(y0, y0 + size), slice(x0, x0 + size)


def _check_stack(stack: ZStack) -> None:
    p = stack.planes
    if p.dtype.kind == "f" and not np.all(np.isfinite(p)):
        raise InputError(f"stack {stack.name!r}: planes contain NaN or infinite values")
    if min(p.shape[1:3]) <= 12:
        raise InputError(f"stack {stack.name!r}: planes are {p.shape[1]}×{p.shape[2]}; need more than 12 px")


def _check_output(out: np.ndarray, x: np.ndarray, method: str, stack: str) -> np.ndarray:
    out = np.asarray(out)
    if out.shape != x.shape:
        raise InputError(f"{method} on stack {stack!r}: returned shape {out.shape}, expected {x.shape}")
    if out.dtype != x.dtype:
        if out.dtype.kind == "f" and x.dtype.kind == "u":
            raise InputError(
                f"{method} on stack {stack!r}: returned {out.dtype} for a {x.dtype} capture; "
                "restore functions must return the capture's dtype"
            )
        out = out.astype(x.dtype)
    if out.dtype.kind == "f" and not np.all(np.isfinite(out)):
        raise InputError(f"{method} on stack {stack!r}: returned NaN or infinite values")
    return out


def _as_stacks(
    stacks: Iterable[ZStack | str | os.PathLike[str]], skipped: list[tuple[str, str]]
) -> Iterable[ZStack]:
    for s in stacks:
        if isinstance(s, ZStack):
            yield s
            continue
        try:
            yield read_stack(s)
        except (InputError, OSError, ValueError) as e:
            log.warning("skipping stack %s: %s", s, e)
            skipped.append((str(s), str(e)))


def evaluate(
    restore_fn: Restore,
    stacks: Iterable[ZStack | str | os.PathLike[str]],
    *,
    name: str = "model",
    baselines: Mapping[str, Restore] | None = None,
    crop: int | None = None,
    ssim: bool = True,
    panel_stacks: int = 2,
    curve_stacks: int = 4,
    sharp_band: Sequence[float] = M.SHARP_BAND_UM,
    partner_um: float | None = None,
    paired: Sequence[str] = (),
) -> EvaluationResult:
    """Score ``restore_fn`` (and optional baselines) on every plane of every stack.

    Parameters
    ----------
    restore_fn : callable
        ``image -> image`` of the same shape and dtype (e.g. ``lambda x: rt.restore(x).image``).
    stacks : iterable of ZStack or paths
        Stacks, or stack files (``.tif`` with JSON sidecar); unreadable or invalid ones are skipped and listed in
        :attr:`EvaluationResult.skipped`, the rest are still evaluated.
    name : str
        Method name used in the report.
    baselines : mapping, optional
        More ``name -> restore`` methods scored on the same planes (e.g. tuned unsharp masking).
    crop : int, optional
        Evaluate a ``crop × crop`` window centred on the stack's first nucleus (or the image centre), e.g. 360
        for the thesis's white-cell images. Default: whole planes.
    ssim : bool
        SSIM is the slowest metric; switch it off for quick looks.
    panel_stacks, curve_stacks : int
        How many stacks provide image panels and focus curves for the report.
    sharp_band : sequence of float
        Levels defining the success threshold (default −0.2, +0.2, +0.4 µm).
    partner_um : float, optional
        Two-shot models: ``restore_fn`` is called as ``restore_fn(x, partner)`` with the plane ``partner_um``
        above ``x`` (the pair the instrument would capture). Levels without a partner inside the stack have no
        score for the model (NaN; left out of its success rates); the input and baselines are scored as usual.
    paired : sequence of str
        Baselines that take the pair too (e.g. the same two-shot model deployed with its in-focus pass-through).

    Returns
    -------
    EvaluationResult

    Raises
    ------
    InputError
        When no stack at all could be evaluated.
    """
    methods: dict[str, Restore] = {name: restore_fn, **dict(baselines or {})}
    if "input" in methods:
        raise InputError("evaluate: 'input' is reserved for the unrestored capture; rename the method")
    skipped: list[tuple[str, str]] = []
    rows: list[dict[str, dict[str, dict[float, float]]]] = []
    names: list[str] = []
    curves: dict[str, dict[str, list[float]]] = {}
    panels: list[dict[str, Any]] = []
    lat: dict[str, list[float]] = {k: [] for k in methods}
    t_start = time.perf_counter()
    for stack in _as_stacks(stacks, skipped):
        try:
            stack = _centre_crop(stack, crop)
            _check_stack(stack)
            ref = M.reference(stack.sharp)
            levels = np.round(stack.offsets_um - stack.offsets_um[stack.sharp_index], 1)
            row: dict[str, dict[str, dict[float, float]]] = {
                k: {m: {} for m in METRIC_NAMES} for k in ["input", *methods]
            }
            outputs: dict[str, list[np.ndarray | None]] = {k: [] for k in methods}
            for i, x in enumerate(stack.planes):
                lv = float(levels[i])
                for m, v in M.score_pair(ref, x, ssim_on=ssim).items():
                    row["input"][m][lv] = v
                partner = None
                if partner_um is not None:
                    j = int(np.argmin(np.abs(levels - (lv + partner_um))))
                    partner = stack.planes[j] if abs(levels[j] - (lv + partner_um)) < 0.05 and j != i else None
                for k, fn in methods.items():
                    t0 = time.perf_counter()
                    if partner_um is not None and (k == name or k in paired):
                        if partner is None:
                            outputs[k].append(None)
                            continue
                        out = fn(x, partner)  # type: ignore[call-arg]
                    else:
                        out = fn(x)
                    lat[k].append((time.perf_counter() - t0) * 1e3)
                    out = _check_output(out, x, k, stack.name)
                    outputs[k].append(out)
                    for m, v in M.score_pair(ref, out, ssim_on=ssim).items():
                        row[k][m][lv] = v
        except VirtualFocusError as e:
            log.warning("skipping stack %s: %s", stack.name, e)
            skipped.append((stack.name, str(e)))
            continue
        rows.append(row)
        names.append(stack.name)
        if len(curves) < curve_stacks:
            curves[stack.name] = {
                "offsets": [float(v) for v in levels],
                "input": M.focus_curve(stack.planes).tolist(),
                **{k: [M.focus_measure(o) if o is not None else float("nan") for o in outputs[k]] for k in methods},
            }
        if len({p["stack"] for p in panels}) < panel_stacks:
            for off in PANEL_OFFSETS_UM:
                j = int(np.argmin(np.abs(levels - off)))
                if abs(levels[j] - off) < 0.05 and all(outputs[k][j] is not None for k in methods):
                    win = _panel_window(stack)
                    panels.append(
                        {
                            "stack": stack.name,
                            "offset": float(levels[j]),
                            "input": stack.planes[j][win],
                            "restored": {k: outputs[k][j][win] for k in methods},  # type: ignore[index]
                            "truth": stack.sharp[win],
                        }
                    )
    if not rows:
        raise InputError(
            "evaluate: no stack could be evaluated"
            + (
                f"; skipped: {'; '.join(f'{n}: {r}' for n, r in skipped)}"
                if skipped
                else " (no stacks given)"
            )
        )
    all_levels = np.array(sorted({lv for r in rows for lv in r["input"]["MSE"]}))
    scores: dict[str, dict[str, np.ndarray]] = {}
    for k in ["input", *methods]:
        scores[k] = {}
        for m in METRIC_NAMES:
            arr = np.full((len(rows), all_levels.size), np.nan)
            for si, r in enumerate(rows):
                for lv, v in r[k][m].items():
                    arr[si, int(np.searchsorted(all_levels, lv))] = v
            scores[k][m] = arr
    success: dict[str, dict[str, M.SuccessTables]] = {}
    for k in methods:
        success[k] = {}
        for m in ("MSE", "FPW"):
            try:
                success[k][m] = M.success_tables(
                    scores["input"][m], scores[k][m], all_levels, metric=m, sharp_band=sharp_band
                )
            except InputError as e:  # e.g. stacks without a sharp band: report without success rates
                log.warning("no success rates for %s/%s: %s", k, m, e)
    return EvaluationResult(
        levels=all_levels,
        stacks=names,
        scores=scores,
        success=success,
        skipped=skipped,
        focus_curves=curves,
        panels=panels,
        latency_ms={k: float(np.median(v)) for k, v in lat.items() if v},
        info={"method": name, "crop": crop, "evaluation_s": round(time.perf_counter() - t_start, 3)},
    )


# ---------------------------------------------------------------------------------------------------- report
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
        lines.append(f"| {lv:+.1f} µm | " + " | ".join(cells) + f" | {int(counts[j])} |")
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
        out += ["## Against the input outside the sharp band (−0.2…+0.4 µm)", "",
                "| method | MSE | FPW |", "|---|---|---|"]
        for k in versus:
            lost = result.levels_not_beating_input(k)
            out.append(f"| {k} | " + " | ".join(
                "better at every level" if not v else "not better at " + ", ".join(f"{x:+.1f}" for x in v) + " µm"
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
            f"sharp band ({', '.join(f'{b:+.1f}' for b in M.SHARP_BAND_UM)} µm)."
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
        ax.set_xlabel("focus level (µm)")
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
            ax.set_xlabel("focus level (µm)")
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
            titles = [f"input {p['offset']:+.1f} µm", *methods, "ground truth"]
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


# ------------------------------------------------------------------------------------------------------- CLI
def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="virtualfocus evaluate",
        description="Score a model on z-stacks with the thesis's metrics and write report.md/report.json/plots.",
    )
    ap.add_argument(
        "--model", required=True, help="'identity' (the input itself), a shipped name, a model folder or file"
    )
    ap.add_argument("--data", required=True, help="folder of stacks (*.tif + *.json) or one stack file")
    ap.add_argument("--out", required=True, help="report folder (created)")
    ap.add_argument("--limit", type=int, default=None, help="evaluate at most N stacks (the first N by name)")
    ap.add_argument(
        "--baselines", action="store_true", help="also score tuned unsharp masking and Richardson-Lucy"
    )
    ap.add_argument("--crop", type=int, default=None, help="evaluate a nucleus-centred crop (e.g. 360)")
    ap.add_argument("--no-ssim", action="store_true", help="skip SSIM (faster)")
    ap.add_argument("--restore-all", action="store_true",
                    help="the model alone: restore every capture (no in-focus pass-through by restoration gain)")
    return ap


def _model_fn(model: str, *, pass_in_focus: bool = True) -> tuple[Restore, str, float | None]:
    """(restore function, method name, partner offset in µm for two-shot models or None)."""
    if model == "identity":
        return (lambda x: x), "identity", None
    from virtualfocus.edge.models import resolve_model
    from virtualfocus.edge.runtime import FocusRuntime  # lazy: the runtime pulls in OpenVINO / ONNX Runtime

    name = Path(model).name or model
    src = resolve_model(model)
    if src.manifest.input.inputs == 2:
        # Pairs go through the runtime's two-shot fuser, as instrument software sends them.
        from virtualfocus.edge.integrations.twoshot import TwoShotConfig, TwoShotFuser, load_two_shot_engine

        engine = load_two_shot_engine(model)
        fuser = TwoShotFuser(FocusRuntime.load(budget_ms=1e9), engine,
                             config=TwoShotConfig(pass_in_focus=pass_in_focus))
        partner = float(src.manifest.spec.get("delta_um", 0.6))
        return (lambda x, other: fuser.fuse(x, other).frame.image), name, partner  # type: ignore[return-value,misc]
    rt = FocusRuntime.load(model, budget_ms=1e9, pass_in_focus=pass_in_focus)
    return (lambda x: rt.restore(x).image), name, None


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``virtualfocus evaluate``."""
    args = _parser().parse_args(argv)
    data = Path(args.data)
    if data.is_dir():
        files: list[Path] = sorted(data.glob("*.tif")) + sorted(data.glob("*.tiff"))
    elif data.is_file():
        files = [data]
    else:
        raise InputError(f"--data {data}: no such folder or stack file")
    if not files:
        raise InputError(f"--data {data}: no stacks (*.tif with JSON sidecar) found")
    if args.limit is not None:
        if args.limit < 1:
            raise InputError(f"--limit {args.limit}; expected at least 1")
        rest = files[args.limit :]
        files = files[: args.limit]
    else:
        rest = []
    fn, name, partner_um = _model_fn(args.model, pass_in_focus=not args.restore_all)
    baselines: dict[str, Restore] = {}
    base_info: dict[str, Any] = {}
    if args.baselines:
        from .baselines import tune_richardson_lucy, tune_unsharp

        val_files = rest[:3] if len(rest) >= 1 else files[:3]
        val = []
        for f in val_files:
            try:
                val.append(_centre_crop(read_stack(f), args.crop))
            except InputError as e:
                log.warning("baseline validation: skipping %s: %s", f, e)
        if val:
            for tuned in (tune_unsharp(val), tune_richardson_lucy(val)):
                baselines[tuned.name] = tuned
                base_info[tuned.name] = {
                    **tuned.params,
                    "validation_mse": round(tuned.validation_mse, 4),
                    "validation_stacks": [s.name for s in val],
                    "disjoint_from_evaluation": bool(rest),
                }
    result = evaluate(fn, files, name=name, baselines=baselines, crop=args.crop, ssim=not args.no_ssim,
                      partner_um=partner_um)
    result.info.update(model=args.model, data=str(data), baselines=base_info,
                       in_focus_pass_through=not args.restore_all)
    md = write_report(result, args.out)
    t = result.level_table("input")
    print(f"evaluated {len(result.stacks)} stacks ({len(result.skipped)} skipped) -> {md}")
    for k in result.methods:
        ms = result.mean_scores(k)
        print(f"  {k:<16s} " + "  ".join(f"{m} {_fmt(m, ms[m])}" for m in METRIC_NAMES))
        if k not in ("input", "identity"):
            lost = result.levels_not_beating_input(k)
            print(f"  {'':<16s} beats the input outside the sharp band: "
                  + ", ".join(f"{m} {'every level' if not v else 'not at ' + ' '.join(f'{x:+.1f}' for x in v)}"
                              for m, v in lost.items()))
    del t
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
