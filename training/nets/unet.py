"""The pix2pix U-Net generator: the product's restoration network.

Layout of the original (Isola et al. 2017; thesis 002 §4.1, figure 4.1): ``levels`` encoder blocks of 4×4
stride-2 convolutions (first block without normalisation, LeakyReLU 0.2 before every later convolution), and
``levels`` decoder blocks that upsample by 2 (ReLU first, normalisation, dropout 0.5 on the three innermost
decoder blocks) and concatenate the skip connection of the same resolution. The outermost decoder block maps to
RGB and ends with ``tanh``. The thesis counts blocks on both sides: "16 blocks" = 8 levels, "8 blocks" = 4 levels.

Export notes (see DESIGN.md): the transposed-convolution decoder of the original is not quantised by NNCF/ONNX
Runtime on x86, so two export-friendly decoders are offered: ``"resize-conv"`` (nearest ×2 + convolution) and
``"pixelshuffle"`` (convolution to 4× channels + ``PixelShuffle(2)``, i.e. ONNX ``DepthToSpace``).
``space_to_depth=2`` wraps the network in ``PixelUnshuffle(2)`` / ``PixelShuffle(2)`` so that every convolution runs
at half resolution.

The forward pass has no data-dependent Python control flow and no in-place operations, so it traces and exports to
ONNX (opset 17); in eval mode it is deterministic (dropout off, batch-norm running statistics).
"""

from __future__ import annotations

import torch
from torch import nn

from . import DECODERS, NORMS

__all__ = ["DECODERS", "NORMS", "UNetGenerator", "brenner_gradient", "make_norm", "make_upsampler"]


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not valid; expected one of {', '.join(map(repr, choices))}")


def make_norm(norm: str, channels: int) -> nn.Module:
    """Normalisation layer by name: ``"batch"``, ``"instance"`` or ``"none"`` (identity)."""
    _check_choice("norm", norm, NORMS)
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "instance":
        # pix2pix/CycleGAN use non-affine instance norm without running statistics.
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    return nn.Identity()


