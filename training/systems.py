"""Training systems: what one optimisation step does for each kind of spec.

* :class:`RestorationSystem` — every image-to-image spec: generator, optional discriminator/critic, the weighted
  losses of :class:`~virtualfocus.training.registry.RestorationSpec` (pixel, distance, focus, perceptual,
  adversarial BCE or WGAN-GP, discriminator-feature losses). One generator forward per step; the discriminator is
  updated first on ``Ŷ.detach()`` (pix2pix order), real and fake pairs in one batch ``([X, X], [Y, Ŷ])`` as the
  thesis did (and as DDP needs: one discriminator forward per backward).
* :class:`ClassifierSystem` — focus-offset classifiers (cross-entropy or ranked probability score) and the DBMID
  blur-type classifier (classes synthesised per sample from the stack pair: sharp plane, defocused plane, motion
  blur, both).

A system exposes ``networks`` / ``optimizers`` dicts (what checkpoints save), ``train_step(batch) -> losses``,
``validate(loader) -> metrics`` with a ``"val_loss"`` entry (lower is better; drives early stopping).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import nn
from virtualfocus.edge.errors import InputError, ModelLoadError

from . import losses as L
from .registry import (
    BLUR_CLASSES,
    BlurClassifierSpec,
    ClassifierSpec,
    FocusDistanceSpec,
    ModelSpec,
    RestorationSpec,
    get_spec,
)

__all__ = ["ClassifierSystem", "RestorationSystem", "load_frozen_classifier", "make_system", "motion_blur"]

log = logging.getLogger("virtualfocus.training")


def _unwrap(m: nn.Module) -> nn.Module:
    """The plain module under ``torch.compile`` (``_orig_mod``) and/or DDP (``module``) wrappers."""
    for _ in range(3):
        inner = getattr(m, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            inner = getattr(m, "module", None)
        if not isinstance(inner, nn.Module):
            break
        m = inner
    return m


def load_frozen_classifier(source: str | None, *, what: str, spec_name: str) -> nn.Module:
    """The frozen feature network for distance/perceptual losses: a trained classifier run, or ``"random"``.

    Raises
    ------
    InputError
        ``source`` is None (the spec needs one), or the run is not a classifier.
    """
    if source is None:
        raise InputError(
            f"{spec_name}: {what} needs a trained focus-distance classifier: train one with `virtualfocus train "
            f"focus-distance-classifier --data ... --out RUN_CLS`, then pass --set {what}=RUN_CLS "
            f"(or {what}=random for a frozen untrained network, for tests; or set its λ to 0)"
        )
    if source == "random":
        log.info("%s: %s is a frozen *untrained* classifier (tests only)", spec_name, what)
        return get_spec("focus-distance-classifier").build()
    from .checkpoint import load_run

    run = load_run(source)
    if not isinstance(run.spec, ClassifierSpec):
        raise ModelLoadError(f"{source}: {what} must be a classifier run; this run trained {run.spec.name!r}")
    return run.generator


def motion_blur(img: torch.Tensor, lengths: Iterable[int], horizontal: Iterable[bool]) -> torch.Tensor:
    """Uniform linear motion blur per sample (DBMID's synthetic motion), reflect-padded, same size."""
    out = []
    c = img.shape[1]
    for im, n, h in zip(img, lengths, horizontal, strict=True):
        n = max(int(n), 1)
        k = torch.full((c, 1, 1, n) if h else (c, 1, n, 1), 1.0 / n, dtype=im.dtype, device=im.device)
        a, b = (n - 1) // 2, n - 1 - (n - 1) // 2
        pad = (a, b, 0, 0) if h else (0, 0, a, b)
        x = torch.nn.functional.pad(im[None], pad, mode="reflect" if max(a, b) < min(im.shape[1:]) else "replicate")
        out.append(torch.nn.functional.conv2d(x, k, groups=c))
    return torch.cat(out, dim=0)


class _Base:
    def __init__(self, spec: ModelSpec, *, device: torch.device, amp: bool, channels_last: bool, seed: int) -> None:
        self.spec, self.device, self.channels_last = spec, device, channels_last
        self.amp_dtype: torch.dtype | None = None
        if amp and device.type == "cuda":
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        self.rng = np.random.default_rng(seed)
        self.networks: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.amp_dtype)

    def _prep(self, net: nn.Module) -> nn.Module:
        net = net.to(self.device)
        return net.to(memory_format=torch.channels_last) if self.channels_last else net

    def _to(self, t: torch.Tensor) -> torch.Tensor:
        t = t.to(self.device, non_blocking=True)
        if self.channels_last and t.ndim == 4:
            t = t.contiguous(memory_format=torch.channels_last)
        return t

    def _backward_step(self, loss: torch.Tensor, opt: torch.optim.Optimizer) -> None:
        opt.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(opt)
        else:
            loss.backward()
            opt.step()

    def end_step(self) -> None:
        if self.scaler is not None:
            self.scaler.update()

    def wrap_ddp(self, wrap: Any) -> None:
        """Replace trainable networks by their DistributedDataParallel wrappers (``wrap(net) -> DDP(net)``)."""
        for k, net in self.networks.items():
            if any(p.requires_grad for p in net.parameters()):
                self.networks[k] = wrap(net)

    def compile(self) -> None:
        """``torch.compile`` the trainable networks (Inductor; needs a C++ compiler; first step is slow)."""
        for k, net in self.networks.items():
            if any(p.requires_grad for p in net.parameters()):
                self.networks[k] = torch.compile(net)

    def state_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "models": {k: _unwrap(m).state_dict() for k, m in self.networks.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
        }
        if self.scaler is not None:
            d["scaler"] = self.scaler.state_dict()
        return d

    def load_state_dict(self, d: dict[str, Any]) -> None:
        """Networks (fp16 weights are cast back) and, where the checkpoint kept them, optimiser states; a compact
        checkpoint without ``optimizers`` (e.g. fp16 weights committed from a GPU run) restarts Adam's moments."""
        for k, m in self.networks.items():
            _unwrap(m).load_state_dict(d["models"][k])
        saved = d.get("optimizers") or {}
        if self.optimizers and not saved:
            log.warning("checkpoint has no optimiser state (compact weights): Adam's moments restart")
        for k, o in self.optimizers.items():
            if k not in saved:
                continue
            configured = [g["lr"] for g in o.param_groups]
            o.load_state_dict(saved[k])
            # The run's config decides the learning rate, so `--resume --set lr=…` can lower it for fine-tuning.
            for g, lr in zip(o.param_groups, configured, strict=True):
                g["lr"] = lr
        if self.scaler is not None and "scaler" in d:
            self.scaler.load_state_dict(d["scaler"])

    def train(self) -> None:
        for m in self.networks.values():
            m.train()

    def eval(self) -> None:
        for m in self.networks.values():
            m.eval()


