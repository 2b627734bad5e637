"""The standard evaluation suite: one report that every later change is measured by.

    virtualfocus evaluate --suite standard --model vf-quality --out DIR [--real STACKS ...] [--cache DIR]

scores the runtime **as shipped** (:class:`~virtualfocus.edge.runtime.FocusRuntime` with its in-focus
pass-through; no latency budget, so a busy machine cannot change the scores) and three classical baselines on
the same planes of

* ``simulated`` — held-out simulator stacks (seeds 900000 + i, never used for training; 360×360 windows around
  the white cell, as the thesis evaluated);
* ``bccd`` — semi-synthetic stacks made from held-out real BCCD smear fields (the last images by name; training
  used the first 60), when the images are present (``--bccd``, default ``../shared/data/bccd``);
* every real stack it is given (``--real``: a folder of stacks written by ``virtualfocus import-stacks``, or a
  folder of raw fields, imported on the fly into the cache); by default the urjc-s1 stack in
  ``../shared/data/real-focus-stacks`` when present. Real stacks without a known z step are scored per plane
  step (−k … +k), not per µm.

Baselines: unsharp masking and Richardson–Lucy (Gaussian PSF), both tuned on *other* stacks than those scored,
and the physics oracle (Wiener with the optics model's own PSF at the true defocus; only where the optics are
known). Per set the report gives PSNR/SSIM/FR/FPW per focus level, the mean PSNR gain over the input, the levels
where a method is worse than its input, the thesis's success tables, and the captures the runtime returned
untouched as in focus, with plots. Generated stacks are cached under ``--cache`` (default
``~/.cache/virtualfocus/suite``). A set whose source is absent is skipped and the report says so.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from virtualfocus.edge.errors import InputError
from virtualfocus.zstacks.stack import ZStack, iter_stacks, write_stack

from .evaluate import EvaluationResult, evaluate, level_options
from .report import atomic_write, write_report

__all__ = ["SUITES", "EvalSet", "SuiteResult", "SuiteSpec", "build_sets", "main", "run_suite",
           "write_suite_report"]

log = logging.getLogger("virtualfocus")
ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
IN_FOCUS = "in-focus"


@dataclass(frozen=True, kw_only=True)
class SuiteSpec:
    """Sizes and seeds of a suite (small enough for the whole suite to run in a few minutes on 2 cores)."""

    name: str
    sim_stacks: int = 8
    sim_seed: int = 900_000  #: held out: training simulates seeds 0 … 399 (scripts/make-training-data.sh)
    sim_tune: int = 3
    sim_tune_seed: int = 950_000
    bccd_stacks: int = 6
    bccd_tune: int = 2
    bccd_seed: int = 7_000
    crop: int = 360


SUITES = {"standard": SuiteSpec(name="standard")}


@dataclass
class EvalSet:
    """Stacks scored together, and the other stacks the baselines are tuned on."""

    key: str
    title: str
    stacks: list[ZStack]
    tune: list[ZStack]
    unit: str = "um"  #: "um", or "plane" (plane steps; the z step is unknown)
    crop: int | None = None
    note: str = ""


@dataclass
class SuiteResult:
    """One :class:`EvaluationResult` per set, the sets skipped (key → why) and provenance."""

    model: str
    results: dict[str, EvaluationResult]
    sets: dict[str, EvalSet]
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------ the sets
def _cached(folder: Path, names: Sequence[str], make: Callable[[str], ZStack]) -> list[ZStack]:
    """Read ``folder/<name>.tif`` for every name, generating (and caching) those that are missing."""
    from virtualfocus.zstacks.stack import read_stack

    out = []
    for n in names:
        f = folder / f"{n}.tif"
        if f.is_file():
            try:
                out.append(read_stack(f))
                continue
            except InputError as e:
                log.warning("suite cache: regenerating %s (%s)", f, e)
        s = make(n)
        write_stack(f, s)
        out.append(s)
    return out


def _simulated(spec: SuiteSpec, cache: Path) -> EvalSet:
    from virtualfocus.simulation.simulate import GENERATOR_VERSION, simulate_stack

    folder = cache / f"simulated-{GENERATOR_VERSION}"
    test = [f"test-{spec.sim_seed + i}" for i in range(spec.sim_stacks)]
    tune = [f"tune-{spec.sim_tune_seed + i}" for i in range(spec.sim_tune)]

    def make(n: str) -> ZStack:
        return simulate_stack(int(n.split("-")[1]), name=n)

    return EvalSet("simulated", f"held-out simulated stacks (seeds {spec.sim_seed}…)",
                   _cached(folder, test, make), _cached(folder, tune, make), crop=spec.crop,
                   note=f"simulator {GENERATOR_VERSION}; baselines tuned on seeds {spec.sim_tune_seed}…")


def _bccd(spec: SuiteSpec, cache: Path, images: Path) -> EvalSet:
    import cv2
    from virtualfocus.simulation.semisynthetic import semisynthetic_stack
    from virtualfocus.simulation.simulate import GENERATOR_VERSION

    files = sorted(f for f in images.iterdir() if f.suffix.lower() in (".jpg", ".jpeg", ".png"))
    n = spec.bccd_stacks + spec.bccd_tune
    if len(files) < n + 60:
        raise InputError(f"{images}: {len(files)} images; the suite holds out the last {n} of more than 60")
    chosen = {f"semi-{f.stem}": f for f in files[-n:]}  # training used the first 60 (make-training-data.sh)
    names = list(chosen)

    def make(name: str) -> ZStack:
        f = chosen[name]
        img = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if img is None:
            raise InputError(f"{f}: unreadable image")
        return semisynthetic_stack(np.ascontiguousarray(img[..., ::-1]), spec.bccd_seed + names.index(name),
                                   name=name, source=str(f))

    folder = cache / f"bccd-{GENERATOR_VERSION}"
    return EvalSet("bccd", "semi-synthetic held-out BCCD fields",
                   _cached(folder, names[spec.bccd_tune :], make), _cached(folder, names[: spec.bccd_tune], make),
                   crop=spec.crop, note=f"images {files[-n].name} … {files[-1].name} (held out); "
                   f"baselines tuned on the first {spec.bccd_tune} of them")


def _real(src: Path, cache: Path) -> EvalSet:
    """Real stacks: already imported (TIFF + sidecar) or raw fields, imported into the cache first."""
    stacks = list(iter_stacks(src, on_error="skip")) if src.is_dir() and any(src.glob("*.json")) else []
    how = "imported stacks"
    if not stacks:
        from virtualfocus.zstacks.importer import import_stacks

        dst = cache / "real" / src.name
        reused = _imported_before(src, dst)
        if reused:
            return _real_set(src, reused, f"imported from raw fields into {dst} (reused)")
        results = import_stacks(src, dst)
        bad = [r.line() for r in results if not r.ok]
        for line in bad:
            log.warning("suite: %s", line)
        stacks = [s for s in iter_stacks(dst, on_error="skip") if s.name in {r.name for r in results if r.ok}]
        how = f"imported from raw fields into {dst}" + (f"; {len(bad)} field(s) failed" if bad else "")
    return _real_set(src, stacks, how)


def _imported_before(src: Path, dst: Path) -> list[ZStack]:
    """The stacks a previous suite run imported from ``src``, if every one still matches its source files."""
    import hashlib

    from virtualfocus.zstacks.importer import find_fields

    if not dst.is_dir():
        return []
    stacks = list(iter_stacks(dst, on_error="skip"))
    if len(stacks) != len(find_fields(src)):  # a field added, or one that failed before: import again
        return []
    for s in stacks:
        root = Path(str(s.meta.get("source_path", "")))
        files = [root / f for f in s.meta.get("files", [])] if root.is_dir() else [root]
        sums = s.meta.get("files_sha256", [])
        if (not str(root).startswith(str(src.resolve())) or len(files) != len(sums)
                or any(not f.is_file() or hashlib.sha256(f.read_bytes()).hexdigest() != h
                       for f, h in zip(files, sums, strict=True))):
            return []
    return stacks


def _real_set(src: Path, stacks: list[ZStack], how: str) -> EvalSet:
    if not stacks:
        raise InputError(f"{src}: no real stacks (neither imported stacks nor importable fields)")
    units = {s.meta.get("offset_unit", "um") for s in stacks}
    unit = "plane" if "plane" in units else "um"
    if len(units) > 1:  # scored together, so in one unit: plane steps
        stacks = [_in_planes(s) for s in stacks]
    label = stacks[0].name if len(stacks) == 1 else src.name
    return EvalSet(f"real:{label}", f"real stack{'s' if len(stacks) > 1 else ''} {label}", stacks, [], unit=unit,
                   note=f"{len(stacks)} stack(s), {how}; baselines tuned on the simulated and BCCD tuning stacks")


def _in_planes(s: ZStack) -> ZStack:
    if s.meta.get("offset_unit") == "plane":
        return s
    return ZStack(s.planes, np.arange(len(s)) - s.sharp_index, s.sharp_index, name=s.name,
                  meta={**s.meta, "offset_unit": "plane"})


def build_sets(spec: SuiteSpec, cache: Path, *, real: Sequence[Path] = (), bccd: Path | None = None,
               shared: Path = SHARED) -> tuple[list[EvalSet], dict[str, str]]:
    """The suite's sets, and those skipped (key → why); ``shared`` is where the default sources live."""
    sets: list[EvalSet] = [_simulated(spec, cache)]
    skipped: dict[str, str] = {}
    images = bccd if bccd is not None else shared / "bccd" / "BCCD" / "JPEGImages"
    if images.is_dir():
        sets.append(_bccd(spec, cache, images))
    else:
        skipped["bccd"] = f"source absent: {images} (give --bccd DIR of BCCD JPEGImages)"
    sources = list(real)
    if not sources:
        default = shared / "real-focus-stacks"
        if default.is_dir():
            sources = [default]
        else:
            skipped["real"] = f"no real stacks given (--real DIR) and {default} is absent"
    for src in sources:
        try:
            sets.append(_real(Path(src), cache))
        except InputError as e:
            skipped[f"real:{Path(src).name}"] = str(e)
    return sets, skipped


