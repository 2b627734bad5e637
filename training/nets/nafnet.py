"""A NAFNet-style restorer (Chen et al., "Simple Baselines for Image Restoration", ECCV 2022).

Nonlinear-activation-free blocks: LayerNorm → 1×1 → depthwise 3×3 → SimpleGate (split channels, multiply) →
simplified channel attention → 1×1, then a gated 1×1 feed-forward, each with a learned residual scale that
starts at zero (every block starts as the identity). A U-shaped encoder/decoder with strided 2×2 convolutions
down, 1×1 + pixel shuffle up and additive skips; the network predicts a residual added to the capture, so an
untrained or uncertain network returns its input — the right default for a capture that may already be in focus.

Everything exports to ONNX opset 17 and OpenVINO IR as plain convolutions, reductions and elementwise ops (no
transposed convolution, which INT8 leaves in float, and no LayerNorm op over channels-last tensors).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["NAFBlock", "NAFNet"]


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of an NCHW tensor (mean/variance per pixel)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = x.mean(1, keepdim=True)
        var = (x - mu).pow(2).mean(1, keepdim=True)
        return (x - mu) / torch.sqrt(var + self.eps) * self.weight + self.bias


class SimpleGate(nn.Module):
    """Split the channels in two halves and multiply them (the block's only nonlinearity)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


class NAFBlock(nn.Module):
    """One NAFNet block: spatial mixing with channel attention, then a gated feed-forward.

    Parameters
    ----------
    channels : int
        Feature channels in and out.
    expand : int
        Channel expansion inside the depthwise and feed-forward branches (2 in the paper).
    """

    def __init__(self, channels: int, expand: int = 2) -> None:
        super().__init__()
        c2 = channels * expand
        self.norm1 = LayerNorm2d(channels)
        self.conv1 = nn.Conv2d(channels, c2, 1)
        self.dw = nn.Conv2d(c2, c2, 3, padding=1, groups=c2)
        self.gate = SimpleGate()
        self.sca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c2 // 2, c2 // 2, 1))
        self.conv2 = nn.Conv2d(c2 // 2, channels, 1)
        self.norm2 = LayerNorm2d(channels)
        self.ffn1 = nn.Conv2d(channels, c2, 1)
        self.ffn2 = nn.Conv2d(c2 // 2, channels, 1)
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.gate(self.dw(self.conv1(self.norm1(x))))
        y = self.conv2(y * self.sca(y))
        x = x + self.beta * y
        y = self.ffn2(self.gate(self.ffn1(self.norm2(x))))
        return x + self.gamma * y


class NAFNet(nn.Module):
    """U-shaped NAFNet restorer with a global residual.

    Parameters
    ----------
    in_channels : int
        Channels of one capture (3 = RGB; gray captures are fed as three equal channels by the runtime).
    width : int
        Channels at full resolution; doubled at every level down.
    enc_blocks, dec_blocks : tuple of int
        Blocks per encoder level (before each downsampling) and per decoder level (after each upsampling,
        listed from the deepest level up); equal lengths = number of levels.
    middle_blocks : int
        Blocks at the lowest resolution.

    Input and output are ``(N, C, H, W)`` in [-1, 1] with H, W multiples of ``2 ** len(enc_blocks)``.
    """

    def __init__(self, *, in_channels: int = 3, width: int = 16, enc_blocks: tuple[int, ...] = (1, 1, 2),
                 middle_blocks: int = 2, dec_blocks: tuple[int, ...] = (1, 1, 1)) -> None:
        super().__init__()
        if len(enc_blocks) != len(dec_blocks):
            raise ValueError(f"enc_blocks {enc_blocks} and dec_blocks {dec_blocks} need the same length")
        self.intro = nn.Conv2d(in_channels, width, 3, padding=1)
        self.ending = nn.Conv2d(width, in_channels, 3, padding=1)
        self.encoders = nn.ModuleList()
        self.downs = nn.ModuleList()
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        c = width
        for n in enc_blocks:
            self.encoders.append(nn.Sequential(*[NAFBlock(c) for _ in range(n)]))
            self.downs.append(nn.Conv2d(c, 2 * c, 2, stride=2))
            c *= 2
        self.middle = nn.Sequential(*[NAFBlock(c) for _ in range(middle_blocks)])
        for n in dec_blocks:
            self.ups.append(nn.Sequential(nn.Conv2d(c, 2 * c, 1, bias=False), nn.PixelShuffle(2)))
            c //= 2
            self.decoders.append(nn.Sequential(*[NAFBlock(c) for _ in range(n)]))
        self.levels = len(enc_blocks)
        # The input contract export/ reads: one capture, same channels out, sizes a multiple of 2**levels.
        self.in_channels = self.out_channels = in_channels
        self.inputs = 1
        self.pad_multiple = 2**self.levels
        # Start as the identity: the residual branch outputs zero until training moves it.
        nn.init.zeros_(self.ending.weight)
        nn.init.zeros_(self.ending.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.intro(x)
        skips = []
        for enc, down in zip(self.encoders, self.downs, strict=True):
            h = enc(h)
            skips.append(h)
            h = down(h)
        h = self.middle(h)
        for up, dec, skip in zip(self.ups, self.decoders, reversed(skips), strict=True):
            h = dec(up(h) + skip)
        return x + self.ending(h)