class RestorationSystem(_Base):
    """Generator (+ discriminator) training for a :class:`RestorationSpec`."""

    def __init__(self, spec: RestorationSpec, *, device: torch.device, amp: bool = True, channels_last: bool = True,
                 seed: int = 0) -> None:
        super().__init__(spec, device=device, amp=amp, channels_last=channels_last, seed=seed)
        self.spec: RestorationSpec = spec
        self.networks["model"] = self._prep(spec.build())
        self.optimizers["model"] = torch.optim.Adam(self.networks["model"].parameters(), lr=spec.lr,
                                                    betas=spec.betas)
        d = spec.build_discriminator()
        if d is not None:
            self.networks["discriminator"] = self._prep(d)
            self.optimizers["discriminator"] = torch.optim.Adam(d.parameters(), lr=spec.lr * spec.d_lr_scale,
                                                                betas=spec.betas)
        self.distance = self.perceptual = None
        if spec.lambda_distance > 0:
            net = load_frozen_classifier(spec.distance_classifier, what="distance_classifier", spec_name=spec.name)
            self.distance = L.FeatureLoss(self._prep(net), layer=spec.distance_layer, kind="l1")
        if spec.lambda_perceptual > 0:
            net = load_frozen_classifier(spec.perceptual_network, what="perceptual_network", spec_name=spec.name)
            self.perceptual = L.FeatureLoss(self._prep(net), layer=spec.perceptual_layer, kind=spec.perceptual_kind)
        self.pixel = {"l1": L.l1_loss, "mse": L.mse_loss, "charbonnier": L.charbonnier_loss}[spec.pixel_loss]
        self.step_count = 0
        self._input_scores: list[dict[str, float]] | None = None

    @property
    def loss_names(self) -> list[str]:
        names = ["g_total", "g_pixel"]
        s = self.spec
        if s.lambda_distance > 0:
            names.append("g_distance")
        if s.lambda_focus > 0:
            names.append("g_focus")
        if s.lambda_fft > 0:
            names.append("g_fft")
        if s.lambda_perceptual > 0:
            names.append("g_perceptual")
        if s.has_discriminator:
            names += ["g_adv", "d_total"]
        if s.dfeat_g_weights:
            names.append("g_dfeat")
        return names

    def _inputs(self, batch: dict[str, torch.Tensor], rng: np.random.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        y = self._to(batch["y"])
        if self.spec.degradation == "motion":
            rng = self.rng if rng is None else rng
            n = y.shape[0]
            lengths = rng.choice(self.spec.motion_lengths, size=n)
            horiz = rng.integers(0, 2, size=n).astype(bool)
            x = self._to(motion_blur(y.contiguous(), lengths.tolist(), horiz.tolist()))
        else:
            x = self._to(batch["x"])
        return x, y

    def _d_step(self, x: torch.Tensor, y: torch.Tensor, fake: torch.Tensor) -> float:
        s, d = self.spec, self.networks["discriminator"]
        real_in = torch.cat([x, y], dim=1)
        fake_in = torch.cat([x, fake], dim=1)
        n = x.shape[0]
        with self.autocast():
            if s.adversarial == "bce":
                feats_needed = bool(s.dfeat_d_weights) and s.dfeat_margin > 0
                both = torch.cat([real_in, fake_in], dim=0)
                if feats_needed:
                    logits, feats = d(both, return_features=True)  # through the DDP wrapper, if any
                else:
                    logits = d(both)
                loss = s.lambda_adv_d * L.bce_d_loss(logits[:n], logits[n:], soft_labels=s.soft_labels)
                if feats_needed:
                    dist = L.dfeat_distance([f[:n] for f in feats], [f[n:] for f in feats], s.dfeat_d_weights)
                    loss = loss + torch.clamp(s.dfeat_margin - dist, min=0.0)
            else:  # wgan-gp
                scores = d(torch.cat([real_in, fake_in], dim=0))
                loss = s.lambda_adv_d * L.wgan_d_loss(scores[:n], scores[n:])
        if s.adversarial == "wgan-gp":
            loss = loss + s.lambda_gp * L.gradient_penalty(_unwrap(d), real_in.float(), fake_in.float())
        self._backward_step(loss, self.optimizers["discriminator"])
        return float(loss.detach())

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One generator update (and the discriminator updates due at this step); returns the losses."""
        s = self.spec
        g = self.networks["model"]
        x, y = self._inputs(batch)
        out: dict[str, float] = {}
        with self.autocast():
            fake = g(x)
        if s.has_discriminator and self.step_count % s.d_every == 0:
            d_losses = [self._d_step(x, y, fake.detach()) for _ in range(s.d_steps)]
            out["d_total"] = float(np.mean(d_losses))
        elif s.has_discriminator:
            out["d_total"] = float("nan")
        with self.autocast():
            pixel = self.pixel(fake.float(), y)
            total = s.lambda_pixel * pixel
            out["g_pixel"] = float(pixel.detach())
            if self.distance is not None:
                v = self.distance(fake, y)
                total = total + s.lambda_distance * v
                out["g_distance"] = float(v.detach())
            if s.lambda_focus > 0:
                v = L.fpw_loss(fake.float(), y.float())
                total = total + s.lambda_focus * v
                out["g_focus"] = float(v.detach())
            if s.lambda_fft > 0:
                v = L.fft_l1_loss(fake, y)
                total = total + s.lambda_fft * v
                out["g_fft"] = float(v.detach())
            if self.perceptual is not None:
                v = self.perceptual(fake, y)
                total = total + s.lambda_perceptual * v
                out["g_perceptual"] = float(v.detach())
            if s.has_discriminator:
                d = _unwrap(self.networks["discriminator"])
                d.requires_grad_(False)
                fake_in = torch.cat([x, fake], dim=1)
                if s.dfeat_g_weights:
                    logits, ffeats = d.forward_features(fake_in)
                    with torch.no_grad():
                        _, rfeats = d.forward_features(torch.cat([x, y], dim=1))
                    v = L.dfeat_distance(rfeats, ffeats, s.dfeat_g_weights)
                    total = total + v
                    out["g_dfeat"] = float(v.detach())
                else:
                    logits = d(fake_in)
                adv = L.bce_g_loss(logits) if s.adversarial == "bce" else L.wgan_g_loss(logits)
                total = total + s.lambda_adv_g * adv
                out["g_adv"] = float(adv.detach())
        self._backward_step(total, self.optimizers["model"])
        if s.has_discriminator:
            _unwrap(self.networks["discriminator"]).requires_grad_(True)
        self.end_step()
        self.step_count += 1
        out["g_total"] = float(total.detach())
        if not math.isfinite(out["g_total"]):
            raise FloatingPointError(f"{s.name}: generator loss is {out['g_total']} at step {self.step_count}")
        return out

    @torch.no_grad()
    def validate(self, batches: Iterable[dict[str, torch.Tensor]]) -> dict[str, float]:
        """Validation: ``val_loss`` (pixel L1 in model units) and the thesis metrics on 0..255 (MSE, PSNR, FPW)
        of the restored crops, the same metrics of the inputs for comparison, and ``val_win_mse`` /
        ``val_win_fpw``: the fraction of crops outside the sharp band (−0.2 … +0.4 µm) whose restoration beats
        its input on that metric (the issue's target is 1.0 at every level)."""
        from virtualfocus.edge import metrics as M

        g = self.networks["model"]
        g.eval()
        l1s, scores, offsets = [], [], []
        fresh_inputs = self._input_scores is None
        inputs = [] if fresh_inputs else self._input_scores
        rng = np.random.default_rng(12345)  # motion-blur validation inputs are the same at every validation
        for batch in batches:
            x, y = self._inputs(batch, rng)
            with self.autocast():
                pred = g(x).float()
            l1s.append(float((pred - y).abs().mean()) * y.shape[0])
            offsets += [float(o) for o in batch["offset"]]
            for p, t, xi in zip(_u8(pred), _u8(y), _u8(x[:, :3]), strict=True):
                scores.append(M.score_pair(t, p, ssim_on=False))
                if fresh_inputs:
                    inputs.append(M.score_pair(t, xi, ssim_on=False))
        g.train()
        n = len(scores)
        if n == 0:
            return {}
        self._input_scores = inputs
        res = {"val_loss": sum(l1s) / n}
        for k in ("MSE", "PSNR", "FPW"):
            res[f"val_{k.lower()}"] = float(np.mean([sc[k] for sc in scores]))
        for k in ("MSE", "PSNR", "FPW"):
            res[f"input_{k.lower()}"] = float(np.mean([sc[k] for sc in inputs]))
        out = [i for i, o in enumerate(offsets) if not any(abs(o - b) < 1e-3 for b in (-0.2, 0.0, 0.2, 0.4))]
        for k in ("MSE", "FPW"):
            res[f"val_win_{k.lower()}"] = (float(np.mean([scores[i][k] < inputs[i][k] for i in out])) if out
                                           else float("nan"))
        return res

    @property
    def val_names(self) -> list[str]:
        return ["val_loss", "val_mse", "val_psnr", "val_fpw", "input_mse", "input_psnr", "input_fpw", "val_win_mse",
                "val_win_fpw"]


def _u8(t: torch.Tensor) -> list[np.ndarray]:
    a = ((t.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8).cpu().numpy()
    return list(a.transpose(0, 2, 3, 1))


class ClassifierSystem(_Base):
    """Classifier training for a :class:`ClassifierSpec` (focus offset or blur type)."""

    def __init__(self, spec: ClassifierSpec, *, device: torch.device, amp: bool = True, channels_last: bool = True,
                 seed: int = 0) -> None:
        super().__init__(spec, device=device, amp=amp, channels_last=channels_last, seed=seed)
        self.spec: ClassifierSpec = spec
        self.networks["model"] = self._prep(spec.build())
        self.optimizers["model"] = torch.optim.Adam(self.networks["model"].parameters(), lr=spec.lr,
                                                    betas=spec.betas)
        if isinstance(spec, FocusDistanceSpec):
            self.centres = torch.tensor(spec.offsets_um, dtype=torch.float32)
        self.step_count = 0

    loss_names = ("loss", "acc")
    val_names = ("val_loss", "val_acc")

    def _examples(self, batch: dict[str, torch.Tensor], rng: np.random.Generator
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.spec
        x = batch["x"][:, :3]
        off = batch["offset"].float()
        if isinstance(s, FocusDistanceSpec):
            o = off.abs() if s.absolute else off
            labels = (o.view(-1, 1) - self.centres.view(1, -1)).abs().argmin(dim=1)
            return self._to(x), labels.to(self.device)
        if isinstance(s, BlurClassifierSpec):
            y = batch["y"]
            lo, hi = s.sharp_band_um
            imgs, labels = [], []
            n = x.shape[0]
            cls = rng.integers(0, len(BLUR_CLASSES), size=n)
            lengths = rng.choice(s.motion_lengths, size=n)
            horiz = rng.integers(0, 2, size=n).astype(bool)
            for i in range(n):
                defocused = not (lo - 1e-6 <= float(off[i]) <= hi + 1e-6)
                c = int(cls[i])
                if c in (1, 3) and not defocused:
                    c -= 1  # the drawn plane is in the sharp band: it is "in focus" (or motion only)
                base = x[i] if c in (1, 3) else y[i]
                if c in (2, 3):
                    base = motion_blur(base[None], [int(lengths[i])], [bool(horiz[i])])[0]
                imgs.append(base)
                labels.append(c)
            return self._to(torch.stack(imgs)), torch.tensor(labels, device=self.device)
        raise InputError(f"{s.name}: no label rule for {type(s).__name__}")

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.spec.loss == "rps":
            return L.rank_probability_loss(logits.float(), labels)
        return torch.nn.functional.cross_entropy(logits.float(), labels)

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        x, labels = self._examples(batch, self.rng)
        with self.autocast():
            logits = self.networks["model"](x)
        loss = self._loss(logits, labels)
        self._backward_step(loss, self.optimizers["model"])
        self.end_step()
        self.step_count += 1
        v = float(loss.detach())
        if not math.isfinite(v):
            raise FloatingPointError(f"{self.spec.name}: loss is {v} at step {self.step_count}")
        return {"loss": v, "acc": float((logits.argmax(1) == labels).float().mean())}

    @torch.no_grad()
    def validate(self, batches: Iterable[dict[str, torch.Tensor]]) -> dict[str, float]:
        """Validation loss and accuracy (blur classes drawn with a fixed seed, so repeatable)."""
        net = self.networks["model"]
        net.eval()
        rng = np.random.default_rng(12345)
        tot, correct, n = 0.0, 0, 0
        for batch in batches:
            x, labels = self._examples(batch, rng)
            with self.autocast():
                logits = net(x)
            tot += float(self._loss(logits, labels)) * len(labels)
            correct += int((logits.argmax(1) == labels).sum())
            n += len(labels)
        net.train()
        return {"val_loss": tot / n, "val_acc": correct / n} if n else {}


def make_system(spec: ModelSpec, *, device: torch.device, amp: bool = True, channels_last: bool = True,
                seed: int = 0) -> RestorationSystem | ClassifierSystem:
    """The training system for ``spec`` (by spec family)."""
    if isinstance(spec, RestorationSpec):
        return RestorationSystem(spec, device=device, amp=amp, channels_last=channels_last, seed=seed)
    if isinstance(spec, ClassifierSpec):
        return ClassifierSystem(spec, device=device, amp=amp, channels_last=channels_last, seed=seed)
    raise InputError(f"{spec.name}: no training system for {type(spec).__name__}")
