"""The runtime's own commands: ``virtualfocus restore`` and ``virtualfocus models``.

Torch-free and simulator-free, like the rest of :mod:`virtualfocus.edge`; the ``virtualfocus`` command that
dispatches to these and to the other stages' commands is :mod:`virtualfocus.cli`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import VirtualFocusError

__all__ = ["cmd_models", "cmd_restore"]


# -- restore ---------------------------------------------------------------------------------------------------


def _expand_inputs(items: Sequence[str]) -> list[Path]:
    from .imageio import READ_EXTENSIONS

    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            out += sorted(q for q in p.iterdir() if q.suffix.lower() in READ_EXTENSIONS and q.is_file())
        else:
            out.append(p)
    return out


def cmd_restore(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="virtualfocus restore", description="Restore defocused captures.")
    ap.add_argument("inputs", nargs="+", help="image files (PNG/TIFF/JPEG/BMP) or folders of them")
    ap.add_argument("--out", required=True, help="output folder; each result keeps its file name")
    ap.add_argument("--model", default=None, help="shipped variant name, model folder or .xml/.onnx (default: shipped default)")
    ap.add_argument("--backend", choices=["openvino", "onnxruntime"], default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--budget-ms", type=float, default=1e9,
                    help="latency budget for the guard (default: none, batch restoration never steps down)")
    ap.add_argument("--json", dest="json_path", default=None, help="also write per-file results as JSON here")
    ap.add_argument("--defocus-estimator", default="auto", metavar="auto|none|PATH",
                    help="flag captures outside the model's trusted defocus range with this focus-distance classifier "
                         "(default auto: the shipped one, if any; none: off)")
    args = ap.parse_args(argv)

    from .imageio import read_image, write_image_atomic
    from .policy import describe_untrusted
    from .runtime import FocusRuntime

    files = _expand_inputs(args.inputs)
    if not files:
        print("virtualfocus restore: no input images found", file=sys.stderr)
        return 1
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    estimator = None if args.defocus_estimator.lower() == "none" else args.defocus_estimator
    rt = FocusRuntime.load(args.model, backend=args.backend, budget_ms=args.budget_ms, threads=args.threads,
                           ladder=False, defocus_estimator=estimator)
    print(f"model: {rt.load_report}")
    results: list[dict[str, Any]] = []
    failed, untrusted, latencies = 0, 0, []
    for f in files:
        target = out_dir / f.name
        try:
            if target.resolve() == f.resolve():
                raise VirtualFocusError(f"{f}: output would overwrite the input; choose another --out folder")
            img = read_image(f)
            frame = rt.restore(img)
            write_image_atomic(target, frame.image)
        except VirtualFocusError as e:
            failed += 1
            print(f"error: {e}", file=sys.stderr)
            results.append({"input": str(f), "ok": False, "error": str(e)})
            continue
        latencies.append(frame.latency_ms)
        if frame.trusted is False:
            untrusted += 1
            lo, hi = rt.trusted_range(next((e for e in rt.engines if e is not None and e.name == frame.variant), None))
            assert frame.defocus is not None
            print(f"warning: {f}: {describe_untrusted(frame.defocus, (lo, hi), model=frame.variant)}; restored, but do "
                  "not rely on the output", file=sys.stderr)
        results.append({"input": str(f), "output": str(target), "ok": True, "status": frame.status.value,
                        "latency_ms": round(frame.latency_ms, 3), "variant": frame.variant,
                        "defocus_um": None if frame.defocus_um is None else round(frame.defocus_um, 4),
                        "trusted": frame.trusted})
    rt.close()
    ok = len(files) - failed
    lat = f"; latency p50 {np.percentile(latencies, 50):.1f} ms, max {max(latencies):.1f} ms" if latencies else ""
    flagged = f", {untrusted} outside the trusted defocus range" if untrusted else ""
    print(f"restored {ok} of {len(files)} file(s) into {out_dir}" + (f", {failed} failed" if failed else "") + flagged
          + lat)
    if args.json_path:
        from .manifest import write_json_atomic

        write_json_atomic(Path(args.json_path), {"results": results})
    return 1 if failed else 0


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
    for name in ship.variants:
        try:
            m = Manifest.load(root / name)
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
            "quality": m.quality,
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
        q = r["quality"] or {}
        rep = q.get("report") or {}
        est: dict[str, Any] = next((q[k] for k in ("openvino/fp32", "onnxruntime/fp32") if isinstance(q.get(k), dict)),
                                   {})
        if r["task"] == "defocus" and est.get("mae_um") is not None:
            c = r["classes_um"]
            print(" " * 23 + f"defocus estimator, classes {c[0]:+.1f}…{c[-1]:+.1f} µm: accuracy "
                  f"{100 * est['accuracy']:.1f}%, MAE {est['mae_um']:.2f} µm (held-out simulated stacks)")
        elif rep.get("success_mse_08") is not None:
            # As shipped (in-focus captures returned untouched) when the report measured that, else the model alone.
            dep = rep.get("deployed") if isinstance(rep.get("deployed"), dict) else None
            shown = dep if dep and dep.get("success_mse_08") is not None else rep
            how = "as shipped" if shown is dep else "model alone"
            fr = shown.get("fr_range") or rep.get("fr_range") or [float("nan")] * 2
            print(" " * 23 + f"quality (held-out simulated stacks, {how}): success MSE at -0.8…0.8 µm "
                  f"{shown['success_mse_08']:.1f}%, FR {fr[0]:.2f}…{fr[1]:.2f}, trusted "
                  f"{rep.get('trusted_defocus_um')} µm")
        else:
            paths = [k for k in q if "/" in k and isinstance(q[k], dict)]
            if paths and "input" in q:
                v = q[paths[0]]
                print(" " * 23 + f"quality ({paths[0]}, validation set): PSNR {v.get('psnr')} dB (input "
                      f"{q['input'].get('psnr')}), success MSE {v.get('success_mse')}")
    return 0
