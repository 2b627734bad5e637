"""The runtime's own commands: ``virtualfocus restore`` and ``virtualfocus models``.

Torch-free and simulator-free, like the rest of :mod:`virtualfocus.edge`; the ``virtualfocus`` command that
dispatches to these and to the other stages' commands is :mod:`virtualfocus.cli`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import VirtualFocusError

if TYPE_CHECKING:
    from .manifest import Manifest

__all__ = ["cmd_fuse", "cmd_models", "cmd_restore"]


# -- restore ---------------------------------------------------------------------------------------------------


def cmd_restore(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="virtualfocus restore",
        description="Restore defocused captures: image files, folders, glob patterns, and multi-page TIFF / OME-TIFF "
                    "z-stacks and time series (restored plane by plane into the same layout).")
    ap.add_argument("inputs", nargs="+", help="image files (PNG/TIFF/JPEG/BMP), folders of them, or glob patterns")
    ap.add_argument("--out", required=True, help="output folder; each result keeps its file name (and a folder "
                                                 "input's relative paths)")
    ap.add_argument("--recursive", action="store_true", help="also restore images in sub-folders of folder inputs")
    ap.add_argument("--skip-existing", action="store_true", help="leave outputs that already exist alone (resume)")
    ap.add_argument("--model", default=None, help="shipped variant name, model folder or .xml/.onnx (default: shipped default)")
    ap.add_argument("--backend", choices=["openvino", "onnxruntime"], default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--budget-ms", type=float, default=None,
                    help="latency budget for the guard (default: none, batch restoration never steps down)")
    ap.add_argument("--json", dest="json_path", default=None, help="also write per-file results as JSON here")
    ap.add_argument("--defocus-estimator", default="auto", metavar="auto|none|PATH",
                    help="flag captures outside the model's trusted defocus range with this focus-distance classifier "
                         "(default auto: the shipped one, if any; none: off)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar (none is shown when piped anyway)")
    args = ap.parse_args(argv)

    from .batch import discover, restore_batch
    from .defocus import DefocusEstimate
    from .policy import describe_untrusted
    from .runtime import FocusRuntime

    out_dir = Path(args.out)
    items = discover(args.inputs, out_dir, recursive=args.recursive)
    if not items:
        print("virtualfocus restore: no input images found", file=sys.stderr)
        return 1
    for it in items:
        if it.dst.resolve() == it.src.resolve():
            raise VirtualFocusError(f"{it.src}: output would overwrite the input; choose another --out folder")
    estimator = None if args.defocus_estimator.lower() == "none" else args.defocus_estimator
    budget = 1e9 if args.budget_ms is None else args.budget_ms
    rt = FocusRuntime.load(args.model, backend=args.backend, budget_ms=budget, threads=args.threads,
                           ladder=False, defocus_estimator=estimator)
    try:
        print(f"model: {rt.load_report}")
        variants = {e.name: e for e in rt.engines if e is not None}

        def warn(item: Any, k: int, n: int, res: Any) -> None:
            if res.trusted is False:
                lo, hi = rt.trusted_range(variants.get(res.variant))
                where = f"{item.src}" + (f" plane {k}" if n > 1 else "")
                why = describe_untrusted(DefocusEstimate(res.defocus_um, res.signed), (lo, hi), model=res.variant)
                print(f"warning: {where}: {why}; restored, but do not rely on the output", file=sys.stderr)

        summary = restore_batch(rt, items, skip_existing=args.skip_existing,
                                progress=False if args.no_progress else None, on_plane=warn)
    finally:
        rt.close()
    print(f"{summary.line()} into {out_dir}")
    if args.json_path:
        from .manifest import write_json_atomic

        write_json_atomic(Path(args.json_path), {"results": summary.results, "summary": {
            "files": summary.files, "done": summary.files_done, "failed": summary.files_failed,
            "skipped": summary.files_skipped, "images": summary.planes, "in_focus": summary.in_focus,
            "untrusted": summary.untrusted, "wall_s": round(summary.wall_s, 3)}})
    if summary.interrupted:
        print(f"virtualfocus restore: stopped by a signal after {summary.files_done} of {summary.files} file(s); "
              "no partial files were written (rerun with --skip-existing to continue)", file=sys.stderr)
        return 143
    return 1 if summary.files_failed else 0


# -- fuse ------------------------------------------------------------------------------------------------------


def cmd_fuse(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="virtualfocus fuse",
        description="Fuse captures of one field at different focus into one all-in-focus image (per-pixel focus "
                    "measure, consistency filter, Laplacian-pyramid blending).")
    ap.add_argument("inputs", nargs="+", help="two or more registered captures of one field (PNG/TIFF/JPEG/BMP), or "
                                              "one multi-page TIFF z-stack")
    ap.add_argument("--out", required=True, help="output image file (its extension picks the format)")
    ap.add_argument("--window", type=int, default=9, help="side of the sharpness-comparison window in px (default 9)")
    args = ap.parse_args(argv)

    from .batch import read_tiff, split_planes
    from .errors import InputError
    from .fusion import fuse_planes
    from .imageio import read_image, write_image_atomic

    paths = [Path(p) for p in args.inputs]
    if len(paths) == 1 and paths[0].suffix.lower() in (".tif", ".tiff"):
        td = read_tiff(paths[0])
        planes, _ = split_planes(td.array, td.axes, paths[0])
        captures = list(planes)
    else:
        captures = [read_image(p) for p in paths]
    if args.window < 1:
        raise InputError(f"--window {args.window}; expected a positive number of pixels")
    fused = fuse_planes(captures, window=args.window)
    out = Path(args.out)
    if out.resolve() in {p.resolve() for p in paths}:
        raise InputError(f"--out {out} is one of the inputs; choose another file")
    write_image_atomic(out, fused)
    print(f"fused {len(captures)} captures into {out}")
    return 0


# -- models ----------------------------------------------------------------------------------------------------


def cmd_models(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="virtualfocus models", description="List the shipped model variants.")
    ap.add_argument("--json", action="store_true", help="machine-readable output")
    args = ap.parse_args(argv)

    from .manifest import Manifest
    from .models import models_root, shipped

    root = models_root()
    ship = shipped(root)
    rows: list[dict[str, Any]] = []
    manifests: dict[str, Manifest] = {}
    for name in ship.variants:
        try:
            m = manifests[name] = Manifest.load(root / name)
        except VirtualFocusError as e:
            rows.append({"name": name, "error": str(e)})
            continue
        roles = [r for r, v in (("default", ship.default), ("two-shot", ship.two_shot),
                                ("defocus estimator", ship.defocus_estimator)) if v == name]
        if name in ship.ladder:
            roles.append(f"ladder #{ship.ladder.index(name) + 1}")
        rows.append({
            "name": name,
            "roles": roles,
            "architecture": m.architecture,
            "trained": m.trained,
            "params": m.params,
            "gflops_360": m.gflops_360,
            "files": [{"path": f.path, "backend": f.backend, "precision": f.precision, "bytes": f.bytes}
                      for f in m.files],
            "latency_ms": m.latency_ms,
            "quality": m.quality.to_dict(),
            "trusted_defocus_um": m.trusted_defocus_um,
            "task": m.task,
            "classes_um": list(m.classes_um),
            "description": m.description,
        })
    if args.json:
        print(json.dumps({"default": ship.default, "ladder": list(ship.ladder), "two_shot": ship.two_shot,
                          "defocus_estimator": ship.defocus_estimator, "models": rows}, indent=2))
        return 0
    print(f"{'name':<22} {'architecture':<24} {'trained':<9} {'params':>9} {'GFLOP@360':>9}  latency p50 (ms)       roles")
    for r in rows:
        if "error" in r:
            print(f"{r['name']:<22} ERROR: {r['error']}")
            continue
        fastest = sorted(r["latency_ms"].items(), key=lambda kv: kv[1].get("p50", float("inf")))[:3]
        lat = ", ".join(f"{k} {v.get('p50', float('nan')):.1f}" for k, v in fastest)  # the three fastest paths
        trained = "yes" if r["trained"] else "UNTRAINED"
        print(f"{r['name']:<22} {r['architecture']:<24} {trained:<9} {r['params']:>9,} {r['gflops_360']:>9.2f}  "
              f"{lat or '-':<22} {', '.join(r['roles'])}")
        line = _quality_line(manifests[r["name"]])
        if line:
            print(" " * 23 + line)
    return 0


def _quality_line(m: Manifest) -> str:
    """One line on what a model's manifest says of its quality ("" when it measured nothing)."""
    q = m.quality
    est = q.scores("openvino/fp32") or q.scores("onnxruntime/fp32") or {}
    if m.task == "defocus" and est.get("mae_um") is not None:
        c = m.classes_um
        return (f"defocus estimator, classes {c[0]:+.1f}…{c[-1]:+.1f} µm: accuracy {100 * est['accuracy']:.1f}%, "
                f"MAE {est['mae_um']:.2f} µm (held-out simulated stacks)")
    rep = q.report
    if rep is not None and rep.success_mse_08 is not None:
        # As shipped (in-focus captures returned untouched) when the report measured that, else the model alone.
        shown = rep.shown
        how = "as shipped" if shown is rep.deployed else "model alone"
        fr = shown.fr_range or rep.fr_range or (float("nan"), float("nan"))
        trusted = None if rep.trusted_defocus_um is None else list(rep.trusted_defocus_um)
        return (f"quality (held-out simulated stacks, {how}): success MSE at -0.8…0.8 µm {shown.success_mse_08:.1f}%, "
                f"FR {fr[0]:.2f}…{fr[1]:.2f}, trusted {trusted} µm")
    paths = [k for k in q.measured if k != "input"]
    inp = q.scores("input")
    if paths and inp is not None:
        v = q.measured[paths[0]]
        return (f"quality ({paths[0]}, validation set): PSNR {v.get('psnr')} dB (input {inp.get('psnr')}), "
                f"success MSE {v.get('success_mse')}")
    return ""
