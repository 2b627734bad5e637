"""Losses of the reference papers (PyTorch).

Images are NCHW tensors in [-1, 1]. Functions here are pure (no module state) except :class:`FeatureLoss`, which
wraps a frozen network.

* pixel: :func:`l1_loss`, :func:`mse_loss`;
* adversarial BCE on logits (conditional GAN, thesis eq. 3.1–3.2): :func:`bce_d_loss` (with the thesis's soft
  labels option, §6.7), :func:`bce_g_loss`;
* Wasserstein with gradient penalty (thesis §3.4, DeblurGAN): :func:`wgan_d_loss`, :func:`wgan_g_loss`,
  :func:`gradient_penalty`;
* focus loss FPW (thesis §6.3.1): :func:`fpw_loss`, differentiable thesis focus filters on the green channel on
  the 0..255 scale, equal to ``virtualfocus.edge.metrics.fpw`` (valid region);
* distance loss (thesis §6.3.3) and perceptual loss: :class:`FeatureLoss` on a frozen classifier of ours (L1 on
  layer 3 of the focus-distance classifier, λ = 50; or feature MSE as DeblurGAN's VGG loss; or the Gram-matrix
  style loss the thesis tried with VGG-16, §6.3.2);
* discriminator-feature perceptual losses of PAN (eq. 4.1–4.2) and FuseGAN: :func:`dfeat_distance`;
* ranked probability score for ordered classes (paper 004): :func:`rank_probability_loss`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "FOCUS_FILTER",
    "FeatureLoss",
    "bce_d_loss",
    "bce_g_loss",
    "charbonnier_loss",
    "dfeat_distance",
    "fft_l1_loss",
    "focus_measure",
    "focus_responses",
    "fpw_loss",
    "gradient_penalty",
    "gram_matrix",
    "l1_loss",
    "mse_loss",
    "rank_probability_loss",
    "wgan_d_loss",
    "wgan_g_loss",
]

#: ωx of the thesis (§1.3); ωy = ωxᵀ.
FOCUS_FILTER = (-1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0)


def l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error."""
    return F.l1_loss(pred, target)


def mse_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error."""
    return F.mse_loss(pred, target)


def charbonnier_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Charbonnier (smooth L1) loss ``mean(sqrt((p − t)² + ε²))``: L1's robustness without its kink at 0."""
    return torch.sqrt((pred - target) ** 2 + eps * eps).mean()


def fft_l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between the amplitude spectra of ``pred`` and ``target`` (per channel, orthonormal 2-D real FFT).

    Pixel losses under-weight the high frequencies that defocus removes; matching the spectrum amplitude asks for
    them back without asking for a particular phase, i.e. without inventing where the detail sits.
    """
    fp = torch.fft.rfft2(pred.float(), norm="ortho").abs()
    ft = torch.fft.rfft2(target.float(), norm="ortho").abs()
    return (fp - ft).abs().mean()


def _green_255(x: torch.Tensor) -> torch.Tensor:
    g = x[:, 1:2] if x.shape[1] >= 3 else x[:, 0:1]
    return (g + 1.0) * 127.5


def focus_responses(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Responses ``(ωx * X_G, ωy * X_G)`` on the valid region (6 px in from each border), 0..255 scale."""
    g = _green_255(x)
    w = torch.tensor(FOCUS_FILTER, dtype=g.dtype, device=g.device)
    gx = F.conv2d(g, w.view(1, 1, 1, -1))[:, :, 6:-6, :]
    gy = F.conv2d(g, w.view(1, 1, -1, 1))[:, :, :, 6:-6]
    return gx, gy


def focus_measure(x: torch.Tensor) -> torch.Tensor:
    """Thesis focus measure F per image ``(N,)`` (mean of (ωx*X_G)² + (ωy*X_G)², 0..255 scale)."""
    gx, gy = focus_responses(x)
    return (gx.pow(2) + gy.pow(2)).mean(dim=(1, 2, 3))


