"""FuseGAN for multi-focus fusion (paper 004 §3.3, figures 7–8; after Geng et al. 2020).

Generator: a U-Net whose plain convolutions are DenseBlocks. A 3×3 convolution + PReLU to ``filters`` channels;
``levels`` encoder stages of (DenseBlock, 2×2 average pooling); a bottom of three 3×3 convolutions + PReLU; ``levels``
decoder stages of (bilinear ×2 upsampling, concatenation with the encoder DenseBlock output, DenseBlock); a 3×3
convolution and ``tanh`` to RGB. A DenseBlock here is three densely connected 3×3 convolutions + PReLU (growth
``growth``) followed by a 1×1 transition back to the stage width.

Discriminator: VGG-like, 8 convolutions with LeakyReLU (strides 1, 2 alternating), a 4×4 max-pool, and a 1×1
convolution to patch logits; ``forward_features`` exposes the outputs of convolutions 2, 4, 6, 8 for the
discriminator-feature perceptual loss.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["DenseBlock", "FuseGANDiscriminator", "FuseGANGenerator"]


class DenseBlock(nn.Module):
    """Three densely connected 3×3 convolutions + PReLU, then a 1×1 transition to ``cout`` channels."""

    def __init__(self, cin: int, cout: int, growth: int = 32, layers: int = 3) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(nn.Conv2d(cin + i * growth, growth, 3, padding=1), nn.PReLU(growth)) for i in range(layers)
        )
        self.transition = nn.Sequential(nn.Conv2d(cin + layers * growth, cout, 1), nn.PReLU(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for layer in self.layers:
            feats.append(layer(torch.cat(feats, dim=1)))
        return self.transition(torch.cat(feats, dim=1))


class FuseGANGenerator(nn.Module):
    """DenseBlock U-Net fusing several captures (concatenated on channels) into one sharp image.

    Parameters
    ----------
    in_channels : int
        Channels of all captures together (6 for two RGB captures).
    out_channels : int
    filters : int
        Stage width (64).
    growth : int
        DenseBlock growth rate.
    levels : int
        Poolings (3); ``pad_multiple = 2**levels``.
    """

    def __init__(self, *, in_channels: int = 6, out_channels: int = 3, filters: int = 64, growth: int = 32,
                 levels: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, filters, 3, padding=1), nn.PReLU(filters))
        self.enc = nn.ModuleList(DenseBlock(filters, filters, growth) for _ in range(levels))
        self.pool = nn.AvgPool2d(2)
        self.bottom = nn.Sequential(*[m for _ in range(3)
                                      for m in (nn.Conv2d(filters, filters, 3, padding=1), nn.PReLU(filters))])
        self.dec = nn.ModuleList(DenseBlock(2 * filters, filters, growth) for _ in range(levels))
        self.head = nn.Sequential(nn.Conv2d(filters, out_channels, 3, padding=1), nn.Tanh())
        self.levels = levels
        self.pad_multiple = 2**levels
        self.inputs = max(1, in_channels // out_channels)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Fuse ``x`` ``(N, in_channels, H, W)`` in [-1, 1] into ``(N, out_channels, H, W)``."""
        h = self.stem(x)
        skips = []
        for block in self.enc:
            h = block(h)
            skips.append(h)
            h = self.pool(h)
        h = self.bottom(h)
        for block, skip in zip(self.dec, reversed(skips), strict=True):
            h = F.interpolate(h, scale_factor=2.0, mode="bilinear", align_corners=False)
            h = block(torch.cat([h, skip], dim=1))
        return self.head(h)


class FuseGANDiscriminator(nn.Module):
    """VGG-like PatchGAN discriminator with perceptual taps (convolutions 2, 4, 6, 8)."""

    def __init__(self, *, in_channels: int = 9, filters: int = 64) -> None:
        super().__init__()
        widths = [filters, filters, 2 * filters, 2 * filters, 4 * filters, 4 * filters, 8 * filters, 8 * filters]
        convs, prev = [], in_channels
        for i, w in enumerate(widths):
            convs.append(nn.Sequential(nn.Conv2d(prev, w, 3, stride=1 if i % 2 == 0 else 2, padding=1),
                                       nn.LeakyReLU(0.2)))
            prev = w
        self.convs = nn.ModuleList(convs)
        self.head = nn.Sequential(nn.MaxPool2d(4, 4, ceil_mode=True), nn.Conv2d(prev, 1, 1))

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Return ``(patch logits, [features of convolutions 2, 4, 6, 8])``."""
        feats = []
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if i % 2 == 1:
                feats.append(x)
        return self.head(x), feats

    def forward(self, x: torch.Tensor, return_features: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits; with ``return_features`` also the perceptual features (as :meth:`forward_features`)."""
        logits, feats = self.forward_features(x)
        return (logits, feats) if return_features else logits