# ------------------------------------------------------------------------------------------------ running
def _runtime(model: str, *, pass_in_focus: bool) -> tuple[Callable[[np.ndarray], Any], str]:
    """The runtime as shipped: ``rt.restore`` returns frames, whose statuses the evaluation records."""
    from virtualfocus.edge.models import resolve_model
    from virtualfocus.edge.runtime import FocusRuntime

    src = resolve_model(model)
    if src.manifest.input.inputs != 1:
        raise InputError(f"--model {model}: a two-shot model; the suite scores single-capture models "
                         "(use `virtualfocus evaluate --data` for pairs)")
    rt = FocusRuntime.load(model, budget_ms=1e9, pass_in_focus=pass_in_focus)
    return rt.restore, (Path(model).name if Path(model).exists() else model)


def _baselines(ev: EvalSet, fallback: Sequence[ZStack], physics: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Unsharp masking and Richardson-Lucy tuned on the set's tuning stacks (else ``fallback``), and physics."""
    from .baselines import tune_richardson_lucy, tune_unsharp
    from .evaluate import _centre_crop

    tune = [_centre_crop(s, ev.crop) for s in ev.tune] if ev.tune else list(fallback)
    fns: dict[str, Any] = {}
    info: dict[str, Any] = {}
    for tuned in (tune_unsharp(tune), tune_richardson_lucy(tune)):
        fns[tuned.name] = tuned
        info[tuned.name] = {**tuned.params, "validation_mse": round(tuned.validation_mse, 4),
                            "tuned_on": [s.name for s in tune]}
    if physics is not None:
        fns[physics.name] = physics
        info[physics.name] = {**physics.params, "validation_mse": round(physics.validation_mse, 4),
                              "applies": "stacks with known optics (simulated, semi-synthetic); not real stacks"}
    return fns, info


def _level_options(ev: EvalSet) -> dict[str, Any]:
    top = max(float(np.max(np.abs(s.offsets_um - s.offsets_um[s.sharp_index]))) for s in ev.stacks)
    return level_options(ev.unit, top)


def run_suite(model: str, sets: Sequence[EvalSet], *, pass_in_focus: bool = True,
              skipped: dict[str, str] | None = None) -> SuiteResult:
    """Score the runtime with ``model`` and the baselines on every set (see the module notes)."""
    from .baselines import tune_physics

    fn, name = _runtime(model, pass_in_focus=pass_in_focus)
    tuning = [s for ev in sets for s in ev.tune]
    physics_tune = [s for s in tuning if isinstance(s.meta.get("optics"), dict)]
    physics = tune_physics(physics_tune) if physics_tune else None
    res = SuiteResult(name, {}, {}, dict(skipped or {}), info={"model": model, "in_focus_pass_through": pass_in_focus})
    fallback = [_crop_for_tuning(s) for s in tuning]  # for sets without tuning stacks of their own (real)
    for ev in sets:
        t0, c0 = time.perf_counter(), time.process_time()
        fns, base_info = _baselines(ev, fallback, physics)
        r = evaluate(fn, ev.stacks, name=name, baselines=fns, crop=ev.crop, **_level_options(ev))
        r.info.update(model=model, data=ev.title, baselines=base_info, in_focus_pass_through=pass_in_focus,
                      offset_unit=ev.unit, note=ev.note)
        res.results[ev.key] = r
        res.sets[ev.key] = ev
        res.seconds[ev.key] = round(time.perf_counter() - t0, 1)
        res.cpu_seconds[ev.key] = round(time.process_time() - c0, 1)
        log.info("suite: %s scored in %.0f s", ev.key, res.seconds[ev.key])
    return res


def _crop_for_tuning(s: ZStack) -> ZStack:
    from .evaluate import _centre_crop

    return _centre_crop(s, 360) if min(s.planes.shape[1:3]) >= 360 else s


# ------------------------------------------------------------------------------------------------ summary
def _defocused(r: EvaluationResult) -> np.ndarray:
    return np.abs(r.levels) > 1e-6


def set_summary(r: EvaluationResult) -> dict[str, Any]:
    """Per method: mean PSNR gain over the input (defocused levels), per-level gain, levels worse than input,
    success per interval; and the runtime's untouched captures per level."""
    psnr_in = r.scores["input"]["PSNR"]
    methods: dict[str, Any] = {}
    model = r.info.get("method", r.methods[1])
    for k in r.methods:
        if k == "input":
            continue
        gain = r.scores[k]["PSNR"] - psnr_in
        with np.errstate(all="ignore"):
            per_level = np.array([np.nanmean(c) if np.isfinite(c).any() else np.nan for c in gain.T])
        d = gain[:, _defocused(r)]
        methods[k] = {
            "mean_psnr_gain_db": round(float(np.nanmean(d)), 3) if np.isfinite(d).any() else None,
            "psnr_gain_per_level_db": [None if not np.isfinite(v) else round(float(v), 3) for v in per_level],
            "worse_than_input_at": [round(float(lv), 1) for lv, g in zip(r.levels, per_level, strict=True)
                                    if abs(lv) > 1e-6 and np.isfinite(g) and g < -0.005],
            "success_pct": {m: {iv: (None if not np.isfinite(v) else round(float(v), 1))
                                for iv, v in t.per_interval.items()} for m, t in r.success.get(k, {}).items()},
            "scored": bool(np.isfinite(d).any()),
        }
    n = len(r.stacks)
    untouched = r.status_counts(model, IN_FOCUS)
    return {
        "stacks": r.stacks, "unit": r.info.get("offset_unit", "um"), "levels": [round(float(v), 2) for v in r.levels],
        "methods": methods,
        "untouched_in_focus": [int(v) for v in untouched],
        "untouched_defocused": int(untouched[_defocused(r)].sum()),
        "defocused_captures": int(np.sum(np.isfinite(psnr_in[:, _defocused(r)]))),
        "n_stacks": n,
        "per_level_mean": {k: {m: [None if not np.isfinite(v) else round(float(v), 5) for v in vals]
                               for m, vals in r.level_table(k).items()} for k in r.methods},
    }


# ------------------------------------------------------------------------------------------------ report
def _folder(key: str) -> str:
    return key.replace(":", "-").replace("/", "-")


def _g(v: float | None, unit: str = "") -> str:
    return "–" if v is None else f"{v:+.2f}{unit}"


def _summary_md(res: SuiteResult, sums: dict[str, dict[str, Any]]) -> list[str]:
    methods = [k for k in next(iter(sums.values()))["methods"]] if sums else []
    out = ["| set | stacks | levels | " + " | ".join(methods)
           + " | returned untouched (defocused) | time (CPU) |",
           "|---|---|---|" + "---|" * len(methods) + "---|---|"]
    for key, sm in sums.items():
        cells = [_g(sm["methods"][k]["mean_psnr_gain_db"], " dB") for k in methods]
        unit = "planes" if sm["unit"] == "plane" else "µm"
        lv = sm["levels"]
        out.append(f"| {key} | {sm['n_stacks']} | {lv[0]:+g}…{lv[-1]:+g} {unit} | " + " | ".join(cells)
                   + f" | {sm['untouched_defocused']} of {sm['defocused_captures']} | {res.seconds[key]:.0f} s "
                   f"({res.cpu_seconds[key]:.0f} s) |")
    return out


def _set_md(key: str, r: EvaluationResult, sm: dict[str, Any], ev: EvalSet) -> list[str]:
    unit = "planes" if sm["unit"] == "plane" else "µm"
    model = r.info["method"]
    methods = list(sm["methods"])
    t = sm["per_level_mean"]
    out = [f"## {key}: {ev.title}", "", f"{len(r.stacks)} stack(s): {', '.join(r.stacks[:8])}"
           + ("…" if len(r.stacks) > 8 else "") + f". {ev.note}." + (f" Skipped: {r.skipped}." if r.skipped else ""),
           "", f"Full thesis tables (6.1, 6.2, 7.1, appendix A), focus curves and image panels: "
           f"[{_folder(key)}/report.md]({_folder(key)}/report.md).", ""]
    out += ["| method | mean PSNR gain | worse than its input at | success MSE " +
            " / ".join(next(iter(sm["methods"].values()))["success_pct"].get("MSE", {})) + " |", "|---|---|---|---|"]
    for k in methods:
        m = sm["methods"][k]
        if not m["scored"]:
            out.append(f"| {k} | not applicable (no optics model for these stacks) | | |")
            continue
        worse = ", ".join(f"{v:+g}" for v in m["worse_than_input_at"]) + f" {unit}" if m["worse_than_input_at"] \
            else "no level"
        sr = " / ".join("–" if v is None else f"{v:.0f}" for v in m["success_pct"].get("MSE", {}).values())
        out.append(f"| {k} | {_g(m['mean_psnr_gain_db'], ' dB')} | {worse} | {sr} |")
    out += ["", f"Per focus level (mean over stacks). PSNR in dB; SSIM, FR, FPW of {model}; untouched = captures "
            "the runtime returned as already in focus.", ""]
    head = ["level", "input PSNR", *[f"{k} PSNR" for k in methods], f"{model} SSIM", f"{model} FR",
            f"{model} FPW", "input FPW", "untouched"]
    out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    def c(k: str, m: str, j: int, fmt: str = ".2f") -> str:
        v = t[k][m][j]
        return "–" if v is None else format(v, fmt)

    for j, lv in enumerate(sm["levels"]):
        row = [f"{lv:+g} {unit}", c("input", "PSNR", j), *[c(k, "PSNR", j) for k in methods],
               c(model, "SSIM", j, ".4f"), c(model, "FR", j, ".3f"), c(model, "FPW", j, ".4g"),
               c("input", "FPW", j, ".4g"),
               f"{sm['untouched_in_focus'][j]}/{sm['n_stacks']}"]
        out.append("| " + " | ".join(row) + " |")
    out.append("")
    return out


def _plot(res: SuiteResult, sums: dict[str, dict[str, Any]], out: Path) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    n = len(sums)
    fig, axes = plt.subplots(2, n, figsize=(5.2 * n, 6.4), squeeze=False,
                             gridspec_kw={"height_ratios": [3, 1]}, sharex="col")
    styles = ["s-", "o-", "^-", "v-", "d-"]
    for col, (key, sm) in enumerate(sums.items()):
        ax, bx = axes[0][col], axes[1][col]
        ax.axhline(0, color="black", lw=1, label="input")
        for i, (k, m) in enumerate(sm["methods"].items()):
            if m["scored"]:
                y = [np.nan if v is None else v for v in m["psnr_gain_per_level_db"]]
                ax.plot(sm["levels"], y, styles[i % 5], ms=4, label=k)
        ax.set_title(f"{key} ({sm['n_stacks']} stacks)", fontsize=10)
        ax.set_ylabel("PSNR gain over input (dB)")
        ax.grid(alpha=0.3)
        bx.bar(sm["levels"], np.array(sm["untouched_in_focus"]) / max(sm["n_stacks"], 1),
               width=0.6 * (np.min(np.diff(sm["levels"])) if len(sm["levels"]) > 1 else 1), color="tab:gray")
        bx.set_ylim(0, 1.05)
        bx.set_ylabel("untouched")
        bx.set_xlabel("focus level (" + ("planes" if sm["unit"] == "plane" else "µm") + ")")
        bx.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"standard suite: {res.model} and baselines (top), captures the runtime returned untouched "
                 "as in focus (bottom, fraction of stacks)", fontsize=10)
    fd_name = "psnr_gain_vs_level.png"
    tmp = out / f".{fd_name}.tmp.png"
    fig.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, out / fd_name)
    return fd_name


