"""The model registry: every system of the reference papers as a named, frozen spec.

A spec is a frozen dataclass holding everything needed to rebuild a network and train it the way its paper did:
the architecture options of the main network (the generator, or the classifier), the auxiliary networks
(discriminator, frozen feature networks) and the loss weights. ``dataclasses.asdict(spec)`` is what a run's
``config.json`` stores, and ``get_spec(name, **fields)`` rebuilds the same spec.

Registered names (the names people say out loud)::

    pix2pix                 U-Net 64 filters / 16 blocks + 70×70 PatchGAN, BCE + L1 (thesis §4.1)
    pix2pix-cnn             the same generator alone, L1 (thesis §6.7 "Pix2pix CNN")
    pan                     perceptual adversarial network (thesis §4.2)
    deblurgan               ResNet generator, WGAN-GP critic + perceptual loss (thesis §4.3)
    pix2pix-dist            pix2pix + distance loss on layer 3 of the focus-distance classifier, λ = 50 (§6.3.3)
    pix2pix-dist-2inputs    two captures concatenated on channels (§6.4)
    pix2pix-dist-fast       16 filters, 8 blocks (4 levels) (§6.5)
    focus-distance-classifier   5 conv + max-pool, 3 FC; classifies the focus offset (§6.3.3)
    autoencoder-whole       whole-image convolutional autoencoder (paper 000 §4.1)
    autoencoder-split       patch ("split image") autoencoder (paper 000 §4.2)
    tsva                    two-shot virtual autofocus: shared-weight contracting paths, residual (paper 001)
    dbmid-blur-classifier   VGG16 blur-type classifier: in focus / defocus / motion / mixed (paper 003)
    dbmid-defocus           RED-Net encoder-decoder for defocus blur (paper 003)
    dbmid-motion            the same network for motion blur (paper 003)
    mmdf-focus-classifier   per-tile focus level, rank-probability loss (paper 004 §3.1)
    fusegan                 multi-focus fusion GAN, DenseBlock U-Net (paper 004 §3.3)

No ImageNet weights can be downloaded here: every "VGG" perceptual loss of the papers is replaced by features of
our own trained focus-distance classifier (``perceptual_network=RUN_DIR``), or of the discriminator where the paper
already allows it (PAN, FuseGAN). ``"random"`` instead of a run directory means a frozen, seeded, untrained
classifier, which is only meant for tests.

Example
-------
>>> from virtualfocus.training.registry import create_model, get_spec
>>> g = create_model("pix2pix-dist-fast", decoder="pixelshuffle")
>>> get_spec("pix2pix-dist-fast").pad_multiple
16
"""

from __future__ import annotations

import dataclasses
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
    "create_model",
    "get_spec",
    "list_models",
    "register",
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


def _vgg_note(what: str) -> str:
    return (f"{what} No ImageNet weights can be downloaded here: trained from scratch (with batch norm, "
            "i.e. VGG16-BN, which trains from scratch reliably).")


# --------------------------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------------------------

_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add ``spec`` under ``spec.name``.

    Raises
    ------
    KeyError
        When the name is already registered.
    """
    if spec.name in _REGISTRY:
        raise KeyError(f"model {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def list_models() -> list[str]:
    """Registered names, in registration order."""
    return list(_REGISTRY)


def get_spec(name: str, **overrides: Any) -> ModelSpec:
    """The spec registered as ``name`` with ``overrides`` applied (validated).

    Raises
    ------
    KeyError
        Unknown name; the message lists the known names.
    InputError
        Unknown field or invalid value; the message lists the valid fields.
    """
    try:
        spec = _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(_REGISTRY)}") from None
    overrides = {k: v for k, v in overrides.items() if k != "name"}
    if not overrides:
        return spec
    valid = {f.name for f in dataclasses.fields(spec)} - {"name"}
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise InputError(f"{name}: unknown field(s) {', '.join(unknown)}; valid fields: {', '.join(sorted(valid))}")
    for k, v in overrides.items():  # JSON gives lists where specs hold tuples
        if isinstance(v, list):
            overrides[k] = tuple(v)
    return dataclasses.replace(spec, **overrides)


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build the main network of ``name`` (generator or classifier) with fresh weights.

    Example
    -------
    >>> create_model("pix2pix-dist-fast", decoder="resize-conv").pad_multiple
    16
    """
    return get_spec(name, **overrides).build()


