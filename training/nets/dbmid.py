"""DBMID's deblurring network (Ma et al., paper 003, figure 2): a RED-Net encoder-decoder.

Very deep convolutional encoder-decoder with symmetric skip connections (Mao et al. 2016): ``layers``
convolutions on each side, grouped in stages of widths ``filters`` (32, 64, 128 in the paper); each stage after the
first starts with a stride-2 convolution and the decoder mirrors it with a stride-2 transposed convolution. Every
``skip_every`` layers the encoder feature of the mirrored position is *added* to the decoder feature (the paper's
"skip connection is implemented by the sum operation"). The last skip adds the input itself, so the network learns
the correction; the output is clamped to [-1, 1].
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["REDNet"]


class REDNet(nn.Module):
    """RED-Net style deblurring network.

    Parameters
    ----------
    in_channels, out_channels : int
    filters : tuple of int
        Width of each stage.
    layers : int
        Convolutions per side (21), spread evenly over the stages.
    kernel : {3, 5}
    skip_every : int
        Distance in layers between summed skips.
    """

    def __init__(self, *, in_channels: int = 3, out_channels: int = 3, filters: tuple[int, ...] = (32, 64, 128),
                 layers: int = 21, kernel: int = 3, skip_every: int = 2) -> None:
        super().__init__()
        stages = len(filters)
        per = [layers // stages + (1 if s < layers % stages else 0) for s in range(stages)]
        widths = [f for f, n in zip(filters, per, strict=True) for _ in range(n)]
        strides = [2 if (s > 0 and j == 0) else 1 for s, n in enumerate(per) for j in range(n)]
        p = kernel // 2
        enc, prev = [], in_channels
        for w, s in zip(widths, strides, strict=True):
            enc.append(nn.Sequential(nn.Conv2d(prev, w, kernel, stride=s, padding=p), nn.ReLU()))
            prev = w
        dec = []
        # Decoder layer j mirrors encoder layer L-1-j and maps back to the width that layer received.
        ins = [in_channels, *widths[:-1]]
        for j in range(layers):
            i = layers - 1 - j
            cout = ins[i] if i > 0 else widths[0]
            if strides[i] == 2:
                conv = nn.ConvTranspose2d(prev, cout, kernel, stride=2, padding=p, output_padding=1)
            else:
                conv = nn.Conv2d(prev, cout, kernel, padding=p)
            dec.append(nn.Sequential(conv, nn.ReLU()))
            prev = cout
        self.enc, self.dec = nn.ModuleList(enc), nn.ModuleList(dec)
        self.out = nn.Conv2d(prev, out_channels, kernel, padding=p)
        self.skip_every, self.layers, self.out_channels = skip_every, layers, out_channels
        self.pad_multiple = 2 ** (stages - 1)
        self.inputs = max(1, in_channels // out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Restore ``x`` ``(N, C, H, W)`` in [-1, 1]; H, W multiples of ``pad_multiple``."""
        feats = [x]
        h = x
        for layer in self.enc:
            h = layer(h)
            feats.append(h)
        for j, layer in enumerate(self.dec):
            h = layer(h)
            i = self.layers - 1 - j  # h now has the shape of the input of encoder layer i, i.e. feats[i]
            if i > 0 and (j + 1) % self.skip_every == 0:
                h = h + feats[i]
        return torch.clamp(x[:, : self.out_channels] + self.out(h), -1.0, 1.0)
