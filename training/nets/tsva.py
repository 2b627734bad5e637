"""TSVA: learning-based two-shot virtual autofocusing (Li et al., paper 001, figure 4).

Two contracting paths with shared weights (two 3×3 convolutions + batch norm + ReLU, then 2×2 max-pooling; the
number of channels doubles at each downsampling) read the two captures Y1, Y2; their deepest features are
concatenated. The expansive path upsamples (×2 + convolution halving the channels), concatenates the skip features
of both paths, and applies two 3×3 convolutions + ReLU. A final 1×1 convolution gives the correction added to Y1,
the sharper capture by Brenner gradient. Here Y1 is chosen inside the network (a per-sample 0/1 weight, no Python
branching), so the exported graph takes the captures in any order.
"""

from __future__ import annotations

import torch
from torch import nn

from .unet import brenner_gradient, make_upsampler

__all__ = ["TSVANet"]


def _double_conv(cin: int, cout: int, bn: bool) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=not bn), nn.BatchNorm2d(cout) if bn else nn.Identity(), nn.ReLU(),
        nn.Conv2d(cout, cout, 3, padding=1, bias=not bn), nn.BatchNorm2d(cout) if bn else nn.Identity(), nn.ReLU(),
    )


class TSVANet(nn.Module):
    """Two-shot restoration network.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of one capture and of the output (equal: the output is Y1 + correction).
    filters : int
        Channels of the first level (64).
    levels : int
        Max-poolings (4); ``pad_multiple = 2**levels``.
    batch_norm : bool
    decoder : {"transpose", "resize-conv", "pixelshuffle"}
        Up-convolution of the expansive path (2×2 transposed convolution in the paper's U-Net lineage).

    The input is ``(N, 2 * in_channels, H, W)``: both captures concatenated on channels.
    """

    def __init__(self, *, in_channels: int = 3, out_channels: int = 3, filters: int = 64, levels: int = 4,
                 batch_norm: bool = True, decoder: str = "transpose") -> None:
        super().__init__()
        if in_channels != out_channels:
            raise ValueError("TSVA adds its output to a capture: in_channels must equal out_channels")
        ch = [filters * 2**i for i in range(levels + 1)]
        self.down = nn.ModuleList([_double_conv(in_channels if i == 0 else ch[i - 1], ch[i], batch_norm)
                                   for i in range(levels + 1)])
        self.pool = nn.MaxPool2d(2)
        ups, convs = [], []
        prev = 2 * ch[levels]  # deepest features of both paths, concatenated
        for i in range(levels - 1, -1, -1):
            ups.append(make_upsampler(decoder, prev, ch[i], 2 if decoder == "transpose" else 3, bias=True))
            convs.append(_double_conv(3 * ch[i], ch[i], batch_norm))
            prev = ch[i]
        self.ups, self.convs = nn.ModuleList(ups), nn.ModuleList(convs)
        self.out = nn.Conv2d(ch[0], out_channels, 1)
        self.in_channels, self.out_channels, self.levels, self.inputs = in_channels, out_channels, levels, 2
        self.pad_multiple = 2**levels

    def _encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            feats.append(x)
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Restore from two captures ``x = cat([Y_a, Y_b], 1)`` in [-1, 1]."""
        c = self.in_channels
        a, b = x[:, :c], x[:, c:2 * c]
        k = 1 if c >= 3 else 0
        w = (brenner_gradient(a, channel=k) >= brenner_gradient(b, channel=k)).to(x.dtype).view(-1, 1, 1, 1)
        y1, y2 = w * a + (1 - w) * b, (1 - w) * a + w * b
        f1, f2 = self._encode(y1), self._encode(y2)
        h = torch.cat([f1[-1], f2[-1]], dim=1)
        for j, (up, conv) in enumerate(zip(self.ups, self.convs, strict=True)):
            i = self.levels - 1 - j
            h = conv(torch.cat([up(h), f1[i], f2[i]], dim=1))
        return torch.clamp(y1 + self.out(h), -1.0, 1.0)
