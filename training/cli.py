"""``virtualfocus train``: train a registry variant (or a saved config) on stacks.

Examples::

    virtualfocus train focus-distance-classifier --data stacks/ --out runs/cls --steps 5000
    virtualfocus train pix2pix-dist-fast --data stacks/ --out runs/fast --set distance_classifier=runs/cls
    virtualfocus train pix2pix-dist-fast --data sim:8:128 --out /tmp/t --steps 20 --crop 64 \
        --set adversarial=none --set lambda_distance=0
    virtualfocus train runs/fast/config.json --data stacks/ --out runs/fast2      # same settings, new run
    virtualfocus train pix2pix-dist-fast --data stacks/ --out runs/fast --resume --steps 200000
    torchrun --nproc_per_node 2 -m virtualfocus.training.cli pix2pix-dist-fast --data stacks/ --out runs/ddp

``--set key=value`` sets any TrainConfig field or spec field (``virtualfocus train --list`` shows the models;
``--show NAME`` prints a spec's fields).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from virtualfocus.edge.errors import VirtualFocusError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="virtualfocus train",
        description="Train a model of the registry on z-stacks (folders in the edge.stack format, or sim:N[:SIZE]).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("Examples::", 1)[1] if __doc__ else None,
    )
    p.add_argument("model", nargs="?", help="registry name (see --list) or a run's config.json")
    p.add_argument("--data", action="append", default=[], metavar="DIR|sim:N[:SIZE[:SEED]]",
                   help="stack folder(s) or simulated stacks; repeat for several")
    p.add_argument("--out", metavar="RUN_DIR", help="run directory to create (or continue with --resume)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="default auto: CUDA when available")
    p.add_argument("--steps", type=int, help="total generator updates")
    p.add_argument("--batch-size", type=int, help="per-process batch (default: the paper's)")
    p.add_argument("--crop", type=int, help="crop side in pixels (default: the paper's)")
    p.add_argument("--val-every", type=int, help="validate every N steps (0 = never)")
    p.add_argument("--max-minutes", type=float, help="wall-clock budget for this invocation")
    p.add_argument("--seed", type=int)
    p.add_argument("--workers", type=int, help="DataLoader workers (default: min(2, cores - 1))")
    p.add_argument("--resume", action="store_true", help="continue RUN_DIR from checkpoints/last.pt")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a TrainConfig or spec field (repeatable)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--list", action="store_true", help="list registered models and exit")
    p.add_argument("--show", metavar="NAME", help="print the spec fields of NAME as JSON and exit")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def _pairs(items: Sequence[str], parser: argparse.ArgumentParser) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            parser.error(f"--set {item!r}: expected KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``virtualfocus train``; returns the exit status (0 ok, 2 usage/input error)."""
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from .registry import get_spec, list_models

    if args.list:
        for name in list_models():
            print(f"{name:28s} {get_spec(name).notes}")
        return 0
    if args.show:
        try:
            print(json.dumps(dataclasses.asdict(get_spec(args.show)), indent=1))
        except KeyError as e:
            print(f"virtualfocus train: {e.args[0]}", file=sys.stderr)
            return 2
        return 0
    if not args.model or not args.out:
        parser.error("MODEL and --out are required (or use --list / --show NAME)")
    if not args.data and not args.resume and args.model in list_models():
        parser.error("--data is required: a folder of stacks or sim:N[:SIZE]")

    from .config import TrainConfig, apply_overrides, read_run_config
    from .trainer import train

    try:
        source = Path(args.model)
        if args.resume:
            cfg, spec, _ = read_run_config(args.out)
            if spec.name != args.model and not args.model.endswith(".json"):
                print(f"virtualfocus train: --resume: {args.out} trained {spec.name!r}, not {args.model!r}",
                      file=sys.stderr)
                return 2
        elif args.model not in list_models() and (args.model.endswith(".json") or source.is_dir()):
            run_dir = source if source.is_dir() else source.parent
            cfg, spec, _ = read_run_config(run_dir)
            cfg = dataclasses.replace(cfg, data=tuple(args.data) or cfg.data)
        else:
            spec = get_spec(args.model)
            cfg = TrainConfig(model=spec.name, data=tuple(args.data))
        flags = {"device": args.device, "steps": args.steps, "batch_size": args.batch_size, "crop": args.crop,
                 "val_every": args.val_every, "max_minutes": args.max_minutes, "seed": args.seed,
                 "workers": args.workers}
        overrides: dict[str, object] = {k: v for k, v in flags.items() if v is not None}
        overrides.update(_pairs(args.set, parser))
        if args.no_progress:
            overrides["progress"] = False
        if args.resume and args.data:
            overrides["data"] = tuple(args.data)
        cfg, spec = apply_overrides(cfg, spec, overrides)
        state = train(cfg, spec, args.out, resume=args.resume)
    except KeyError as e:
        print(f"virtualfocus train: {e.args[0]}", file=sys.stderr)
        return 2
    except VirtualFocusError as e:
        print(f"virtualfocus train: {e}", file=sys.stderr)
        return 2
    best = f"{state.best_val:.5g} at step {state.best_step}" if state.best_val is not None else "n/a"
    print(f"{spec.name}: {state.stopped} at step {state.step}; best validation loss {best}; run in {args.out}")
    return 0


if __name__ == "__main__":  # torchrun -m virtualfocus.training.cli ...
    raise SystemExit(main())