def fpw_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Focus loss = FPW(target, pred), the thesis's pixelwise focus difference (mean over the batch).

    ``mean(|(ωx*Y_G)² − (ωx*Ŷ_G)²| + |(ωy*Y_G)² − (ωy*Ŷ_G)²|)`` on the 0..255 scale; 0 for identical images.
    """
    px, py = focus_responses(pred)
    tx, ty = focus_responses(target)
    return (px.pow(2) - tx.pow(2)).abs().mean() + (py.pow(2) - ty.pow(2)).abs().mean()


def _targets(logits: torch.Tensor, real: bool, soft: bool) -> torch.Tensor:
    if not soft:
        return torch.full_like(logits, 1.0 if real else 0.0)
    # Soft labels (Salimans et al. 2016; thesis §6.7): real ~ U[0.9, 1], fake ~ U[0, 0.1].
    u = torch.rand_like(logits) * 0.1
    return 1.0 - u if real else u


def bce_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, *, soft_labels: bool = False) -> torch.Tensor:
    """Discriminator BCE: −E[log D(Y|X)] − E[log(1 − D(Ŷ|X))], halved as in pix2pix (D learns at half G's rate)."""
    real = F.binary_cross_entropy_with_logits(real_logits, _targets(real_logits, True, soft_labels))
    fake = F.binary_cross_entropy_with_logits(fake_logits, _targets(fake_logits, False, soft_labels))
    return 0.5 * (real + fake)


def bce_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator BCE with flipped labels: −E[log D(Ŷ|X)]."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def wgan_d_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """Critic loss −E[D(Y)] + E[D(Ŷ)]."""
    return fake_scores.mean() - real_scores.mean()


def wgan_g_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """Generator loss −E[D(Ŷ)]."""
    return -fake_scores.mean()


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor,
                     fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP: E[(‖∇D(Ỹ)‖₂ − 1)²] at random interpolates Ỹ of real and fake inputs (Gulrajani et al. 2017).

    ``real`` and ``fake`` are the critic's full inputs (condition included); ``fake`` should be detached.
    """
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    scores = critic(mixed)
    (grad,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1.0).pow(2).mean()


def gram_matrix(f: torch.Tensor) -> torch.Tensor:
    """Gram matrix ``(N, C, C)`` of features ``(N, C, H, W)``, normalised by C·H·W (thesis §6.3.2)."""
    n, c, h, w = f.shape
    v = f.reshape(n, c, h * w)
    return v @ v.transpose(1, 2) / (c * h * w)


class FeatureLoss(nn.Module):
    """Distance between features of a frozen network: the thesis's distance loss and our perceptual loss.

    Parameters
    ----------
    network : nn.Module
        A classifier with ``features(x, layer)`` (:class:`~virtualfocus.training.nets.classifiers.ConvClassifier`);
        it is put in eval mode and its parameters frozen, gradients still flow to the input.
    layer : int
        1-based feature layer (3 for the thesis's distance loss).
    kind : {"l1", "mse", "style"}
        L1 of features (distance loss), MSE (DeblurGAN perceptual), or squared Frobenius distance of Gram matrices
        (style reconstruction loss).
    """

    def __init__(self, network: nn.Module, *, layer: int = 3, kind: str = "l1") -> None:
        super().__init__()
        if kind not in ("l1", "mse", "style"):
            raise ValueError(f"kind={kind!r} is not valid; expected 'l1', 'mse' or 'style'")
        self.network = network.eval()
        for p in self.network.parameters():
            p.requires_grad_(False)
        self.layer, self.kind = layer, kind

    def train(self, mode: bool = True) -> FeatureLoss:  # the frozen network stays in eval mode
        super().train(mode)
        self.network.eval()
        return self

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        fp = self.network.features(pred, self.layer)
        with torch.no_grad():
            ft = self.network.features(target, self.layer)
        if self.kind == "l1":
            return F.l1_loss(fp, ft)
        if self.kind == "mse":
            return F.mse_loss(fp, ft)
        return (gram_matrix(fp) - gram_matrix(ft)).pow(2).sum(dim=(1, 2)).mean()


def dfeat_distance(real_feats: Sequence[torch.Tensor], fake_feats: Sequence[torch.Tensor],
                   weights: Sequence[float]) -> torch.Tensor:
    """Σ λ_i ‖H_i(Y) − H_i(Ŷ)‖₁ (mean absolute difference per layer), PAN eq. 4.1 and FuseGAN's perceptual loss."""
    if len(weights) > len(real_feats):
        raise ValueError(f"{len(weights)} weights for {len(real_feats)} discriminator feature layers")
    total = real_feats[0].new_zeros(())
    for w, r, f in zip(weights, real_feats, fake_feats, strict=False):
        if w:
            total = total + w * F.l1_loss(f, r)
    return total


def rank_probability_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Ranked probability score for ordered classes: mean over k of (CDF_pred(k) − CDF_true(k))², averaged.

    0 for a certain, correct prediction; it punishes a prediction more the further its mass sits from the true
    class (Yang et al. 2018, paper 004).
    """
    k = logits.shape[1]
    cdf = torch.cumsum(torch.softmax(logits, dim=1), dim=1)
    true = (torch.arange(k, device=logits.device).view(1, -1) >= labels.view(-1, 1)).to(cdf.dtype)
    return (cdf - true).pow(2).sum(dim=1).mean() / max(k - 1, 1)
