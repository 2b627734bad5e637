"""Discriminators: the pix2pix PatchGAN and the PAN discriminator with perceptual taps.

PatchGAN (Isola et al. 2017; thesis §4.1, figure 4.2): 4×4 convolutions, stride 2 for the first ``layers``
convolutions and stride 1 for the last two, LeakyReLU 0.2, normalisation on all but the first and last. With
``layers=3`` each output logit sees a 70×70 patch; ``layers=1`` gives the thesis's "smaller D" (16×16, §6.7). The
network returns logits (the sigmoid lives in the loss, ``BCEWithLogits``, for numerical stability); DeblurGAN uses
the same network with instance norm as a WGAN critic (no sigmoid at all).

PAN discriminator (Wang et al. 2018; thesis §4.2, figure 4.4): nine 3×3 convolutions, stride 1 on layers 1, 3, 5,
7 and 2 on layers 2, 4, 6, 8, 9, batch norm + LeakyReLU; hidden layers 1, 4, 6 and 8 are the perceptual features.
"""

from __future__ import annotations

import torch
from torch import nn

from .unet import make_norm

__all__ = ["PANDiscriminator", "PatchDiscriminator"]


class PatchDiscriminator(nn.Module):
    """Conditional PatchGAN.

    Parameters
    ----------
    in_channels : int
        Channels of condition + image (6 for one RGB condition, 9 for two).
    filters : int
        Filters of the first convolution (64); doubles per layer up to ``8 * filters``.
    layers : int
        Stride-2 convolutions (including the first); 3 = 70×70 receptive field, 1 = 16×16.
    norm : {"batch", "instance", "none"}
    """

    def __init__(self, *, in_channels: int = 6, filters: int = 64, layers: int = 3, norm: str = "batch") -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"layers={layers}: expected ≥ 1")
        bias = norm != "batch"
        seq: list[nn.Module] = [nn.Conv2d(in_channels, filters, 4, 2, 1), nn.LeakyReLU(0.2)]
        mult = 1
        for n in range(1, layers):
            prev, mult = mult, min(2**n, 8)
            seq += [nn.Conv2d(filters * prev, filters * mult, 4, 2, 1, bias=bias), make_norm(norm, filters * mult),
                    nn.LeakyReLU(0.2)]
        prev, mult = mult, min(2**layers, 8)
        seq += [nn.Conv2d(filters * prev, filters * mult, 4, 1, 1, bias=bias), make_norm(norm, filters * mult),
                nn.LeakyReLU(0.2), nn.Conv2d(filters * mult, 1, 4, 1, 1)]
        self.net = nn.Sequential(*seq)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Patch logits ``(N, 1, h, w)`` for ``x`` = condition and image concatenated on channels."""
        return self.net(x)


class PANDiscriminator(nn.Module):
    """PAN discriminator returning the decision logit and the perceptual features.

    Parameters
    ----------
    in_channels : int
        Channels of condition + image.
    filters : tuple of int
        Filters of the nine 3×3 convolutions.
    """

    STRIDES = (1, 2, 1, 2, 1, 2, 1, 2, 2)
    TAPS = (0, 3, 5, 7)  # layers 1, 4, 6, 8 (0-based)

    def __init__(self, *, in_channels: int = 6,
                 filters: tuple[int, ...] = (64, 128, 128, 256, 256, 512, 512, 512, 8)) -> None:
        super().__init__()
        if len(filters) != 9:
            raise ValueError(f"filters has {len(filters)} entries; the PAN discriminator has 9 layers")
        blocks, prev = [], in_channels
        for i, (f, s) in enumerate(zip(filters, self.STRIDES, strict=True)):
            last = i == 8
            blocks.append(nn.Sequential(
                nn.Conv2d(prev, f, 3, s, 1),
                nn.Identity() if i == 0 or last else nn.BatchNorm2d(f),
                nn.Identity() if last else nn.LeakyReLU(0.2),
            ))
            prev = f
        self.blocks = nn.ModuleList(blocks)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Return ``(logit (N,), [H1, H2, H3, H4])``: mean of the flattened last layer, and the perceptual taps."""
        feats = []
        for i, b in enumerate(self.blocks):
            x = b(x)
            if i in self.TAPS:
                feats.append(x)
        return x.flatten(1).mean(dim=1), feats

    def forward(self, x: torch.Tensor, return_features: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits; with ``return_features`` also the perceptual features (as :meth:`forward_features`)."""
        logits, feats = self.forward_features(x)
        return (logits, feats) if return_features else logits
