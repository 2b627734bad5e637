"""Generators of the thesis's other two GANs: DeblurGAN's ResNet generator and PAN's encoder-decoder.

DeblurGAN (Kupyn et al. 2018; thesis §4.3, figure 4.5): 7×7 convolution, two stride-2 convolutions, nine
residual blocks (conv 3×3, instance norm, ReLU, dropout 0.5, conv 3×3, instance norm), two ×2 upsamplings, 7×7
convolution to RGB, ``tanh``, and a global skip from the input: ``output = clamp(input + tanh(…), -1, 1)``.

PAN (Wang et al. 2018; thesis §4.2, figure 4.3): encoder of 3×3 stride-2 convolutions + batch norm + LeakyReLU
0.2, decoder of 4×4 stride-2 transposed convolutions + batch norm + ReLU, ``tanh`` at the end. The thesis does not
print the widths; ``filters`` doubling per level up to 8× is our reading of its figure.
"""

from __future__ import annotations

import torch
from torch import nn

from .unet import make_norm, make_upsampler

__all__ = ["PANGenerator", "ResNetGenerator"]


class _ResBlock(nn.Module):
    def __init__(self, ch: int, norm: str, dropout: float) -> None:
        super().__init__()
        bias = norm != "batch"
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3, bias=bias), make_norm(norm, ch), nn.ReLU(),
            nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
            nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3, bias=bias), make_norm(norm, ch),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResNetGenerator(nn.Module):
    """DeblurGAN's ResNet generator with a global residual connection.

    Parameters
    ----------
    in_channels, out_channels : int
        Input channels (all captures) and output channels; the global skip adds the first ``out_channels``
        input channels.
    filters : int
        Width of the first convolution (64); doubles per downsampling.
    blocks : int
        Residual blocks (9).
    downsamplings : int
        Stride-2 convolutions (2).
    norm : {"batch", "instance", "none"}
    dropout : float
        Dropout inside each residual block (0.5).
    decoder : {"transpose", "resize-conv"}
        Upsampling; ``"resize-conv"`` avoids checkerboard artefacts (paper 004's upgraded DeblurGAN).
    """

    def __init__(self, *, in_channels: int = 3, out_channels: int = 3, filters: int = 64, blocks: int = 9,
                 downsamplings: int = 2, norm: str = "instance", dropout: float = 0.5,
                 decoder: str = "transpose") -> None:
        super().__init__()
        if in_channels < out_channels:
            raise ValueError(f"in_channels={in_channels} < out_channels={out_channels}: the global skip needs "
                             "the output channels among the inputs")
        bias = norm != "batch"
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, filters, 7, bias=bias),
                                   make_norm(norm, filters), nn.ReLU()]
        ch = filters
        for _ in range(downsamplings):
            layers += [nn.Conv2d(ch, 2 * ch, 3, stride=2, padding=1, bias=bias), make_norm(norm, 2 * ch), nn.ReLU()]
            ch *= 2
        layers += [_ResBlock(ch, norm, dropout) for _ in range(blocks)]
        for _ in range(downsamplings):
            layers += [make_upsampler(decoder, ch, ch // 2, 3, bias=bias), make_norm(norm, ch // 2), nn.ReLU()]
            ch //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ch, out_channels, 7)]
        self.body = nn.Sequential(*layers)
        self.out_channels = out_channels
        self.inputs = in_channels // out_channels if in_channels % out_channels == 0 else 1
        self.pad_multiple = 2**downsamplings

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Restore ``x`` ``(N, C, H, W)`` in [-1, 1]; H, W multiples of ``pad_multiple``."""
        return torch.clamp(x[:, : self.out_channels] + torch.tanh(self.body(x)), -1.0, 1.0)


class PANGenerator(nn.Module):
    """PAN's image transformation network (encoder-decoder without skips).

    Parameters
    ----------
    in_channels, out_channels : int
    filters : int
        Width of the first encoder layer; doubles per level up to ``8 * filters``.
    levels : int
        Encoder layers (= decoder layers), each ×2 down/up.
    """

    def __init__(self, *, in_channels: int = 3, out_channels: int = 3, filters: int = 64, levels: int = 5) -> None:
        super().__init__()
        ch = [min(filters * 2**i, 8 * filters) for i in range(levels)]
        enc: list[nn.Module] = []
        prev = in_channels
        for i, c in enumerate(ch):
            enc += [nn.Conv2d(prev, c, 3, stride=2, padding=1, bias=i == 0),
                    nn.Identity() if i == 0 else nn.BatchNorm2d(c), nn.LeakyReLU(0.2)]
            prev = c
        dec: list[nn.Module] = []
        for i in range(levels - 1, 0, -1):
            dec += [nn.ConvTranspose2d(prev, ch[i - 1], 4, stride=2, padding=1, bias=False),
                    nn.BatchNorm2d(ch[i - 1]), nn.ReLU()]
            prev = ch[i - 1]
        dec += [nn.ConvTranspose2d(prev, out_channels, 4, stride=2, padding=1), nn.Tanh()]
        self.body = nn.Sequential(*enc, *dec)
        self.pad_multiple = 2**levels
        self.inputs = max(1, in_channels // out_channels)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Restore ``x`` ``(N, C, H, W)`` in [-1, 1]; H, W multiples of ``pad_multiple``."""
        return self.body(x)
