"""The model spec classes: one frozen dataclass per family of systems in the reference papers.

A spec holds everything needed to rebuild a network and train it the way its paper did: the architecture options
of the main network (the generator, or the classifier), the auxiliary networks (discriminator, frozen feature
networks) and the loss weights. ``dataclasses.asdict(spec)`` is what a run's ``config.json`` stores.

The named variants (``pix2pix``, ``pix2pix-dist-fast``, ``tsva`` …) are registered in
:mod:`virtualfocus.training.registry`; the registry machinery is :mod:`virtualfocus.training._registry`. This
module imports torch only when a network is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from virtualfocus.edge.errors import InputError

if TYPE_CHECKING:  # torch is imported only when a network is built
    from torch import nn

__all__ = [
    "ADVERSARIAL",
    "BLUR_CLASSES",
    "PIXEL_LOSSES",
    "THESIS_OFFSETS_UM",
    "AutoencoderSpec",
    "BlurClassifierSpec",
    "ClassifierSpec",
    "DBMIDSpec",
    "DeblurGANSpec",
    "FocusDistanceSpec",
    "FuseGANSpec",
    "ModelSpec",
    "NAFNetSpec",
    "PANSpec",
    "Pix2PixSpec",
    "RestorationSpec",
    "TSVASpec",
]

ADVERSARIAL = ("none", "bce", "wgan-gp")
PIXEL_LOSSES = ("l1", "mse", "charbonnier")
THESIS_OFFSETS_UM: tuple[float, ...] = tuple(round(-1.4 + 0.2 * i, 1) for i in range(14))
_NORMS = ("batch", "instance", "none")  # == nets.NORMS (kept here so the registry never imports torch)
_DECODERS = ("transpose", "resize-conv", "pixelshuffle")  # == nets.DECODERS


def _choice(spec: ModelSpec, field: str, value: object, choices: tuple[Any, ...]) -> None:
    if value not in choices:
        raise InputError(f"{spec.name}: {field}={value!r} is not valid; expected one of "
                         f"{', '.join(map(repr, choices))}")


def _positive(spec: ModelSpec, **values: float) -> None:
    for k, v in values.items():
        if v < 0:
            raise InputError(f"{spec.name}: {k}={v} is not valid; expected a value ≥ 0")


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """Base of every spec.

    Attributes
    ----------
    name : str
        Registry name.
    notes : str
        Where the spec departs from its paper, and why.
    lr, betas, batch_size, crop : float, tuple, int, int
        The paper's optimiser and data defaults (a TrainConfig may override batch size and crop).
    in_channels : int
        Channels of one capture (3 = RGB).
    task : ClassVar[str]
        What the main network does: ``"restore"`` (image → image) or ``"classify"``; the trainer picks data,
        losses and validation metrics from it.
    """

    name: str
    notes: str = ""
    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.999)
    batch_size: int = 4
    crop: int = 256
    in_channels: int = 3
    task: ClassVar[str] = "restore"

    def __post_init__(self) -> None:
        _positive(self, lr=self.lr)
        if self.batch_size < 1 or self.crop < 8 or self.in_channels < 1:
            raise InputError(f"{self.name}: batch_size={self.batch_size}, crop={self.crop}, "
                             f"in_channels={self.in_channels}; expected batch_size ≥ 1, crop ≥ 8, in_channels ≥ 1")

    def build(self) -> nn.Module:
        """Build the main network (generator or classifier) with fresh weights."""
        raise NotImplementedError(f"{type(self).__name__} does not define build()")

    @property
    def pad_multiple(self) -> int:
        """Height/width multiple the main network needs (computed from the spec, without torch)."""
        return 1


# --------------------------------------------------------------------------------------------------------------
# Restoration systems: a generator, optionally a discriminator, and weighted losses.
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RestorationSpec(ModelSpec):
    """Losses and discriminator options shared by every image-to-image system.

    Attributes
    ----------
    inputs : int
        Captures the generator takes (1, or 2 for two-shot systems; concatenated on channels, the first is the
        capture to restore).
    delta_um : float
        Two-input systems: the second capture lies ``delta_um`` above the first (the two-shot ΔD).
    degradation : {"defocus", "motion"}
        What the input is: a defocused plane of the stack, or the sharp plane with synthetic motion blur
        (DBMID's DL_motion, lengths ``motion_lengths`` px horizontally or vertically).
    pixel_loss, lambda_pixel
        Pixel loss ("l1", "mse" or "charbonnier") and its weight (thesis λ_L1 = 10).
    lambda_fft : float
        Weight of the L1 loss between amplitude spectra (:func:`~.losses.fft_l1_loss`); 0 = off.
    lambda_distance, distance_layer, distance_classifier
        Distance loss (thesis §6.3.3): L1 between layer ``distance_layer`` features of a frozen focus-distance
        classifier; ``distance_classifier`` is its run directory (train ``focus-distance-classifier`` first), or
        ``"random"`` for a frozen untrained one (tests only).
    lambda_focus : float
        Focus loss (thesis §6.3.1) = FPW between output and target, green channel, 0..255 scale.
    lambda_perceptual, perceptual_layer, perceptual_network, perceptual_kind
        Perceptual loss on a frozen classifier of ours (replaces ImageNet VGG, which cannot be downloaded here);
        ``perceptual_network`` as ``distance_classifier``; ``perceptual_kind`` "mse" (DeblurGAN's feature MSE),
        "l1", or "style" (Gram-matrix style reconstruction loss the thesis tried with VGG-16, §6.3.2).
    adversarial : {"none", "bce", "wgan-gp"}
        Adversarial game: conditional BCE (pix2pix), or Wasserstein with gradient penalty (DeblurGAN).
    lambda_adv_g, lambda_adv_d : float
        Adversarial weights for generator and discriminator (λ_B, or θ in PAN).
    soft_labels : bool
        Discriminator targets drawn from [0.9, 1] (real) and [0, 0.1] (fake) (thesis §6.7).
    d_steps : int
        Discriminator updates per generator update (DeblurGAN trains the critic 5:1).
    d_every : int
        Update the discriminator only every ``d_every`` generator updates (thesis §6.7 "training ratio 1:2" = 2).
    d_lr_scale : float
        Discriminator learning rate = ``lr * d_lr_scale`` (thesis §6.7 tried 0.1).
    lambda_gp : float
        WGAN-GP gradient-penalty weight.
    dfeat_g_weights, dfeat_d_weights, dfeat_margin
        Perceptual losses on the discriminator's hidden features (PAN eq. 4.1–4.2, FuseGAN): generator loss
        Σ λ_i |H_i(Y) − H_i(Ŷ)|, discriminator loss max(0, m − Σ λ_i |H_i(Y) − H_i(Ŷ)|). Empty = off.
    """

    inputs: int = 1
    delta_um: float = 0.6
    degradation: str = "defocus"
    motion_lengths: tuple[int, ...] = (5, 10, 15, 20, 25, 30, 35, 40)
    pixel_loss: str = "l1"
    lambda_pixel: float = 10.0
    lambda_distance: float = 0.0
    distance_layer: int = 3
    distance_classifier: str | None = None
    lambda_focus: float = 0.0
    lambda_fft: float = 0.0
    lambda_perceptual: float = 0.0
    perceptual_layer: int = 3
    perceptual_network: str | None = None
    perceptual_kind: str = "mse"
    adversarial: str = "none"
    lambda_adv_g: float = 1.0
    lambda_adv_d: float = 1.0
    soft_labels: bool = False
    d_steps: int = 1
    d_every: int = 1
    d_lr_scale: float = 1.0
    lambda_gp: float = 10.0
    dfeat_g_weights: tuple[float, ...] = ()
    dfeat_d_weights: tuple[float, ...] = ()
    dfeat_margin: float = 0.0
    task: ClassVar[str] = "restore"

    def __post_init__(self) -> None:
        super().__post_init__()
        _choice(self, "adversarial", self.adversarial, ADVERSARIAL)
        _choice(self, "pixel_loss", self.pixel_loss, PIXEL_LOSSES)
        _choice(self, "inputs", self.inputs, (1, 2))
        _choice(self, "degradation", self.degradation, ("defocus", "motion"))
        _choice(self, "perceptual_kind", self.perceptual_kind, ("mse", "l1", "style"))
        if self.d_steps < 1 or self.d_every < 1:
            raise InputError(f"{self.name}: d_steps={self.d_steps}, d_every={self.d_every}; both must be ≥ 1")
        _positive(self, lambda_pixel=self.lambda_pixel, lambda_distance=self.lambda_distance,
                  lambda_focus=self.lambda_focus, lambda_fft=self.lambda_fft, lambda_perceptual=self.lambda_perceptual,
                  lambda_gp=self.lambda_gp, lambda_adv_g=self.lambda_adv_g, lambda_adv_d=self.lambda_adv_d,
                  d_lr_scale=self.d_lr_scale, delta_um=self.delta_um)
        if self.lambda_distance > 0 and self.distance_layer < 1:
            raise InputError(f"{self.name}: distance_layer={self.distance_layer}; expected ≥ 1")
        if (self.dfeat_g_weights or self.dfeat_d_weights) and self.adversarial != "bce":
            raise InputError(f"{self.name}: discriminator-feature losses (dfeat_*) need adversarial='bce'")

    @property
    def has_discriminator(self) -> bool:
        return self.adversarial != "none"

    def build_discriminator(self) -> nn.Module | None:
        """The discriminator/critic (conditional: it sees the capture(s) and the image), or None."""
        return None


@dataclass(frozen=True, kw_only=True)
class Pix2PixSpec(RestorationSpec):
    """pix2pix family: :class:`~virtualfocus.training.nets.unet.UNetGenerator` + PatchGAN.

    Generator fields are those of ``UNetGenerator`` (see there); ``d_filters``, ``d_layers`` (3 = 70×70 patches,
    1 = the thesis's 16×16 "smaller D") and ``d_norm`` configure the PatchGAN.
    """

    out_channels: int = 3
    filters: int = 64
    levels: int = 8
    kernel: int = 4
    norm: str = "batch"
    dropout: float = 0.5
    decoder: str = "transpose"
    residual: bool = False
    space_to_depth: int = 1
    max_filters: int | None = None
    d_filters: int = 64
    d_layers: int = 3
    d_norm: str = "batch"

    def __post_init__(self) -> None:
        super().__post_init__()
        _choice(self, "decoder", self.decoder, _DECODERS)
        _choice(self, "norm", self.norm, _NORMS)
        _choice(self, "d_norm", self.d_norm, _NORMS)
        _choice(self, "space_to_depth", self.space_to_depth, (1, 2))
        if self.levels < 1 or self.filters < 1 or self.kernel < 2 or self.d_layers < 1:
            raise InputError(f"{self.name}: levels={self.levels}, filters={self.filters}, kernel={self.kernel}, "
                             f"d_layers={self.d_layers}; expected levels, filters, d_layers ≥ 1 and kernel ≥ 2")
        if not 0 <= self.dropout < 1:
            raise InputError(f"{self.name}: dropout={self.dropout}; expected a probability in [0, 1)")

    @property
    def pad_multiple(self) -> int:
        return 2**self.levels * self.space_to_depth

    def build(self) -> nn.Module:
        from .nets.unet import UNetGenerator

        return UNetGenerator(
            in_channels=self.in_channels, out_channels=self.out_channels, inputs=self.inputs, filters=self.filters,
            levels=self.levels, kernel=self.kernel, norm=self.norm, dropout=self.dropout, decoder=self.decoder,
            residual=self.residual, space_to_depth=self.space_to_depth, max_filters=self.max_filters,
        )

    def build_discriminator(self) -> nn.Module | None:
        if not self.has_discriminator:
            return None
        from .nets.patchgan import PatchDiscriminator

        # A WGAN critic must not use batch norm (the gradient penalty is per sample): DeblurGAN uses instance norm.
        norm = "instance" if self.adversarial == "wgan-gp" and self.d_norm == "batch" else self.d_norm
        return PatchDiscriminator(in_channels=self.in_channels * (self.inputs + 1), filters=self.d_filters,
                                  layers=self.d_layers, norm=norm)


@dataclass(frozen=True, kw_only=True)
class PANSpec(RestorationSpec):
    """Perceptual adversarial network (thesis §4.2): conv-3×3 encoder / deconv-4×4 decoder + PAN discriminator.

    ``filters`` of the first encoder layer doubles per level up to 8×, ``levels`` encoder and decoder layers.
    The discriminator's nine convolutions have ``d_filters``; layers 1, 4, 6, 8 feed the perceptual losses.
    """

    out_channels: int = 3
    filters: int = 64
    levels: int = 5
    d_filters: tuple[int, ...] = (64, 128, 128, 256, 256, 512, 512, 512, 8)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.levels < 1 or self.filters < 1 or len(self.d_filters) != 9:
            raise InputError(f"{self.name}: levels={self.levels}, filters={self.filters}, "
                             f"{len(self.d_filters)} d_filters; expected ≥ 1, ≥ 1 and 9")

    @property
    def pad_multiple(self) -> int:
        return 2**self.levels

    def build(self) -> nn.Module:
        from .nets.resnet_gen import PANGenerator

        return PANGenerator(in_channels=self.in_channels * self.inputs, out_channels=self.out_channels,
                            filters=self.filters, levels=self.levels)

    def build_discriminator(self) -> nn.Module | None:
        if not self.has_discriminator:
            return None
        from .nets.patchgan import PANDiscriminator

        return PANDiscriminator(in_channels=self.in_channels * (self.inputs + 1), filters=self.d_filters)


@dataclass(frozen=True, kw_only=True)
class DeblurGANSpec(RestorationSpec):
    """DeblurGAN (thesis §4.3; Kupyn et al. 2018): ResNet generator with a global skip + PatchGAN critic.

    ``decoder="resize-conv"`` is the checkerboard-free variant paper 004 used (§3.2 "upgraded DeblurGAN").
    """

    out_channels: int = 3
    filters: int = 64
    blocks: int = 9
    downsamplings: int = 2
    norm: str = "instance"
    dropout: float = 0.5
    decoder: str = "transpose"
    d_filters: int = 64
    d_layers: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        _choice(self, "decoder", self.decoder, ("transpose", "resize-conv"))
        _choice(self, "norm", self.norm, _NORMS)
        if self.blocks < 0 or self.filters < 1 or self.downsamplings < 0:
            raise InputError(f"{self.name}: blocks={self.blocks}, filters={self.filters}, "
                             f"downsamplings={self.downsamplings}; expected ≥ 0, ≥ 1, ≥ 0")

    @property
    def pad_multiple(self) -> int:
        return 2**self.downsamplings

    def build(self) -> nn.Module:
        from .nets.resnet_gen import ResNetGenerator

        return ResNetGenerator(in_channels=self.in_channels * self.inputs, out_channels=self.out_channels,
                               filters=self.filters, blocks=self.blocks, downsamplings=self.downsamplings,
                               norm=self.norm, dropout=self.dropout, decoder=self.decoder)

    def build_discriminator(self) -> nn.Module | None:
        if not self.has_discriminator:
            return None
        from .nets.patchgan import PatchDiscriminator

        norm = "instance" if self.adversarial == "wgan-gp" else "batch"
        return PatchDiscriminator(in_channels=self.in_channels * (self.inputs + 1), filters=self.d_filters,
                                  layers=self.d_layers, norm=norm)


@dataclass(frozen=True, kw_only=True)
class AutoencoderSpec(RestorationSpec):
    """Convolutional autoencoders of paper 000 (Keras originals, re-expressed in PyTorch).

    ``variant="whole"``: conv(32)+BN+pool, conv(64)+pool, two stride-2 transposed convs (64, 32, ELU) + BN, conv
    to the output; trained on whole planes resized to ``crop`` (``whole_image=True``). ``variant="split"``: three
    conv(64)+pool, three conv(64)+upsample, conv to the output; trained on ``crop``×``crop`` patches. The paper's
    sigmoid output on [0, 1] becomes ``tanh`` on [-1, 1] (the same function rescaled), and RGB replaces gray.
    """

    variant: str = "whole"
    out_channels: int = 3
    filters: tuple[int, ...] = (32, 64)
    whole_image: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        _choice(self, "variant", self.variant, ("whole", "split"))
        if not self.filters or min(self.filters) < 1:
            raise InputError(f"{self.name}: filters={self.filters}; expected at least one positive width")

    @property
    def pad_multiple(self) -> int:
        return 2 ** len(self.filters)

    def build(self) -> nn.Module:
        from .nets.autoencoders import SplitAutoencoder, WholeAutoencoder

        cls = WholeAutoencoder if self.variant == "whole" else SplitAutoencoder
        return cls(in_channels=self.in_channels * self.inputs, out_channels=self.out_channels, filters=self.filters)


@dataclass(frozen=True, kw_only=True)
class TSVASpec(RestorationSpec):
    """Two-shot virtual autofocus (paper 001): two shared-weight contracting paths, one expansive path, residual.

    The sharper of the two captures (Brenner gradient, computed inside the network so exported models need no
    help) is the residual base Y1. ``filters`` doubles over ``levels`` poolings; ``decoder`` as the U-Net's.
    """

    out_channels: int = 3
    filters: int = 64
    levels: int = 4
    batch_norm: bool = True
    decoder: str = "transpose"

    def __post_init__(self) -> None:
        super().__post_init__()
        _choice(self, "decoder", self.decoder, _DECODERS)
        if self.inputs != 2:
            raise InputError(f"{self.name}: inputs={self.inputs}; TSVA takes exactly 2 captures")
        if self.levels < 1 or self.filters < 1:
            raise InputError(f"{self.name}: levels={self.levels}, filters={self.filters}; expected ≥ 1")

    @property
    def pad_multiple(self) -> int:
        return 2**self.levels

    def build(self) -> nn.Module:
        from .nets.tsva import TSVANet

        return TSVANet(in_channels=self.in_channels, out_channels=self.out_channels, filters=self.filters,
                       levels=self.levels, batch_norm=self.batch_norm, decoder=self.decoder)


@dataclass(frozen=True, kw_only=True)
class DBMIDSpec(RestorationSpec):
    """DBMID's DL_defocus / DL_motion (paper 003): RED-Net encoder-decoder with symmetric summed skips.

    ``layers`` convolutions on each side (21 in the paper) split into ``len(filters)`` stages of widths
    ``filters`` (32, 64, 128); each stage after the first starts with a stride-2 convolution, the decoder mirrors
    with stride-2 transposed convolutions; skips add encoder features to the decoder every ``skip_every`` layers.
    """

    out_channels: int = 3
    filters: tuple[int, ...] = (32, 64, 128)
    layers: int = 21
    kernel: int = 3
    skip_every: int = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        _choice(self, "kernel", self.kernel, (3, 5))
        if not self.filters or self.layers < len(self.filters) or self.skip_every < 1:
            raise InputError(f"{self.name}: filters={self.filters}, layers={self.layers}, "
                             f"skip_every={self.skip_every}; expected layers ≥ stages ≥ 1 and skip_every ≥ 1")

    @property
    def pad_multiple(self) -> int:
        return 2 ** (len(self.filters) - 1)

    def build(self) -> nn.Module:
        from .nets.dbmid import REDNet

        return REDNet(in_channels=self.in_channels * self.inputs, out_channels=self.out_channels,
                      filters=self.filters, layers=self.layers, kernel=self.kernel, skip_every=self.skip_every)


@dataclass(frozen=True, kw_only=True)
class FuseGANSpec(RestorationSpec):
    """FuseGAN (paper 004 §3.3): DenseBlock U-Net generator fusing two captures + VGG-like PatchGAN.

    Generator: conv+PReLU to ``filters``, ``levels`` DenseBlocks with average pooling, a 3-conv bottom, bilinear
    upsampling + DenseBlocks with skip concatenation, conv + tanh. Discriminator: 8 convolutions with LeakyReLU and
    a 4×4 max-pool, patch logits; its hidden features give the perceptual loss (the paper found them better than
    VGG16's). Losses as the paper's best: 2·L1 + 0.001·BCE + 1·perceptual.
    """

    out_channels: int = 3
    filters: int = 64
    growth: int = 32
    levels: int = 3
    d_filters: int = 64

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.levels < 1 or self.filters < 1 or self.growth < 1:
            raise InputError(f"{self.name}: levels={self.levels}, filters={self.filters}, growth={self.growth}; "
                             "expected ≥ 1")

    @property
    def pad_multiple(self) -> int:
        return 2**self.levels

    def build(self) -> nn.Module:
        from .nets.mmdf import FuseGANGenerator

        return FuseGANGenerator(in_channels=self.in_channels * self.inputs, out_channels=self.out_channels,
                                filters=self.filters, growth=self.growth, levels=self.levels)

    def build_discriminator(self) -> nn.Module | None:
        if not self.has_discriminator:
            return None
        from .nets.mmdf import FuseGANDiscriminator

        return FuseGANDiscriminator(in_channels=self.in_channels * (self.inputs + 1), filters=self.d_filters)


# --------------------------------------------------------------------------------------------------------------
# Classifiers
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class NAFNetSpec(RestorationSpec):
    """NAFNet-style restorer: :class:`~virtualfocus.training.nets.nafnet.NAFNet` (residual U-net of NAF blocks).

    ``width`` channels at full resolution, ``enc_blocks`` / ``dec_blocks`` NAF blocks per level and
    ``middle_blocks`` at the bottom; the network adds its output to the capture.
    """

    width: int = 16
    enc_blocks: tuple[int, ...] = (1, 1, 2)
    middle_blocks: int = 2
    dec_blocks: tuple[int, ...] = (1, 1, 1)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.inputs != 1:
            raise InputError(f"{self.name}: inputs={self.inputs}; the NAFNet restorer takes one capture")
        if self.width < 4 or len(self.enc_blocks) != len(self.dec_blocks) or not self.enc_blocks:
            raise InputError(f"{self.name}: width={self.width}, enc_blocks={self.enc_blocks}, "
                             f"dec_blocks={self.dec_blocks}; expected width ≥ 4 and equal, non-empty block lists")

    @property
    def pad_multiple(self) -> int:
        return 2 ** len(self.enc_blocks)

    def build(self) -> nn.Module:
        from .nets.nafnet import NAFNet

        return NAFNet(in_channels=self.in_channels, width=self.width, enc_blocks=tuple(self.enc_blocks),
                      middle_blocks=self.middle_blocks, dec_blocks=tuple(self.dec_blocks))


@dataclass(frozen=True, kw_only=True)
class ClassifierSpec(ModelSpec):
    """A convolutional classifier (:class:`~virtualfocus.training.nets.classifiers.ConvClassifier`).

    Attributes
    ----------
    filters, convs_per_block, kernel, batch_norm, hidden, pool_size, dropout
        Architecture: conv blocks (each ``convs_per_block[i]`` convolutions of ``filters[i]``, max-pool 2×2),
        adaptive average pool to ``pool_size``², fully connected ``hidden`` layers, then the classes.
    loss : {"ce", "rps"}
        Cross-entropy, or the ranked probability score for ordered classes (paper 004).
    """

    filters: tuple[int, ...] = (32, 64, 128, 128, 256)
    convs_per_block: tuple[int, ...] = ()
    kernel: int = 3
    batch_norm: bool = True
    hidden: tuple[int, ...] = (256, 128)
    pool_size: int = 4
    dropout: float = 0.3
    loss: str = "ce"
    batch_size: int = 16
    task: ClassVar[str] = "classify"

    def __post_init__(self) -> None:
        super().__post_init__()
        _choice(self, "loss", self.loss, ("ce", "rps"))
        if self.convs_per_block and len(self.convs_per_block) != len(self.filters):
            raise InputError(f"{self.name}: convs_per_block has {len(self.convs_per_block)} entries for "
                             f"{len(self.filters)} filters; expected one per block (or empty = 1 each)")
        if not 0 <= self.dropout < 1 or self.kernel % 2 == 0:
            raise InputError(f"{self.name}: dropout={self.dropout}, kernel={self.kernel}; expected a dropout "
                             "probability in [0, 1) and an odd kernel")

    @property
    def class_names(self) -> tuple[str, ...]:
        raise NotImplementedError

    def build(self) -> nn.Module:
        from .nets.classifiers import ConvClassifier

        return ConvClassifier(in_channels=self.in_channels, classes=len(self.class_names), filters=self.filters,
                              convs_per_block=self.convs_per_block or (1,) * len(self.filters),
                              kernel=self.kernel, batch_norm=self.batch_norm, hidden=self.hidden,
                              pool_size=self.pool_size, dropout=self.dropout)


@dataclass(frozen=True, kw_only=True)
class FocusDistanceSpec(ClassifierSpec):
    """Focus-offset classifier: the label of a capture is the nearest of ``offsets_um`` (signed, or its
    magnitude when ``absolute``)."""

    offsets_um: tuple[float, ...] = THESIS_OFFSETS_UM
    absolute: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.offsets_um) < 2 or list(self.offsets_um) != sorted(self.offsets_um):
            raise InputError(f"{self.name}: offsets_um={self.offsets_um}; expected ≥ 2 increasing class centres")

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(f"{o:+.1f}um" for o in self.offsets_um)


BLUR_CLASSES = ("in-focus", "defocus", "motion", "mixed")


@dataclass(frozen=True, kw_only=True)
class BlurClassifierSpec(ClassifierSpec):
    """DBMID blur-type classifier: in focus / defocus / motion / mixed. Captures within ``sharp_band_um`` count as
    in focus; motion blur is synthesised (``motion_lengths`` px, horizontal or vertical), mixed = motion on a
    defocused capture."""

    sharp_band_um: tuple[float, float] = (-0.2, 0.4)
    motion_lengths: tuple[int, ...] = (5, 10, 15, 20, 25, 30, 35, 40)

    @property
    def class_names(self) -> tuple[str, ...]:
        return BLUR_CLASSES
