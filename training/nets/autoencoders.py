"""The two convolutional autoencoders of paper 000 ("whole image" and "split image"), in PyTorch.

Whole (§4.1): conv 3×3 (32) + ReLU, batch norm, max-pool; conv 3×3 (64) + ReLU, max-pool; transposed conv 3×3
stride 2 (64, ELU), batch norm; transposed conv 3×3 stride 2 (32, ELU); conv 3×3 to the output.
Split (§4.2): three conv 3×3 (64) + max-pool (first activation sigmoid, then ReLU); three conv 3×3 (64) + ×2
nearest upsampling; conv 3×3 to the output.
The paper's output sigmoid on [0, 1] is ``tanh`` on our [-1, 1] range (``2·sigmoid(2x) − 1``).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SplitAutoencoder", "WholeAutoencoder"]


class WholeAutoencoder(nn.Module):
    """Paper 000 whole-image autoencoder; ``filters`` are the encoder widths (32, 64), mirrored in the decoder."""

    def __init__(self, *, in_channels: int = 3, out_channels: int = 3, filters: tuple[int, ...] = (32, 64)) -> None:
        super().__init__()
        enc: list[nn.Module] = []
        prev = in_channels
        for i, f in enumerate(filters):
            enc += [nn.Conv2d(prev, f, 3, padding=1), nn.ReLU()]
            if i == 0:
                enc.append(nn.BatchNorm2d(f))
            enc.append(nn.MaxPool2d(2))
            prev = f
        dec: list[nn.Module] = []
        for i, f in enumerate(reversed(filters)):
            dec += [nn.ConvTranspose2d(prev, f, 3, stride=2, padding=1, output_padding=1), nn.ELU()]
            if i == 0:
                dec.append(nn.BatchNorm2d(f))
            prev = f
        dec += [nn.Conv2d(prev, out_channels, 3, padding=1), nn.Tanh()]
        self.body = nn.Sequential(*enc, *dec)
        self.pad_multiple = 2 ** len(filters)
        self.inputs = max(1, in_channels // out_channels)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruct ``x`` ``(N, C, H, W)`` in [-1, 1]."""
        return self.body(x)


class SplitAutoencoder(nn.Module):
    """Paper 000 split-image (patch) autoencoder; ``filters`` per encoder level (64, 64, 64), mirrored."""

    def __init__(self, *, in_channels: int = 3, out_channels: int = 3,
                 filters: tuple[int, ...] = (64, 64, 64)) -> None:
        super().__init__()
        enc: list[nn.Module] = []
        prev = in_channels
        for i, f in enumerate(filters):
            enc += [nn.Conv2d(prev, f, 3, padding=1), nn.Sigmoid() if i == 0 else nn.ReLU(), nn.MaxPool2d(2)]
            prev = f
        dec: list[nn.Module] = []
        for f in reversed(filters):
            dec += [nn.Conv2d(prev, f, 3, padding=1), nn.ReLU(), nn.Upsample(scale_factor=2, mode="nearest")]
            prev = f
        dec += [nn.Conv2d(prev, out_channels, 3, padding=1), nn.Tanh()]
        self.body = nn.Sequential(*enc, *dec)
        self.pad_multiple = 2 ** len(filters)
        self.inputs = max(1, in_channels // out_channels)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruct ``x`` ``(N, C, H, W)`` in [-1, 1]."""
        return self.body(x)