_P2P = "pix2pix U-Net (64 filters, 16 blocks = 8 levels, 4×4 kernels, BN, dropout 0.5) "
register(Pix2PixSpec(name="pix2pix", adversarial="bce", lambda_pixel=10.0, lambda_adv_g=1.0, lambda_adv_d=1.0,
                     notes=_P2P + "+ 70×70 PatchGAN, λ_L1 = 10, λ_BCE = 1 (thesis §4.1, table 4.1)."))
register(Pix2PixSpec(name="pix2pix-cnn", adversarial="none", lambda_pixel=10.0,
                     notes=_P2P + "trained alone with L1 (thesis §6.7 'Pix2pix CNN', table 6.17)."))
register(PANSpec(name="pan", adversarial="bce", lambda_pixel=0.0, lambda_adv_g=2.0, lambda_adv_d=10.0,
                 dfeat_g_weights=(100.0, 1.0, 1.0, 1.0), dfeat_d_weights=(5.0, 1.5, 1.5, 5.0), dfeat_margin=50.0,
                 notes="PAN (thesis §4.2, table 4.2). Generator filter counts are not given in the thesis "
                       "(figure 4.3): 64 doubling to 512 over 5 levels is our reading. The margin m is not "
                       "published; 50 is our choice."))
register(DeblurGANSpec(name="deblurgan", adversarial="wgan-gp", lambda_pixel=0.0, lambda_adv_g=1.0,
                       lambda_adv_d=1.0, lambda_gp=1.0, d_steps=5, batch_size=1, lambda_perceptual=100.0,
                       perceptual_layer=3,
                       notes="DeblurGAN (thesis §4.3, table 4.3; critic 5:1, batch 1). The VGG-19 conv3_3 "
                             "perceptual loss uses layer 3 of our own focus-distance classifier instead "
                             "(perceptual_network=RUN_DIR); ImageNet VGG cannot be downloaded here."))
_DIST = "+ distance loss: L1 on layer 3 of a frozen focus-distance classifier, λ = 50 (thesis §6.3.3). "
register(Pix2PixSpec(name="pix2pix-dist", adversarial="bce", lambda_distance=50.0, distance_layer=3,
                     notes=_P2P + "+ 70×70 PatchGAN " + _DIST + "Set distance_classifier=RUN_DIR of a trained "
                                                                "focus-distance-classifier."))
register(Pix2PixSpec(name="pix2pix-dist-2inputs", inputs=2, adversarial="bce", lambda_distance=50.0,
                     notes="pix2pix-dist with two captures ±ΔD concatenated on channels (thesis §6.4); the "
                           "discriminator is conditioned on both. Set distance_classifier=RUN_DIR."))
register(Pix2PixSpec(name="pix2pix-dist-fast", filters=16, levels=4, adversarial="bce", lambda_distance=50.0,
                     notes="pix2pix-dist with 16 filters and 8 blocks (4 levels) (thesis §6.5, figure 6.7). "
                           "Export-friendly decoders: decoder='resize-conv' or 'pixelshuffle'; "
                           "space_to_depth=2 halves the resolution of every convolution. adversarial='none' "
                           "trains the generator alone (≈10× faster on CPU; thesis table 6.17 found it as good). "
                           "Set distance_classifier=RUN_DIR."))
register(FocusDistanceSpec(name="focus-distance-classifier", filters=(16, 32, 64, 64, 128), hidden=(256, 128),
                           notes="The thesis's distance network (CellaVision's, §6.3.3, figure 6.5): 5 conv + "
                                 "max-pool blocks, 3 FC layers; filter counts are not published (ours: 16-32-64-"
                                 "64-128, 3×3, BN — narrow because the distance loss runs it on every generator "
                                 "step: its first 3 layers cost ≈ half the 16-filter generator). 14 classes: "
                                 "−1.4…+1.2 µm in 0.2 µm steps."))
register(AutoencoderSpec(name="autoencoder-whole", variant="whole", filters=(32, 64), whole_image=True,
                         pixel_loss="l1", lambda_pixel=1.0, lr=1e-3, batch_size=16, crop=128,
                         notes="Paper 000 §4.1 (whole image resized to 128×128, L1, Adam 1e-3, batch 16); RGB "
                               "instead of gray, tanh instead of sigmoid."))
register(AutoencoderSpec(name="autoencoder-split", variant="split", filters=(64, 64, 64), whole_image=False,
                         pixel_loss="l1", lambda_pixel=1.0, lr=1e-3, batch_size=16, crop=128,
                         notes="Paper 000 §4.2 (128×128 patches, L1, Adam 1e-3, batch 16); RGB instead of gray, "
                               "tanh instead of sigmoid."))