def _down_conv(cin: int, cout: int, kernel: int, bias: bool) -> nn.Conv2d:
    """A stride-2 convolution that halves an even-sized input exactly for any kernel ≥ 2."""
    return nn.Conv2d(cin, cout, kernel, stride=2, padding=(kernel - 1) // 2, bias=bias)


def make_upsampler(decoder: str, cin: int, cout: int, kernel: int, bias: bool) -> nn.Module:
    """A ×2 upsampling layer from ``cin`` to ``cout`` channels.

    ``"transpose"`` is the original transposed convolution (``kernel``×``kernel``, stride 2). ``"resize-conv"`` is a
    nearest-neighbour resize followed by an odd-sized convolution (``kernel - 1`` when ``kernel`` is even, so that
    "same" padding is symmetric). ``"pixelshuffle"`` is an odd-sized convolution to ``4 * cout`` channels followed
    by ``PixelShuffle(2)`` (sub-pixel convolution, Shi et al. 2016).
    """
    _check_choice("decoder", decoder, DECODERS)
    if decoder == "transpose":
        pad = (kernel - 1) // 2
        return nn.ConvTranspose2d(cin, cout, kernel, stride=2, padding=pad, output_padding=2 + 2 * pad - kernel,
                                  bias=bias)
    k = kernel if kernel % 2 == 1 else kernel - 1
    if decoder == "resize-conv":
        return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                             nn.Conv2d(cin, cout, k, padding=k // 2, bias=bias))
    return nn.Sequential(nn.Conv2d(cin, 4 * cout, k, padding=k // 2, bias=bias), nn.PixelShuffle(2))


def brenner_gradient(x: torch.Tensor, *, channel: int = 1) -> torch.Tensor:
    """Brenner focus measure per image: mean squared difference of pixels two apart, both directions.

    Parameters
    ----------
    x : torch.Tensor
        ``(N, C, H, W)``.
    channel : int
        Channel measured: 1 = green of RGB (the thesis's focus channel); 0 for gray images.

    Returns
    -------
    torch.Tensor
        ``(N,)`` focus scores; larger is sharper.
    """
    g = x[:, channel:channel + 1]
    dx = g[:, :, :, 2:] - g[:, :, :, :-2]
    dy = g[:, :, 2:, :] - g[:, :, :-2, :]
    return dx.pow(2).mean(dim=(1, 2, 3)) + dy.pow(2).mean(dim=(1, 2, 3))


class UNetGenerator(nn.Module):
    """pix2pix U-Net generator with export-friendly options.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of one capture and of the output (3 = RGB).
    inputs : int
        Captures concatenated on the channel axis (1, or 2 for the two-shot ``pix2pix-dist-2inputs``): the input
        tensor has ``in_channels * inputs`` channels.
    filters : int
        Filters of the first block (64 original, 16 in ``pix2pix-dist-fast``); doubles per level up to
        ``max_filters``.
    levels : int
        Encoder blocks (= decoder blocks); 8 in the original "16 blocks" network, 4 in the "8 blocks" one.
    kernel : int
        Kernel of the stride-2 convolutions (4 original; 3 tried in the thesis).
    norm : {"batch", "instance", "none"}
    dropout : float
        Dropout probability on the three innermost decoder blocks (0.5 as pix2pix; 0 disables).
    decoder : {"transpose", "resize-conv", "pixelshuffle"}
        Upsampling of the decoder; ``"transpose"`` is the original (see module notes).
    residual : bool
        If true the network predicts a correction: ``output = clamp(base + tanh(raw), -1, 1)`` where ``base`` is the
        input capture; with two inputs, ``base`` is the sharper capture by Brenner gradient, selected inside the
        graph (a per-sample 0/1 weight, no Python branching), so exported models need no help from the runtime.
    space_to_depth : {1, 2}
        2 = ``PixelUnshuffle(2)`` on the input and ``PixelShuffle(2)`` on the output: all convolutions run at half
        resolution on 4× channels.
    max_filters : int or None
        Cap on filters per block; ``8 * filters`` (pix2pix) when None.

    Attributes
    ----------
    pad_multiple : int
        Input height and width must be multiples of this (``2**levels * space_to_depth``).

    Example
    -------
    >>> g = UNetGenerator(filters=16, levels=4, decoder="pixelshuffle")
    >>> g(torch.zeros(1, 3, 64, 64)).shape
    torch.Size([1, 3, 64, 64])
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        out_channels: int = 3,
        inputs: int = 1,
        filters: int = 64,
        levels: int = 8,
        kernel: int = 4,
        norm: str = "batch",
        dropout: float = 0.5,
        decoder: str = "transpose",
        residual: bool = False,
        space_to_depth: int = 1,
        max_filters: int | None = None,
    ) -> None:
        super().__init__()
        _check_choice("norm", norm, NORMS)
        _check_choice("decoder", decoder, DECODERS)
        if space_to_depth not in (1, 2):
            raise ValueError(f"space_to_depth={space_to_depth!r} is not valid; expected 1 or 2")
        if inputs not in (1, 2):
            raise ValueError(f"inputs={inputs!r} is not valid; expected 1 or 2 captures")
        if levels < 1 or filters < 1 or kernel < 2 or in_channels < 1 or out_channels < 1:
            raise ValueError(
                f"levels={levels}, filters={filters}, kernel={kernel}, in_channels={in_channels}, "
                f"out_channels={out_channels}: expected levels ≥ 1, filters ≥ 1, kernel ≥ 2, channels ≥ 1"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout={dropout!r} is not valid; expected a probability in [0, 1)")
        if residual and in_channels != out_channels:
            raise ValueError("residual=True needs in_channels == out_channels (the output is input + correction)")
        self.in_channels, self.out_channels, self.inputs = in_channels, out_channels, inputs
        self.filters, self.levels, self.kernel, self.norm_name = filters, levels, kernel, norm
        self.decoder_name, self.residual, self.space_to_depth = decoder, residual, space_to_depth
        self.max_filters = 8 * filters if max_filters is None else max_filters
        s2 = space_to_depth * space_to_depth
        cin, cout = in_channels * inputs * s2, out_channels * s2
        bias = norm != "batch"  # a bias before batch norm is redundant (pix2pix)
        ch = [min(filters * 2**i, self.max_filters) for i in range(levels)]

        self.unshuffle = nn.PixelUnshuffle(2) if space_to_depth == 2 else nn.Identity()
        self.shuffle = nn.PixelShuffle(2) if space_to_depth == 2 else nn.Identity()
        enc: list[nn.Module] = []
        for i in range(levels):
            if i == 0:
                enc.append(_down_conv(cin, ch[0], kernel, bias=True))
            else:
                innermost = i == levels - 1
                enc.append(nn.Sequential(
                    nn.LeakyReLU(0.2),
                    _down_conv(ch[i - 1], ch[i], kernel, bias=bias or innermost),
                    nn.Identity() if innermost else make_norm(norm, ch[i]),
                ))
        dec: list[nn.Module] = []
        for i in range(levels):  # dec[i] produces the resolution of enc[i]'s input
            d_in = ch[i] if i == levels - 1 else 2 * ch[i]
            if i == 0:
                dec.append(nn.Sequential(nn.ReLU(), make_upsampler(decoder, d_in, cout, kernel, bias=True)))
            else:
                drop = dropout > 0 and i >= levels - 3
                dec.append(nn.Sequential(
                    nn.ReLU(),
                    make_upsampler(decoder, d_in, ch[i - 1], kernel, bias=bias),
                    make_norm(norm, ch[i - 1]),
                    nn.Dropout(dropout) if drop else nn.Identity(),
                ))
        self.encoder = nn.ModuleList(enc)
        self.decoder = nn.ModuleList(dec)
        self._init_weights()

    def _init_weights(self) -> None:
        # pix2pix: normal(0, 0.02) for convolutions, normal(1, 0.02) for batch-norm scale.
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    @property
    def pad_multiple(self) -> int:
        """Height and width of the input must be multiples of this."""
        return 2**self.levels * self.space_to_depth

    def residual_base(self, x: torch.Tensor) -> torch.Tensor:
        """The capture the residual is added to: the input, or the sharper of two captures (Brenner gradient)."""
        c = self.in_channels
        if self.inputs == 1:
            return x
        a, b = x[:, :c], x[:, c:2 * c]
        k = 1 if c >= 3 else 0
        w = (brenner_gradient(a, channel=k) >= brenner_gradient(b, channel=k)).to(x.dtype).view(-1, 1, 1, 1)
        return w * a + (1 - w) * b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Restore ``x`` (``(N, in_channels * inputs, H, W)`` in [-1, 1], H and W multiples of ``pad_multiple``)."""
        h = self.unshuffle(x)
        skips = []
        for block in self.encoder:
            h = block(h)
            skips.append(h)
        h = self.decoder[-1](skips[-1])
        for i in range(self.levels - 2, -1, -1):
            h = self.decoder[i](torch.cat([h, skips[i]], dim=1))
        h = self.shuffle(h)
        if self.residual:
            return torch.clamp(self.residual_base(x) + torch.tanh(h), -1.0, 1.0)
        return torch.tanh(h)
