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
import sys
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

from .report import _fmt, write_report  # write_report is re-exported: the report lives in .report

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
    statuses : dict
        ``method -> (S, Z)`` array of the runtime's frame status (``"restored"``, ``"in-focus"`` …; ``""`` where
        missing) for methods that return a frame (an object with ``image`` and ``status``) rather than an image.
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
    statuses: dict[str, np.ndarray] = field(default_factory=dict)

    def status_counts(self, method: str, status: str = "in-focus") -> np.ndarray:
        """``(Z,)`` how many stacks' captures at each level ``method`` (a runtime) returned with ``status``."""
        if method not in self.statuses:
            return np.zeros(self.levels.size, int)
        return np.sum(self.statuses[method] == status, axis=0)

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
            "statuses": {k: v.tolist() for k, v in self.statuses.items()},
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
    intervals: Sequence[tuple[float, float]] = M.DEFAULT_INTERVALS,
    panel_offsets: Sequence[float] = PANEL_OFFSETS_UM,
) -> EvaluationResult:
    """Score ``restore_fn`` (and optional baselines) on every plane of every stack.

    Parameters
    ----------
    restore_fn : callable
        ``image -> image`` of the same shape and dtype (e.g. ``lambda x: rt.restore(x).image``), or ``image ->
        frame`` (``rt.restore``: an object with ``image`` and ``status``), whose statuses are then recorded. A
        method with ``needs_stack = True`` (an oracle such as the physics baseline) is called as
        ``fn(image, stack, plane_index)`` and may return None where it does not apply.
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
    intervals : sequence of (low, high)
        Intervals of the pooled success rates (thesis Table 7.1; in plane steps for plane-step stacks).
    panel_offsets : sequence of float
        Focus levels shown in the image panels.

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
    rows: list[_Row] = []
    names: list[str] = []
    curves: dict[str, dict[str, list[float]]] = {}
    panels: list[dict[str, Any]] = []
    lat: dict[str, list[float]] = {k: [] for k in methods}
    t_start = time.perf_counter()
    for stack in _as_stacks(stacks, skipped):
        try:
            stack = _centre_crop(stack, crop)
            _check_stack(stack)
            row = _score_stack(stack, methods, lat, ssim=ssim, partner_um=partner_um,
                               pairs={name, *paired} if partner_um is not None else set())
        except VirtualFocusError as e:
            log.warning("skipping stack %s: %s", stack.name, e)
            skipped.append((stack.name, str(e)))
            continue
        rows.append(row)
        names.append(stack.name)
        levels, outputs = row.levels, row.outputs
        if len(curves) < curve_stacks:
            curves[stack.name] = {
                "offsets": [float(v) for v in levels],
                "input": M.focus_curve(stack.planes).tolist(),
                **{k: [M.focus_measure(o) if o is not None else float("nan") for o in outputs[k]] for k in methods},
            }
        if len({p["stack"] for p in panels}) < panel_stacks:
            panels += _panels(stack, levels, outputs, panel_offsets)
        row.outputs = {}  # the images are no longer needed: keep memory flat over many stacks
    if not rows:
        raise InputError(
            "evaluate: no stack could be evaluated"
            + (f"; skipped: {'; '.join(f'{n}: {r}' for n, r in skipped)}" if skipped else " (no stacks given)")
        )
    all_levels, scores, statuses, success = _assemble(rows, list(methods), sharp_band, intervals)
    return EvaluationResult(
        levels=all_levels,
        stacks=names,
        scores=scores,
        success=success,
        skipped=skipped,
        focus_curves=curves,
        panels=panels,
        latency_ms={k: float(np.median(v)) for k, v in lat.items() if v},
        info={"method": name, "crop": crop, "evaluation_s": round(time.perf_counter() - t_start, 3),
              "sharp_band": [float(b) for b in sharp_band]},
        statuses=statuses,
    )


@dataclass
class _Row:
    """One stack's scores: ``method -> metric -> level -> value``, runtime statuses and the restored images."""

    levels: np.ndarray
    scores: dict[str, dict[str, dict[float, float]]]
    statuses: dict[str, dict[float, str]]
    outputs: dict[str, list[np.ndarray | None]]


