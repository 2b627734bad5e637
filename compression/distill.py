"""Knowledge distillation from a trained generator into a smaller (or pruned) one.

Loss (per batch, all L1)::

    λ_teacher · |S(x) − T(x)|  +  λ_gt · |S(x) − y|  +  λ_feature · mean_k |A_k(s_k) − t_k|

where ``s_k``/``t_k`` are encoder features of equal spatial size and ``A_k`` a learned 1×1 convolution from the
student's to the teacher's channels (FitNets-style hints). The teacher runs in eval mode without gradients.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from virtualfocus.edge.errors import InputError

__all__ = ["DistillStep", "Distiller", "distill", "encoder_blocks"]


def encoder_blocks(model: Any) -> list[Any]:
    """The blocks whose outputs are matched: ``model.encoder`` for our U-Nets, ``model.encoders`` for NAFNet (one
    stage per resolution); [] for other networks."""
    enc = getattr(model, "encoder", None)
    if enc is None:
        enc = getattr(model, "encoders", None)
    return list(enc) if enc is not None else []


class _Tap:
    def __init__(self, blocks: list[Any]):
        self.out: list[Any] = []
        self.handles = [b.register_forward_hook(lambda _m, _i, o: self.out.append(o)) for b in blocks]

    def take(self) -> list[Any]:
        out, self.out = self.out, []
        return out

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


@dataclass
class DistillStep:
    """Losses of one optimiser step."""

    step: int
    total: float
    teacher: float
    gt: float
    feature: float


class Distiller:
    """Student + frozen teacher + feature adapters; :meth:`loss` computes the distillation loss of a batch.

    Parameters
    ----------
    student, teacher : torch.nn.Module
        Same input and output channels; the teacher is put in eval mode and frozen.
    probe_size : int
        Side of the probe input used to pair features by spatial size (a multiple of both pad multiples).
    lambda_teacher, lambda_gt, lambda_feature : float
    """

    def __init__(self, student: Any, teacher: Any, *, lambda_teacher: float = 1.0, lambda_gt: float = 1.0,
                 lambda_feature: float = 0.5, probe_size: int | None = None) -> None:
        import math

        import torch
        from torch import nn

        self.student, self.teacher = student, teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.lt, self.lg, self.lf = lambda_teacher, lambda_gt, lambda_feature
        in_ch = _in_channels(student)
        if _in_channels(teacher) != in_ch:
            raise InputError(f"student takes {in_ch} input channels, teacher {_in_channels(teacher)}; "
                             "the recipe does not fit the teacher")
        ms, mt = getattr(student, "pad_multiple", 16), getattr(teacher, "pad_multiple", 16)
        n = probe_size or max(64, ms * mt // math.gcd(ms, mt))
        self.s_tap, self.t_tap = _Tap(encoder_blocks(student)), _Tap(encoder_blocks(teacher))
        was = student.training
        student.eval()
        with torch.no_grad():
            x = torch.zeros(1, in_ch, n, n)
            ys, yt = student(x), self.teacher(x)
        student.train(was)
        if ys.shape != yt.shape:
            raise InputError(f"student output {tuple(ys.shape)} ≠ teacher output {tuple(yt.shape)}; "
                             "the recipe does not fit the teacher")
        s_feats, t_feats = self.s_tap.take(), self.t_tap.take()
        t_by_size = {tuple(f.shape[-2:]): (k, f.shape[1]) for k, f in enumerate(t_feats)}
        self.pairs: list[tuple[int, int]] = []
        adapters = []
        for k, f in enumerate(s_feats):
            hit = t_by_size.get(tuple(f.shape[-2:]))
            if hit is not None and lambda_feature > 0:
                self.pairs.append((k, hit[0]))
                adapters.append(nn.Conv2d(f.shape[1], hit[1], 1))
        self.adapters = nn.ModuleList(adapters)

    def to(self, device: Any) -> Distiller:
        """Move student, teacher and adapters to ``device`` (after the CPU probe that paired the features)."""
        self.student.to(device)
        self.teacher.to(device)
        self.adapters.to(device)
        return self

    def parameters(self) -> list[Any]:
        """Trainable parameters: the student's and the adapters'."""
        return list(self.student.parameters()) + list(self.adapters.parameters())

    def loss(self, x: Any, y: Any, *, autocast: Any = None) -> tuple[Any, dict[str, float]]:
        """Distillation loss of a batch and its parts (``autocast``: a mixed-precision context for the forward
        passes, e.g. ``torch.autocast("cuda", torch.bfloat16)``; the losses are computed in float32)."""
        import contextlib

        import torch
        import torch.nn.functional as F

        ctx = autocast if autocast is not None else contextlib.nullcontext
        with torch.no_grad(), ctx():
            t_out = self.teacher(x)
        t_feats = [f.float() for f in self.t_tap.take()]
        with ctx():
            s_out = self.student(x)
            s_feats = self.s_tap.take()
            adapted = [a(s_feats[ks]) for a, (ks, _kt) in zip(self.adapters, self.pairs, strict=True)]
        s_out, t_out = s_out.float(), t_out.float()
        l_t = F.l1_loss(s_out, t_out)
        l_g = F.l1_loss(s_out, y)
        l_f = s_out.new_zeros(())
        for f, (_ks, kt) in zip(adapted, self.pairs, strict=True):
            l_f = l_f + F.l1_loss(f.float(), t_feats[kt]) / len(self.pairs)
        total = self.lt * l_t + self.lg * l_g + self.lf * l_f
        return total, {"teacher": l_t.item(), "gt": l_g.item(), "feature": l_f.item()}

    def close(self) -> None:
        self.s_tap.remove()
        self.t_tap.remove()


def _in_channels(model: Any) -> int:
    from torch import nn

    ch = getattr(model, "in_channels", None)
    if isinstance(ch, int):
        return ch * int(getattr(model, "inputs", 1))
    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if first is None:
        raise InputError(f"{type(model).__name__}: no convolution; not a generator this recipe can use")
    return int(first.in_channels)


@dataclass
class _History:
    steps: list[DistillStep] = field(default_factory=list)


def distill(student: Any, teacher: Any, batches: Iterable[tuple[Any, Any]], *, steps: int, lr: float = 2e-4,
            lambda_teacher: float = 1.0, lambda_gt: float = 1.0, lambda_feature: float = 0.5,
            log_every: int = 50, log: Callable[[str], None] | None = None, device: Any = None,
            max_seconds: float | None = None) -> list[DistillStep]:
    """Train ``student`` for ``steps`` Adam steps on the distillation loss (learning rate annealed from ``lr`` to 2%
    of it, cosine); returns the loss of every step.

    ``batches`` yields ``(x, y)`` tensors (e.g. :class:`PairSampler`). On a CUDA ``device`` the forward passes
    run under bf16 autocast (fp16 with loss scaling where bf16 is missing); ``max_seconds`` stops early on the
    wall clock (fewer entries returned). The student is left in eval mode on the CPU, the teacher on the CPU too.
    """
    import functools
    import math
    import time

    import torch

    dev = torch.device(device or "cpu")
    d = Distiller(student, teacher, lambda_teacher=lambda_teacher, lambda_gt=lambda_gt,
                  lambda_feature=lambda_feature).to(dev)
    autocast = None
    scaler = None
    if dev.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        autocast = functools.partial(torch.autocast, device_type="cuda", dtype=dtype)
        scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    opt = torch.optim.Adam(d.parameters(), lr=lr, betas=(0.9, 0.999))
    hist: list[DistillStep] = []
    student.train()
    it = iter(batches)
    t0 = time.monotonic()
    try:
        for step in range(1, steps + 1):
            if max_seconds is not None and time.monotonic() - t0 > max_seconds:
                if log:
                    log(f"stopped at step {step - 1}/{steps}: {max_seconds / 60:.1f} minutes spent")
                break
            # cosine from lr to 2% of it over the steps, or over the wall-clock budget when that ends first
            frac = (step - 1) / max(1, steps)
            if max_seconds:
                frac = max(frac, (time.monotonic() - t0) / max_seconds)
            for g in opt.param_groups:
                g["lr"] = lr * (0.02 + 0.49 * (1.0 + math.cos(math.pi * min(1.0, frac))))
            x, y = next(it)
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            loss, parts = d.loss(x, y, autocast=autocast)
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
            hist.append(DistillStep(step=step, total=loss.item(), **parts))
            if log and (step % log_every == 0 or step == steps):
                log(f"step {step}/{steps}: loss {hist[-1].total:.4f} (teacher {parts['teacher']:.4f}, "
                    f"gt {parts['gt']:.4f}, feature {parts['feature']:.4f})")
    finally:
        d.close()
        d.to("cpu")
        student.eval()
    return hist
