"""The model registry: every system of the reference papers as a named, frozen spec.

The spec classes are in :mod:`virtualfocus.training.specs`, the machinery (duplicate names raise, unknown names
raise ``KeyError`` listing the known ones, overrides are checked against the spec's fields) in
:mod:`virtualfocus.training._registry`; this module registers the named variants, each where it is defined below.
``dataclasses.asdict(spec)`` is what a run's ``config.json`` stores, and ``get_spec(name, **fields)`` rebuilds
the same spec.

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

and the project's own restorers, named by architecture and width (not a paper's system)::

    nafnet-w16              NAFNet-style residual U-net, 16 channels, 3 levels (the full model trained here)
    nafnet-w32              the same, 32 channels, 4 levels (6.9 M parameters: its fp16 weights fit a 20 MB file)
    unet-f40-l5, unet-f16-l4    the runtime's U-Net students (distilled from a full model by the compression stage)

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

from typing import TYPE_CHECKING, Any

from ._registry import Registry
from .specs import (
    ADVERSARIAL,
    BLUR_CLASSES,
    PIXEL_LOSSES,
    THESIS_OFFSETS_UM,
    AutoencoderSpec,
    BlurClassifierSpec,
    ClassifierSpec,
    DBMIDSpec,
    DeblurGANSpec,
    FocusDistanceSpec,
    FuseGANSpec,
    ModelSpec,
    NAFNetSpec,
    PANSpec,
    Pix2PixSpec,
    RestorationSpec,
    TSVASpec,
)

if TYPE_CHECKING:  # torch is imported only when a network is built
    from torch import nn

__all__ = [
    "ADVERSARIAL",
    "BLUR_CLASSES",
    "MODELS",
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

MODELS: Registry[ModelSpec] = Registry("model")


def register(spec: ModelSpec) -> ModelSpec:
    """Add ``spec`` under ``spec.name``.

    Raises
    ------
    KeyError
        When the name is already registered.
    """
    return MODELS.register(spec)


def list_models() -> list[str]:
    """Registered names, in registration order."""
    return MODELS.names()


def get_spec(name: str, **overrides: Any) -> ModelSpec:
    """The spec registered as ``name`` with ``overrides`` applied (validated).

    Raises
    ------
    KeyError
        Unknown name; the message lists the known names.
    InputError
        Unknown field or invalid value; the message lists the valid fields.
    """
    return MODELS.get(name, **overrides)


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build the main network of ``name`` (generator or classifier) with fresh weights.

    Example
    -------
    >>> create_model("pix2pix-dist-fast", decoder="resize-conv").pad_multiple
    16
    """
    return get_spec(name, **overrides).build()


def _vgg_note(what: str) -> str:
    return (f"{what} No ImageNet weights can be downloaded here: trained from scratch (with batch norm, "
            "i.e. VGG16-BN, which trains from scratch reliably).")


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
register(NAFNetSpec(name="nafnet-w32", width=32, enc_blocks=(1, 1, 2, 2), middle_blocks=2, dec_blocks=(1, 1, 1, 1),
                    pixel_loss="mse", lambda_pixel=10.0, lambda_fft=0.5, lr=1e-3, betas=(0.9, 0.9),
                    batch_size=8, crop=128, notes=_NAF))

_UNET = ("Residual U-Net for the CPU runtime: the pix2pix generator's layout without dropout or discriminator (4×4 "
         "kernels, batch norm folded at export), pixel-shuffle decoder, space-to-depth 2 so every convolution runs "
         "at half resolution or less. Made by distillation from a full model (compression stage); the project's "
         "own, not a paper's system.")
for _f, _lv, _mf in ((40, 5, 128), (16, 4, None)):
    register(Pix2PixSpec(name=f"unet-f{_f}-l{_lv}", filters=_f, levels=_lv, max_filters=_mf, decoder="pixelshuffle",
                         space_to_depth=2,
                         residual=True, dropout=0.0, adversarial="none", lambda_distance=0.0, pixel_loss="mse",
                         lambda_pixel=10.0, lr=1e-3,
                         notes=_UNET + f" {_f} filters, {_lv} levels" + (f", at most {_mf} per level." if _mf else ".")))