def _assemble(rows: Sequence[_Row], methods: Sequence[str], sharp_band: Sequence[float],
              intervals: Sequence[tuple[float, float]]
              ) -> tuple[np.ndarray, dict[str, dict[str, np.ndarray]], dict[str, np.ndarray],
                         dict[str, dict[str, M.SuccessTables]]]:
    """Per-stack rows → (levels, score arrays ``(S, Z)``, status arrays, success tables)."""
    all_levels = np.array(sorted({lv for r in rows for lv in r.scores["input"]["MSE"]}))
    scores: dict[str, dict[str, np.ndarray]] = {}
    for k in ["input", *methods]:
        scores[k] = {}
        for m in METRIC_NAMES:
            arr = np.full((len(rows), all_levels.size), np.nan)
            for si, r in enumerate(rows):
                for lv, v in r.scores[k][m].items():
                    arr[si, int(np.searchsorted(all_levels, lv))] = v
            scores[k][m] = arr
    statuses: dict[str, np.ndarray] = {}
    for k in {k for r in rows for k in r.statuses}:
        st = np.full((len(rows), all_levels.size), "", dtype=object)
        for si, r in enumerate(rows):
            for lv, status in r.statuses.get(k, {}).items():
                st[si, int(np.searchsorted(all_levels, lv))] = status
        statuses[k] = st
    success: dict[str, dict[str, M.SuccessTables]] = {}
    for k in methods:
        success[k] = {}
        for m in ("MSE", "FPW"):
            try:
                success[k][m] = M.success_tables(scores["input"][m], scores[k][m], all_levels, metric=m,
                                                 sharp_band=sharp_band, intervals=intervals)
            except InputError as e:  # e.g. stacks without a sharp band: report without success rates
                log.warning("no success rates for %s/%s: %s", k, m, e)
    return all_levels, scores, statuses, success


def _call(fn: Restore, x: np.ndarray, stack: ZStack, i: int, partner: np.ndarray | None, paired: bool
          ) -> tuple[Any, bool]:
    """(output, whether the method applies here): two-shot methods need a partner, oracles may decline."""
    if paired:
        if partner is None:
            return None, False
        return fn(x, partner), True  # type: ignore[call-arg]
    if getattr(fn, "needs_stack", False):  # an oracle: told the stack and the plane (e.g. the true defocus)
        out = fn(x, stack, i)  # type: ignore[call-arg]
        return out, out is not None
    return fn(x), True


def _score_stack(stack: ZStack, methods: Mapping[str, Restore], lat: dict[str, list[float]], *, ssim: bool,
                 partner_um: float | None, pairs: set[str]) -> _Row:
    ref = M.reference(stack.sharp)
    levels = np.round(stack.offsets_um - stack.offsets_um[stack.sharp_index], 1)
    row = _Row(levels, {k: {m: {} for m in METRIC_NAMES} for k in ["input", *methods]}, {},
               {k: [] for k in methods})
    for i, x in enumerate(stack.planes):
        lv = float(levels[i])
        for m, v in M.score_pair(ref, x, ssim_on=ssim).items():
            row.scores["input"][m][lv] = v
        partner = None
        if partner_um is not None:
            j = int(np.argmin(np.abs(levels - (lv + partner_um))))
            partner = stack.planes[j] if abs(levels[j] - (lv + partner_um)) < 0.05 and j != i else None
        for k, fn in methods.items():
            t0 = time.perf_counter()
            out, applies = _call(fn, x, stack, i, partner, k in pairs)
            if not applies:
                row.outputs[k].append(None)
                continue
            lat[k].append((time.perf_counter() - t0) * 1e3)
            if hasattr(out, "image") and hasattr(out, "status"):  # a runtime's frame: keep what it did
                row.statuses.setdefault(k, {})[lv] = str(getattr(out.status, "value", out.status))
                out = out.image
            out = _check_output(out, x, k, stack.name)
            row.outputs[k].append(out)
            for m, v in M.score_pair(ref, out, ssim_on=ssim).items():
                row.scores[k][m][lv] = v
    return row