def write_suite_report(res: SuiteResult, out_dir: str | os.PathLike[str], *, command: str = "") -> Path:
    """Write ``report.md``, ``report.json``, ``psnr_gain_vs_level.png`` and one full report per set."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sums = {k: set_summary(r) for k, r in res.results.items()}
    for k, r in res.results.items():
        write_report(r, out / _folder(k))
    plot = _plot(res, sums, out)
    md = [f"# Standard evaluation suite: {res.model}", "",
          f"The runtime as shipped (`FocusRuntime.load({res.info['model']!r})`, in-focus pass-through "
          f"{'on' if res.info['in_focus_pass_through'] else 'off'}, no latency budget) and three baselines on "
          "the same planes. Mean PSNR gain over the input, over every defocused level (the ground-truth level "
          "excluded); the physics baseline is an oracle (the optics model's PSF at the true defocus).", ""]
    if command:
        md += [f"Command: `{command}`", ""]
    md += [*_summary_md(res, sums), ""]
    if plot:
        md += [f"![PSNR gain per level]({plot})", ""]
    if res.skipped:
        md += ["Skipped sets:", ""] + [f"- {k}: {v}" for k, v in res.skipped.items()] + [""]
    for k, r in res.results.items():
        md += _set_md(k, r, sums[k], res.sets[k])
        bi = r.info.get("baselines", {})
        md += ["Baselines: " + "; ".join(f"{b} {json.dumps({x: y for x, y in v.items() if x != 'tuned_on'})}"
                                          for b, v in bi.items()), ""]
    atomic_write(out / "report.md", "\n".join(md).encode())
    data = {"model": res.model, "info": res.info, "command": command, "skipped": res.skipped,
            "sets": {k: {**sums[k], "seconds": res.seconds[k], "cpu_seconds": res.cpu_seconds[k], "note": res.sets[k].note,
                         "title": res.sets[k].title, "baselines": res.results[k].info.get("baselines", {})}
                     for k in sums}}
    atomic_write(out / "report.json", json.dumps(data, indent=1).encode())
    return out / "report.md"


# ------------------------------------------------------------------------------------------------------- CLI
def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The suite's options on ``virtualfocus evaluate``."""
    ap.add_argument("--suite", choices=sorted(SUITES), default=None,
                    help="run a named evaluation suite instead of --data (see README: evaluation suite)")
    ap.add_argument("--cache", default=os.path.join("~", ".cache", "virtualfocus", "suite"),
                    help="suite: folder for generated stacks (default ~/.cache/virtualfocus/suite)")
    ap.add_argument("--real", action="append", default=[],
                    help="suite: real stacks (imported, or raw fields to import); repeat for several sources")
    ap.add_argument("--bccd", default=None, help="suite: folder of BCCD images (default ../shared/data/bccd/...)")