register(TSVASpec(name="tsva", inputs=2, delta_um=0.6, pixel_loss="mse", lambda_pixel=1.0, lr=5e-4, batch_size=20,
                  notes="Paper 001: two shared-weight contracting paths (2×conv3×3+BN+ReLU, max-pool, doubling "
                        "from 64), expansive path with both skips, residual from the sharper capture by Brenner "
                        "gradient (inside the network), MSE, Adam 5e-4, batch 20."))
register(BlurClassifierSpec(name="dbmid-blur-classifier", filters=(64, 128, 256, 512, 512),
                            convs_per_block=(2, 2, 3, 3, 3), hidden=(4096, 4096), pool_size=7, dropout=0.5,
                            crop=224, lr=1e-4, batch_size=16,
                            notes=_vgg_note("Paper 003: VGG16 blur-type classifier (in focus / defocus / motion "
                                            "/ mixed).")))
register(DBMIDSpec(name="dbmid-defocus", degradation="defocus", pixel_loss="mse", lambda_pixel=1.0, lr=1e-4,
                   batch_size=64, crop=128,
                   notes="Paper 003 DL_defocus: RED-Net encoder-decoder, 21 layers per side, 32/64/128 filters, "
                         "summed skips, MSE, Adam 1e-4, batch 64."))
register(DBMIDSpec(name="dbmid-motion", degradation="motion", pixel_loss="mse", lambda_pixel=1.0, lr=1e-4,
                   batch_size=64, crop=128,
                   notes="Paper 003 DL_motion: as dbmid-defocus, trained on synthetic uniform motion blur of the "
                         "sharp plane (5–40 px, horizontal or vertical)."))
register(FocusDistanceSpec(name="mmdf-focus-classifier", offsets_um=tuple(round(0.2 * i, 1) for i in range(10)),
                           absolute=True, filters=(32, 64), kernel=5, batch_norm=False, hidden=(1024,),
                           pool_size=21, dropout=0.5, loss="rps", crop=84, lr=5e-6, batch_size=32,
                           notes="Paper 004 §3.1 (after Yang et al. 2018): two 5×5 conv + ReLU + max-pool, FC with "
                                 "dropout, 10 defocus levels (|offset| 0…1.8 µm), rank-probability loss, 84×84 "
                                 "tiles, Adam 5e-6. Max-pool stride 2 (as Yang et al.; stride 1 as printed would "
                                 "make the FC layer 350 M weights)."))
register(FuseGANSpec(name="fusegan", inputs=2, adversarial="bce", pixel_loss="l1", lambda_pixel=2.0,
                     lambda_adv_g=0.001, lambda_adv_d=1.0, dfeat_g_weights=(1.0, 1.0, 1.0, 1.0), lr=5e-5,
                     betas=(0.0, 0.999), batch_size=4,
                     notes="Paper 004 §3.3 supervised FuseGAN: two captures ±ΔD fused into the sharp plane; "
                           "G loss 2·L1 + 0.001·BCE + 1·perceptual on the discriminator's features (the paper's "
                           "best; VGG16 is unavailable here anyway), Adam 5e-5 β=(0, 0.999)."))

_NAF = ("NAFNet-style residual U-net (Chen et al. 2022: LayerNorm, SimpleGate, simplified channel attention), "
        "10 × MSE + 0.5 × FFT-amplitude L1, Adam 1e-3 β=(0.9, 0.9) cosine, batch 8 of 128×128. The project's own "
        "recipe for randomized bright-field defocus, not a paper's system.")
register(NAFNetSpec(name="nafnet-w16", width=16, enc_blocks=(1, 1, 2), middle_blocks=2, dec_blocks=(1, 1, 1),
                    pixel_loss="mse", lambda_pixel=10.0, lambda_fft=0.5, lr=1e-3, betas=(0.9, 0.9),
                    batch_size=8, crop=128, notes=_NAF))
register(NAFNetSpec(name="nafnet-w32", width=32, enc_blocks=(1, 1, 2, 4), middle_blocks=4, dec_blocks=(1, 1, 1, 1),
                    pixel_loss="mse", lambda_pixel=10.0, lambda_fft=0.5, lr=1e-3, betas=(0.9, 0.9),
                    batch_size=8, crop=128, notes=_NAF))
