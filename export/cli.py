"""``virtualfocus export``: a training run (or an untrained registry model) → a model folder.

A restoring generator becomes a restoring model (ONNX static + dynamic, OpenVINO IR fp32/fp16/INT8; see
:mod:`virtualfocus.export.exporter`). A ``focus-distance-classifier`` run becomes a defocus estimator (static ONNX +
OpenVINO IR at the crop it was trained on, manifest task "defocus"; see :mod:`virtualfocus.export.classifier`),
which the runtime uses to flag captures outside a model's trusted range.

Examples
--------
::

    virtualfocus export runs/fast-001 --out models/vf-fast
    virtualfocus export runs/cls-001 --out models/vf-focus-distance
    virtualfocus export --arch pix2pix-dist-fast --set decoder=resize-conv --out models/vf-fast --untrained
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from virtualfocus.edge.errors import InputError, VirtualFocusError

from .data import Calibration, ValidationSet
from .exporter import MAX_FILE_MB, PRECISIONS

__all__ = ["build_parser", "main", "parse_overrides"]


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["filters=16", "decoder=resize-conv"]`` → ``{"filters": 16, "decoder": "resize-conv"}`` (JSON values, else str)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise InputError(f"--set {item!r}: expected KEY=VALUE, e.g. --set decoder=resize-conv")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="virtualfocus export", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", nargs="?", help="training or compression run directory (with config.json + checkpoint)")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best",
                   help="which checkpoint of RUN: best (lowest validation loss, default) or last (a run that never "
                        "validated has only last)")
    p.add_argument("--arch", help="registry name to export untrained (with --untrained), instead of RUN")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="spec field override for --arch (repeatable)")
    p.add_argument("--untrained", action="store_true", help="export freshly initialised weights (labelled trained=false)")
    p.add_argument("--seed", type=int, default=0, help="weight initialisation seed for --untrained (default 0)")
    p.add_argument("--out", required=True, help="model folder to create, e.g. models/vf-fast")
    p.add_argument("--name", help="variant name (default: the --out folder name)")
    p.add_argument("--precisions", default=",".join(PRECISIONS),
                   help=f"comma-separated subset of {','.join(PRECISIONS)} (default all; fp32 always written; "
                        "generators only: a defocus classifier ships fp32)")
    p.add_argument("--calib-stacks", type=int, default=Calibration.stacks, help="simulated stacks for INT8 calibration")
    p.add_argument("--val-stacks", type=int, default=ValidationSet.stacks, help="simulated validation stacks")
    p.add_argument("--size", type=int, default=360,
                   help="capture side for the static file and latency (default 360); for a focus-distance classifier, "
                        "the side of the validation captures (its static input is the crop it was trained on)")
    p.add_argument("--latency-runs", type=int, default=30, help="timed runs per file after 5 warm-ups (default 30)")
    p.add_argument("--threads", type=int, default=None, help="inference threads for measurements")
    p.add_argument("--no-accuracy-control", action="store_true",
                   help="plain nncf.quantize instead of quantize_with_accuracy_control")
    p.add_argument("--first-last", choices=("auto", "float", "int8"), default="auto",
                   help="INT8 treatment of the first and last convolution: auto = quantize, fall back to float if "
                        "the quality limits are missed (default); float; int8")
    p.add_argument("--max-file-mb", type=float, default=MAX_FILE_MB, help=f"largest file allowed (default {MAX_FILE_MB})")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    p.add_argument("--quiet", action="store_true")
    return p


def _load_module(args: argparse.Namespace) -> tuple[Any, Any, str, bool, dict[str, Any]]:
    """(module, spec, architecture, trained, training provenance)."""
    if args.arch:
        if args.run:
            raise InputError("give either RUN or --arch NAME --untrained, not both")
        if not args.untrained:
            raise InputError("--arch exports freshly initialised weights; add --untrained to confirm")
        import torch
        from virtualfocus.training.registry import create_model, get_spec

        overrides = parse_overrides(args.overrides)
        try:
            spec = get_spec(args.arch, **overrides)
        except KeyError as e:
            raise InputError(f"--arch {args.arch!r}: {e.args[0] if e.args else e}") from e
        torch.manual_seed(args.seed)
        module = create_model(args.arch, **overrides)
        return module, spec, args.arch, False, {"untrained": True, "seed": args.seed, "overrides": overrides}
    if not args.run:
        raise InputError("missing RUN directory (or --arch NAME --untrained)")
    if args.untrained or args.overrides:
        raise InputError("--untrained and --set only apply with --arch")
    import dataclasses

    from virtualfocus.training.checkpoint import load_run

    loaded = load_run(args.run, which=args.checkpoint)
    prov: dict[str, Any] = {"run": str(Path(args.run).resolve()), "checkpoint": str(loaded.path),
                            "step": loaded.step, "config": dataclasses.asdict(loaded.config)}
    if loaded.compression:
        prov["compression"] = {k: v for k, v in loaded.compression.items() if k != "report"}
    return loaded.generator, loaded.spec, getattr(loaded.spec, "name", "unknown"), True, prov


def _describe(arch: str, trained: bool, prov: dict[str, Any]) -> str:
    if not trained:
        return f"{arch}, UNTRAINED (random weights, seed {prov.get('seed')}): restores nothing; for pipeline tests"
    comp = prov.get("compression") or {}
    if comp.get("recipe"):
        return f"{arch} made by compression recipe {comp['recipe']} from {comp.get('teacher', {}).get('run', '?')}"
    return f"{arch} trained for {prov.get('step')} steps ({prov.get('run')})"


def _classifier_task(spec: Any, arch: str) -> tuple[list[float], int] | None:
    """(classes_um, crop) when ``spec`` is a signed focus-distance classifier; None for a generator.

    Raises
    ------
    InputError
        A classifier that cannot serve as a defocus estimator (blur-type classes, magnitude-only offsets).
    """
    if getattr(spec, "task", "restore") != "classify":
        return None
    offsets = getattr(spec, "offsets_um", None)
    if offsets is None:
        raise InputError(f"{arch}: a {type(spec).__name__} classifies blur types, not focus offsets; only a "
                         "focus-distance classifier (e.g. focus-distance-classifier) exports as a defocus estimator")
    if getattr(spec, "absolute", False):
        raise InputError(f"{arch}: classifies |offset| (absolute=True); the runtime needs a signed defocus "
                         "estimate: export a focus-distance-classifier run (signed offsets)")
    return [float(o) for o in offsets], int(spec.crop)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``virtualfocus export``; returns a process exit code."""
    args = build_parser().parse_args(argv)
    try:
        from .exporter import export_model

        precisions = tuple(p.strip() for p in args.precisions.split(",") if p.strip())
        module, spec, arch, trained, prov = _load_module(args)
        out = Path(args.out)
        log = None if args.quiet else (lambda m: print(f"[export] {m}", file=sys.stderr))
        cls_task = _classifier_task(spec, arch)
        if cls_task is not None:
            from .classifier import export_defocus_classifier

            classes, crop = cls_task
            crop = int((prov.get("config") or {}).get("crop") or crop)  # a run may train at another crop
            m = export_defocus_classifier(
                module, out_dir=out, name=args.name or out.name, architecture=arch, classes_um=classes, crop=crop,
                spec=spec, trained=trained, training=prov,
                validation=ValidationSet(stacks=args.val_stacks, size=args.size),
                latency_runs=args.latency_runs, threads=args.threads, max_file_mb=args.max_file_mb,
                overwrite=args.overwrite, log=log,
                description=(_describe(arch, trained, prov) if trained else
                             f"{arch}, UNTRAINED (random weights, seed {prov.get('seed')}): its defocus estimates "
                             "mean nothing; for pipeline tests") + " (defocus estimator)",
            )
            q = m.quality.scores("openvino/fp32") or {}
            lat = ", ".join(f"{k} p50 {v['p50']:.2f} ms" for k, v in m.latency_ms.items())
            print(f"{out}: defocus estimator, {len(m.files)} files, trained={m.trained}, crop {crop}, "
                  f"{len(classes)} classes {classes[0]:+.1f}…{classes[-1]:+.1f} µm; accuracy {q.get('accuracy')}, "
                  f"MAE {q.get('mae_um')} µm on held-out simulated stacks; {lat}")
            return 0
        m = export_model(
            module, out_dir=out, name=args.name or out.name, architecture=arch, spec=spec, trained=trained,
            training=prov, precisions=precisions, size=args.size,
            calibration=Calibration(stacks=args.calib_stacks, size=args.size),
            validation=ValidationSet(stacks=args.val_stacks, size=args.size),
            ignore_first_last={'auto': None, 'float': True, 'int8': False}[args.first_last], accuracy_control=not args.no_accuracy_control,
            latency_runs=args.latency_runs, threads=args.threads, max_file_mb=args.max_file_mb,
            overwrite=args.overwrite, log=log, description=_describe(arch, trained, prov),
        )
    except VirtualFocusError as e:
        print(f"virtualfocus export: error: {e}", file=sys.stderr)
        return 2
    lat = ", ".join(f"{k} p50 {v['p50']:.2f} ms" for k, v in m.latency_ms.items())
    print(f"{out}: {len(m.files)} files, trained={m.trained}; {lat}")
    for f, why in m.compression.dropped.items():
        print(f"  not shipped: {f}: {why}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
