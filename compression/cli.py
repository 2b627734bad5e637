"""``virtualfocus compress``: a trained teacher run + a recipe → a student run (same layout as training runs).

Examples
--------
::

    virtualfocus compress --teacher runs/full --recipe pix2pix-dist-fast --out runs/fast --steps 2000
    virtualfocus compress --teacher runs/full --recipe pix2pix-dist-pruned-50 --out runs/pruned50
    virtualfocus export runs/fast --out models/vf-fast

The student run holds ``config.json`` (spec + config as a training run), ``checkpoints/best.pt`` and ``last.pt``
(``"pruned": true`` when channel widths differ from the spec), ``log.csv`` and ``compression.json`` (recipe,
teacher, per-step report, teacher vs student quality).
"""

from __future__ import annotations

import argparse
import copy
import csv
import dataclasses
import datetime as _dt
import sys
import time
from pathlib import Path
from typing import Any

from virtualfocus.edge.errors import InputError, VirtualFocusError

from .recipes import DistillRecipe, PruneRecipe, Recipe, get_recipe, list_recipes

__all__ = ["build_parser", "compress", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="virtualfocus compress", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", help="trained run directory (config.json + checkpoints/)")
    p.add_argument("--teacher-checkpoint", choices=("best", "last"), default="best",
                   help="the teacher run's checkpoint to distil from (default best)")
    p.add_argument("--recipe", help="recipe name (see --list)")
    p.add_argument("--out", help="student run directory to create")
    p.add_argument("--steps", type=int, help="override the recipe's optimiser steps")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe field, e.g. --set crop=96 (repeatable)")
    p.add_argument("--data", help="folder of stacks, or sim:N[:SIZE[:SEED]] (default sim:16:256:0)")
    p.add_argument("--eval-stacks", type=int, default=2, help="simulated stacks for the quality report (default 2)")
    p.add_argument("--eval-size", type=int, default=256, help="side of the evaluation images (default 256)")
    p.add_argument("--stats-size", type=int, default=360, help="capture side for GFLOPs/latency (default 360)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch threads")
    p.add_argument("--device", default="auto", help="auto (CUDA with bf16 autocast when present, else CPU), cpu or cuda")
    p.add_argument("--max-minutes", type=float, help="stop distilling after this many minutes (the steps done are recorded)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--list", action="store_true", help="list recipes and exit")
    p.add_argument("--quiet", action="store_true")
    return p


def _pool(data: str | None, *, seed: int, crop: int) -> tuple[list[Any], str]:
    from .data import load_pool

    if data is None or data.startswith("sim:"):
        parts = (data or f"sim:16:{max(256, crop)}:{seed}").split(":")
        try:
            n = int(parts[1])
            size = int(parts[2]) if len(parts) > 2 else max(256, crop)
            s = int(parts[3]) if len(parts) > 3 else seed
        except (IndexError, ValueError):
            raise InputError(f"--data {data!r}: expected a folder or sim:N[:SIZE[:SEED]]") from None
        return load_pool(None, stacks=n, size=size, seed=s), f"sim:{n}:{size}:{s}"
    return load_pool(data), str(Path(data).resolve())


def _student_spec(recipe: DistillRecipe, teacher_spec: Any) -> Any:
    if recipe.student_model:
        from virtualfocus.training.registry import get_spec

        try:
            spec = get_spec(recipe.student_model, **recipe.overrides)
        except KeyError as e:
            raise InputError(f"recipe {recipe.name!r}: {e.args[0]}") from None
        if int(getattr(spec, "inputs", 1)) != int(getattr(teacher_spec, "inputs", 1)):
            raise InputError(f"recipe {recipe.name!r}: student {spec.name!r} takes {spec.inputs} capture(s), teacher "
                             f"{teacher_spec.name!r} {teacher_spec.inputs}")
        return spec
    if not all(hasattr(teacher_spec, k) for k in ("filters", "levels", "kernel")):
        raise InputError(f"recipe {recipe.name!r} reduces a U-Net generator; teacher {teacher_spec.name!r} has no "
                         "filters/levels/kernel (not a pix2pix-style generator)")
    try:
        return dataclasses.replace(teacher_spec, **recipe.overrides)
    except (TypeError, ValueError) as e:
        raise InputError(f"recipe {recipe.name!r} does not fit teacher {teacher_spec.name!r}: {e}") from e


def compress(teacher_dir: str | Path, recipe: Recipe, out: str | Path, *, data: str | None = None, seed: int = 0,
             eval_stacks: int = 2, eval_size: int = 256, stats_size: int = 360, overwrite: bool = False,
             log: Any = None, device: str = "auto", max_minutes: float | None = None,
             teacher_checkpoint: str = "best") -> Path:
    """Run ``recipe`` on the teacher run and write the student run directory atomically.

    Distillation runs on ``device`` (``"auto"``: CUDA with bf16 autocast when PyTorch sees a GPU), quality and
    statistics on the CPU; ``max_minutes`` ends distillation early on the wall clock (the steps done are recorded).

    Raises
    ------
    ModelLoadError
        Missing or corrupt teacher checkpoint/config.
    InputError
        A recipe that does not fit the teacher, bad data, an existing ``out`` without ``overwrite``.
    """
    import torch
    from virtualfocus.export.data import ValidationSet, simulated_stacks
    from virtualfocus.export.onnx_export import padded_size
    from virtualfocus.export.parity import torch_runner
    from virtualfocus.export.quality import default_metrics, evaluate_quality
    from virtualfocus.training.checkpoint import load_run
    from virtualfocus.training.config import RunState, TrainConfig
    from virtualfocus.training.trainer import resolve_device

    from .data import PairSampler
    from .distill import distill
    from .prune import count_stats, prune_generator

    say = log or (lambda _m: None)
    dev = resolve_device(device)
    out = Path(out)
    if out.exists() and not overwrite:
        raise InputError(f"{out}: already exists; pass --overwrite to replace it")
    teacher = load_run(teacher_dir, which=teacher_checkpoint)
    t_spec, t_net = teacher.spec, teacher.generator
    inputs = int(getattr(t_spec, "inputs", 1))
    torch.manual_seed(seed)
    s_spec, student, pruned = _make_student(recipe, t_spec, t_net)
    # Both networks must run on the training crops: round the crop up to a multiple of both pad multiples
    # (an 8-level teacher needs 256).
    import math

    ms, mt = int(student.pad_multiple), int(t_net.pad_multiple)
    mult = ms * mt // math.gcd(ms, mt)
    crop = -(-recipe.crop // mult) * mult
    if crop != recipe.crop:
        say(f"crop {recipe.crop} → {crop} (multiple of the teacher's and the student's pad multiples)")
    pool, data_desc = _pool(data, seed=seed, crop=crop)
    sampler = PairSampler(pool, crop=crop, batch_size=recipe.batch_size, inputs=inputs,
                          max_defocus_um=recipe.max_defocus_um, seed=seed)
    val = ValidationSet(stacks=eval_stacks, size=eval_size, seed=2000)
    val_stacks = simulated_stacks(val.stacks, seed=val.seed, size=val.size)
    metrics = default_metrics()

    def quality(net: Any) -> dict[str, float]:
        q = evaluate_quality(torch_runner(net), val_stacks, multiple=int(net.pad_multiple), metrics=metrics,
                             interval_um=val.interval_um, inputs=inputs)
        return {k: q[k] for k in ("psnr", "ssim", "fr", "fpw", "success_mse", "success_fpw")}

    kw = {"lr": recipe.lr, "lambda_teacher": recipe.lambda_teacher, "lambda_gt": recipe.lambda_gt,
          "lambda_feature": recipe.lambda_feature, "log": say, "log_every": min(500, max(1, recipe.steps // 10)),
          "device": dev, "max_seconds": None if max_minutes is None else 60.0 * max_minutes}
    losses: list[Any] = []
    t0 = time.time()
    s_pad = padded_size(stats_size, int(student.pad_multiple))
    stats_x = torch.zeros(1, 3 * inputs, s_pad, s_pad)
    report: list[dict[str, Any]] = []
    if pruned:
        assert isinstance(recipe, PruneRecipe)
        per_step = recipe.steps // recipe.iterative_steps

        def finetune(net: Any, _step: int) -> float | None:
            if per_step == 0:
                return None
            h = distill(net, t_net, sampler, steps=per_step, **kw)
            losses.extend(h)
            return h[-1].total

        n_ex = -(-32 // ms) * ms  # smallest multiple of the pad multiple ≥ 32: tracing needs no more
        ex = torch.zeros(1, 3 * inputs, n_ex, n_ex)
        rows = prune_generator(student, ratio=recipe.ratio, example=ex, round_to=recipe.round_to,
                               importance=recipe.importance, global_pruning=recipe.global_pruning,
                               layer_ratios=dict(recipe.layer_ratios), iterative_steps=recipe.iterative_steps,
                               ignore_first_last=recipe.ignore_first_last, finetune=finetune, evaluate=quality,
                               stats_input=stats_x, latency_runs=3, log=say)
        report = [r.to_dict() for r in rows]
    else:
        params, gflops = count_stats(student, stats_x)
        before = {"step": 0, "params": params, "gflops": round(gflops, 4), "quality": quality(student)}
        losses = distill(student, t_net, sampler, steps=recipe.steps, **kw) if recipe.steps else []
        report = [before, {"step": len(losses), "params": params, "gflops": round(gflops, 4),
                           "quality": quality(student),
                           "finetune_loss": losses[-1].total if losses else None}]
    t_pad = padded_size(stats_size, int(t_net.pad_multiple))
    t_params, t_gflops = count_stats(t_net, torch.zeros(1, 3 * inputs, t_pad, t_pad))
    summary = {
        "recipe": recipe.name, "method": recipe.method, "recipe_fields": recipe.fields(),
        "teacher": {"run": str(Path(teacher_dir).resolve()), "checkpoint": str(teacher.path),
                    "step": teacher.step, "spec": t_spec.name, "params": t_params, "gflops": round(t_gflops, 4),
                    "quality": quality(t_net)},
        "student": {"params": report[-1]["params"], "gflops": report[-1]["gflops"], "quality": report[-1]["quality"],
                    "pruned": pruned},
        "data": data_desc, "validation": val.describe(), "stats_size": [s_pad, s_pad], "report": report,
        "seconds": round(time.time() - t0, 1),
        "created": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    steps = len(losses)
    summary["crop"] = crop
    summary["device"] = str(dev)
    cfg = TrainConfig(model=s_spec.name, data=(data_desc,), device="cpu", steps=steps, batch_size=recipe.batch_size,
                      crop=crop, seed=seed, val_every=0, amp=False, progress=False)
    payload = {"models": {"model": student.state_dict()}, "step": steps, "pruned": pruned, "recipe": recipe.name}
    _write_student_run(out, overwrite=overwrite, config=cfg, spec=s_spec,
                       state=RunState(step=steps, stopped=f"compress {recipe.name} done"), payload=payload,
                       losses=losses, summary=summary)
    say(f"wrote {out}")
    return out


def _make_student(recipe: Recipe, t_spec: Any, t_net: Any) -> tuple[Any, Any, bool]:
    """(student spec, student network, pruned): a fresh reduced network, or a copy of the teacher to prune."""
    import torch

    if isinstance(recipe, DistillRecipe):
        s_spec = _student_spec(recipe, t_spec)
        return s_spec, s_spec.build(), False
    if isinstance(recipe, PruneRecipe):
        if not any(isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) for m in t_net.modules()):
            raise InputError(f"recipe {recipe.name!r}: teacher {t_spec.name!r} has no convolutions to prune")
        return t_spec, copy.deepcopy(t_net), True
    raise InputError(f"recipe {recipe.name!r}: unknown method {recipe.method!r}")


def _write_student_run(out: Path, *, overwrite: bool, config: Any, spec: Any, state: Any,
                       payload: dict[str, Any], losses: list[Any], summary: dict[str, Any]) -> None:
    """The student run folder, atomically: config.json, best/last checkpoints, log.csv, compression.json."""
    from virtualfocus.edge.manifest import write_json_atomic
    from virtualfocus.export._fs import atomic_folder
    from virtualfocus.training.checkpoint import save_checkpoint
    from virtualfocus.training.config import write_run_config

    with atomic_folder(out, overwrite=overwrite) as tmp:
        write_run_config(tmp, config, spec, state)
        save_checkpoint(tmp / "checkpoints" / "best.pt", payload)
        save_checkpoint(tmp / "checkpoints" / "last.pt", payload)
        with (tmp / "log.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["step", "loss", "teacher_l1", "gt_l1", "feature_l1"])
            for i, h in enumerate(losses, 1):
                w.writerow([i, f"{h.total:.6f}", f"{h.teacher:.6f}", f"{h.gt:.6f}", f"{h.feature:.6f}"])
        write_json_atomic(tmp / "compression.json", summary)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``virtualfocus compress``; returns a process exit code."""
    args = build_parser().parse_args(argv)
    if args.list:
        for name in list_recipes():
            r = get_recipe(name)
            print(f"{name:34s} {r.method:8s} {r.description}")
        return 0
    try:
        missing = [f"--{k}" for k in ("teacher", "recipe", "out") if not getattr(args, k)]
        if missing:
            raise InputError(f"missing {', '.join(missing)}")
        from virtualfocus.export.cli import parse_overrides

        over = parse_overrides(args.overrides)
        if args.steps is not None:
            over["steps"] = args.steps
        try:
            recipe = get_recipe(args.recipe, **over)
        except KeyError as e:
            raise InputError(str(e.args[0])) from None
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        log = None if args.quiet else (lambda m: print(f"[compress] {m}", file=sys.stderr))
        out = compress(args.teacher, recipe, args.out, data=args.data, seed=args.seed, eval_stacks=args.eval_stacks,
                       eval_size=args.eval_size, stats_size=args.stats_size, overwrite=args.overwrite, log=log,
                       device=args.device, max_minutes=args.max_minutes,
                       teacher_checkpoint=args.teacher_checkpoint)
    except VirtualFocusError as e:
        print(f"virtualfocus compress: error: {e}", file=sys.stderr)
        return 2
    print(f"{out}: student run written; export it with `virtualfocus export {out} --out models/NAME`")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
