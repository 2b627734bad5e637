"""Convolutional classifiers: the focus-distance network (thesis §6.3.3), DBMID's VGG16, MMDF's focus CNN.

One configurable :class:`ConvClassifier` covers all three: blocks of ``convs_per_block[i]`` convolutions of
``filters[i]`` (+ batch norm) + ReLU, each block followed by 2×2 max-pooling, an adaptive average pool to
``pool_size``×``pool_size`` (so any crop size works; it is the identity at the paper's input size), and fully
connected layers. ``features(x, layer)`` returns the activation of block ``layer`` (1-based, after ReLU, before
pooling): the pix2pix-dist distance loss uses layer 3 of the focus-distance classifier.

The thesis's distance network (CellaVision's, figure 6.5) is "five convolutional layers with intermediate max
pooling layers and the last three layers fully connected"; its widths are not published (see the registry spec).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ConvClassifier"]


class ConvClassifier(nn.Module):
    """Conv blocks with max-pooling, adaptive pooling and fully connected layers.

    Parameters
    ----------
    in_channels : int
        Input channels (3 RGB).
    classes : int
        Output logits.
    filters : tuple of int
        Width of each block.
    convs_per_block : tuple of int or None
        Convolutions per block (VGG16: 2, 2, 3, 3, 3); one each when None.
    kernel : int
        Odd convolution kernel ("same" padding).
    batch_norm : bool
        Batch norm after each convolution.
    hidden : tuple of int
        Widths of the hidden fully connected layers (a last one maps to ``classes``).
    pool_size : int
        Side of the adaptive average pool before the fully connected layers.
    dropout : float
        Dropout before each hidden fully connected layer.
    """

    def __init__(self, *, in_channels: int = 3, classes: int = 14, filters: tuple[int, ...] = (32, 64, 128, 128, 256),
                 convs_per_block: tuple[int, ...] | None = None, kernel: int = 3, batch_norm: bool = True,
                 hidden: tuple[int, ...] = (256, 128), pool_size: int = 4, dropout: float = 0.3) -> None:
        super().__init__()
        convs_per_block = convs_per_block or (1,) * len(filters)
        if classes < 1 or not filters or len(convs_per_block) != len(filters) or kernel % 2 == 0:
            raise ValueError(f"classes={classes}, filters={filters}, convs_per_block={convs_per_block}, "
                             f"kernel={kernel}: expected classes ≥ 1, one count per block, an odd kernel")
        blocks, prev = [], in_channels
        for f, n in zip(filters, convs_per_block, strict=True):
            layers: list[nn.Module] = []
            for _ in range(n):
                layers += [nn.Conv2d(prev, f, kernel, padding=kernel // 2, bias=not batch_norm),
                           nn.BatchNorm2d(f) if batch_norm else nn.Identity(), nn.ReLU()]
                prev = f
            blocks.append(nn.Sequential(*layers))
        self.blocks = nn.ModuleList(blocks)
        self.pool = nn.MaxPool2d(2)
        self.squeeze = nn.AdaptiveAvgPool2d(pool_size)
        fcs: list[nn.Module] = []
        width = prev * pool_size * pool_size
        for h in hidden:
            fcs += [nn.Dropout(dropout), nn.Linear(width, h), nn.ReLU()]
            width = h
        fcs.append(nn.Linear(width, classes))
        self.head = nn.Sequential(nn.Flatten(), *fcs)
        self.classes = classes

    def features(self, x: torch.Tensor, layer: int) -> torch.Tensor:
        """Activation of block ``layer`` (1-based, after ReLU, before max-pooling)."""
        if not 1 <= layer <= len(self.blocks):
            raise ValueError(f"layer={layer}: this classifier has convolution blocks 1..{len(self.blocks)}")
        for block in self.blocks[: layer - 1]:
            x = self.pool(block(x))
        return self.blocks[layer - 1](x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``(N, classes)`` for ``x`` ``(N, C, H, W)`` in [-1, 1]."""
        for block in self.blocks:
            x = self.pool(block(x))
        return self.head(self.squeeze(x))
