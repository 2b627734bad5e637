"""Structured channel pruning with Torch-Pruning (DepGraph), with a per-step report.

DepGraph groups every layer whose channels are coupled (a convolution, its batch norm, the skip concatenation
feeding the decoder, the next convolution's inputs), so removing a channel keeps the U-Net consistent. NNCF 3.x
has no structured pruning for PyTorch, hence Torch-Pruning.

What is never pruned: the first convolution's output and the output layer (``ignore_first_last``), and
convolutions feeding a ``PixelShuffle`` (their channels are interleaved 4:1 with the next layer's, which DepGraph
does not model). Kept channel counts are rounded to ``round_to`` (8 or 16: what AVX-512/VNNI kernels like).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from virtualfocus.edge.errors import InputError

from .recipes import IMPORTANCES

__all__ = ["PruneStep", "conv_widths", "count_stats", "protected_layers", "prune_generator"]


@dataclass
class PruneStep:
    """One row of the pruning report (step 0 = before pruning)."""

    step: int
    params: int
    gflops: float
    latency_ms: float | None
    quality: dict[str, float] = field(default_factory=dict)
    finetune_loss: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _convs(model: Any) -> list[Any]:
    from torch import nn

    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]


def conv_widths(model: Any) -> dict[str, int]:
    """Output channels of every convolution, by module name."""
    from torch import nn

    return {n: int(m.out_channels) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))}


def protected_layers(model: Any, example: Any, *, ignore_first_last: bool = True) -> list[Any]:
    """Layers whose output channels must not change (see module notes), found by running ``example``."""
    import torch
    from torch import nn

    order: list[Any] = []
    hooks = [m.register_forward_hook(lambda mod, _i, _o: order.append(mod)) for m in _convs(model)]
    try:
        with torch.no_grad():
            was = model.training
            model.eval()(example)
            model.train(was)
    finally:
        for h in hooks:
            h.remove()
    keep = [order[0], order[-1]] if ignore_first_last and order else []
    for m in model.modules():
        if isinstance(m, nn.Sequential):
            kids = list(m)
            keep += [a for a, b in itertools.pairwise(kids) if isinstance(b, nn.PixelShuffle) and a in order]
    return keep


def count_stats(model: Any, example: Any) -> tuple[int, float]:
    """(parameters, GFLOPs) for one ``example`` input (FLOPs counted by torch: 2 per multiply-add)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    was = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(example)
    model.train(was)
    return sum(p.numel() for p in model.parameters()), fc.get_total_flops() / 1e9


def _latency(model: Any, example: Any, runs: int) -> float | None:
    import numpy as np
    import torch

    if runs <= 0:
        return None
    model.eval()
    times = []
    with torch.no_grad():
        model(example)
        for _ in range(runs):
            t0 = time.perf_counter()
            model(example)
            times.append((time.perf_counter() - t0) * 1e3)
    return round(float(np.median(times)), 3)


def _importance(name: str) -> Any:
    import torch_pruning as tp

    if name == "l1":
        return tp.importance.GroupMagnitudeImportance(p=1)
    if name == "l2":
        return tp.importance.GroupMagnitudeImportance(p=2)
    if name == "bn-scale":
        return tp.importance.BNScaleImportance()
    raise InputError(f"importance={name!r}; expected one of {IMPORTANCES}")


def prune_generator(
    model: Any,
    *,
    ratio: float,
    example: Any,
    round_to: int = 8,
    importance: str = "l2",
    global_pruning: bool = False,
    layer_ratios: dict[str, float] | None = None,
    iterative_steps: int = 1,
    ignore_first_last: bool = True,
    finetune: Callable[[Any, int], float | None] | None = None,
    evaluate: Callable[[Any], dict[str, float]] | None = None,
    stats_input: Any = None,
    latency_runs: int = 5,
    log: Callable[[str], None] | None = None,
) -> list[PruneStep]:
    """Prune ``model`` in place in ``iterative_steps`` steps, fine-tuning after each; returns the report.

    Parameters
    ----------
    model : torch.nn.Module
    ratio : float
        Target fraction of channels removed (reached at the last step).
    example : torch.Tensor
        An input the dependency graph is traced with (small is fine).
    round_to, importance, global_pruning, layer_ratios, ignore_first_last
        See :class:`~virtualfocus.compression.recipes.PruneRecipe`.
    finetune : callable, optional
        ``finetune(model, step) -> loss`` run after every pruning step.
    evaluate : callable, optional
        ``evaluate(model) -> {metric: value}`` for the report.
    stats_input : torch.Tensor, optional
        Input for GFLOPs and latency (default ``example``); e.g. ``(1, 3, 368, 368)``.
    latency_runs : int
        Timed torch forward passes per step (0 = skip).

    Raises
    ------
    InputError
        A ratio outside (0, 1), or a layer name in ``layer_ratios`` the model does not have.
    """
    import torch
    import torch_pruning as tp

    say = log or (lambda _m: None)
    if not 0.0 < ratio < 1.0:
        raise InputError(f"ratio={ratio}; expected 0 < ratio < 1")
    named = dict(model.named_modules())
    per_layer = {}
    for name, r in (layer_ratios or {}).items():
        if name not in named:
            raise InputError(f"layer_ratios: no layer named {name!r}; layers: {', '.join(list(named)[1:12])} …")
        if not 0.0 <= r < 1.0:
            raise InputError(f"layer_ratios[{name!r}]={r}; expected 0 ≤ ratio < 1")
        per_layer[named[name]] = r
    stats_input = example if stats_input is None else stats_input

    def row(step: int, loss: float | None) -> PruneStep:
        params, gflops = count_stats(model, stats_input)
        was = model.training
        with torch.no_grad():
            q = evaluate(model.eval()) if evaluate else {}
        model.train(was)
        r = PruneStep(step=step, params=int(params), gflops=round(gflops, 4),
                      latency_ms=_latency(model, stats_input, latency_runs), quality=q, finetune_loss=loss)
        say(f"prune step {step}: {r.params:,} params, {r.gflops:.3f} GFLOPs, torch p50 {r.latency_ms} ms, {q}")
        return r

    report = [row(0, None)]
    model.eval()
    pruner = tp.pruner.MetaPruner(
        model, example, importance=_importance(importance), pruning_ratio=ratio,
        pruning_ratio_dict=per_layer or None, global_pruning=global_pruning, round_to=round_to,
        iterative_steps=iterative_steps,
        ignored_layers=protected_layers(model, example, ignore_first_last=ignore_first_last),
    )
    for step in range(1, iterative_steps + 1):
        with torch.no_grad():
            pruner.step()
        loss = finetune(model, step) if finetune else None
        report.append(row(step, loss))
    model.eval()
    return report