def main(args: argparse.Namespace, command: str = "") -> int:
    """Run the suite for parsed ``virtualfocus evaluate --suite`` arguments."""
    spec = SUITES[args.suite]
    cache = Path(os.path.expanduser(args.cache))
    t0, c0 = time.perf_counter(), time.process_time()
    sets, skipped = build_sets(spec, cache, real=[Path(p) for p in args.real],
                               bccd=Path(args.bccd) if args.bccd else None)
    prep = time.perf_counter() - t0
    res = run_suite(args.model, sets, pass_in_focus=not args.restore_all, skipped=skipped)
    res.info["preparation_s"] = round(prep, 1)
    res.info["total_s"] = round(time.perf_counter() - t0, 1)
    res.info["total_cpu_s"] = round(time.process_time() - c0, 1)
    md = write_suite_report(res, args.out, command=command)
    print(f"suite {spec.name}: {res.model} on {len(res.results)} sets in {res.info['total_s']:.0f} s "
          f"({res.info['total_cpu_s']:.0f} s CPU) "
          f"(stacks ready in {prep:.0f} s) -> {md}")
    for key, r in res.results.items():
        sm = set_summary(r)
        gains = ", ".join(f"{k} {_g(m['mean_psnr_gain_db'], ' dB')}" for k, m in sm["methods"].items())
        print(f"  {key:<18s} PSNR gain over input: {gains}; untouched {sm['untouched_defocused']} of "
              f"{sm['defocused_captures']} defocused captures")
    for k, v in skipped.items():
        print(f"  {k:<18s} skipped: {v}")
    return 0