def _panels(stack: ZStack, levels: np.ndarray, outputs: Mapping[str, list[np.ndarray | None]],
            offsets: Sequence[float]) -> list[dict[str, Any]]:
    panels = []
    shown = [k for k, o in outputs.items() if any(x is not None for x in o)]  # an oracle may not apply at all
    for off in offsets:
        j = int(np.argmin(np.abs(levels - off)))
        if abs(levels[j] - off) < 0.05 and all(outputs[k][j] is not None for k in shown):
            win = _panel_window(stack)
            panels.append({"stack": stack.name, "offset": float(levels[j]), "input": stack.planes[j][win],
                           "restored": {k: outputs[k][j][win] for k in shown},  # type: ignore[index]
                           "truth": stack.sharp[win]})
    return panels


# ------------------------------------------------------------------------------------------------------- CLI
def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="virtualfocus evaluate",
        description="Score a model on z-stacks with the thesis's metrics and write report.md/report.json/plots.",
    )
    ap.add_argument(
        "--model", required=True, help="'identity' (the input itself), a shipped name, a model folder or file"
    )
    ap.add_argument("--data", default=None, help="folder of stacks (*.tif + *.json) or one stack file")
    ap.add_argument("--out", required=True, help="report folder (created)")
    ap.add_argument("--limit", type=int, default=None, help="evaluate at most N stacks (the first N by name)")
    ap.add_argument(
        "--baselines", action="store_true", help="also score tuned unsharp masking and Richardson-Lucy"
    )
    ap.add_argument("--crop", type=int, default=None, help="evaluate a nucleus-centred crop (e.g. 360)")
    ap.add_argument("--no-ssim", action="store_true", help="skip SSIM (faster)")
    ap.add_argument("--restore-all", action="store_true",
                    help="the model alone: restore every capture (no in-focus pass-through by restoration gain)")
    from .suite import add_arguments

    add_arguments(ap)
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


def level_options(unit: str, top: float) -> dict[str, Any]:
    """``evaluate`` keywords for stacks in ``unit`` ("um" or "plane") whose levels reach ``±top``: in plane steps
    the sharp band is the two neighbouring planes and the success intervals are ±1, ±2, ±4, ±6, ±8 planes."""
    if unit != "plane":
        return {"sharp_band": M.SHARP_BAND_UM, "intervals": M.DEFAULT_INTERVALS}
    ks = sorted({k for k in (8, 6, 4, 2, 1) if k <= top} or {1}, reverse=True)
    return {"sharp_band": (-1.0, 1.0), "intervals": [(-float(k), float(k)) for k in ks],
            "panel_offsets": tuple(float(v) for v in (-6, -3, 3, 6) if abs(v) <= top) or (-1.0, 1.0)}


def _sidecar(f: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(f.with_suffix(".json").read_text()))
    except (OSError, ValueError, TypeError):
        return {}  # a missing or bad sidecar is reported when the stack is read


def _offset_unit(files: Sequence[Path]) -> str:
    units = {_sidecar(f).get("offset_unit", "um") for f in files}
    if len(units) > 1:
        raise InputError(f"--data: mixes stacks with offsets in µm and in plane steps ({sorted(units)}); evaluate "
                         "them separately")
    return units.pop() if units else "um"


def _max_level(f: Path) -> float:
    off = _sidecar(f).get("offsets_um") or [0.0]
    return float(max(abs(float(v)) for v in off))


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``virtualfocus evaluate``."""
    args = _parser().parse_args(argv)
    if args.suite is not None:
        if args.data is not None:
            raise InputError("--suite and --data: give one; the suite chooses its own data (add real stacks "
                             "with --real)")
        from . import suite

        return suite.main(args, command="virtualfocus evaluate " + " ".join(argv if argv is not None
                                                                            else sys.argv[2:]))
    if args.data is None:
        raise InputError("give --data DIR (stacks to score) or --suite standard")
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
    unit = _offset_unit(files)
    opts = level_options(unit, max((_max_level(f) for f in files), default=1.0)) if unit == "plane" else {}
    result = evaluate(fn, files, name=name, baselines=baselines, crop=args.crop, ssim=not args.no_ssim,
                      partner_um=partner_um, **opts)
    result.info.update(model=args.model, data=str(data), baselines=base_info,
                       in_focus_pass_through=not args.restore_all, offset_unit=unit)
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
