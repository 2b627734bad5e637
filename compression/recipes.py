"""The compression recipe registry: one frozen dataclass per variant, named after the variant it makes.

The machinery (duplicates raise, unknown names list the known ones) is the model registry's,
:class:`virtualfocus.training._registry.Registry`.

A recipe turns a trained *teacher* run into a *student* run:

- :class:`DistillRecipe` builds a smaller generator (fewer filters / levels, smaller kernels, an export-friendly
  decoder: the thesis's tables 6.10–6.14 grid) and trains it against the teacher's output, the ground truth and
  the teacher's intermediate features (1×1 adapters), so it starts from the teacher's knowledge.
- :class:`PruneRecipe` removes whole channels from the teacher itself with Torch-Pruning (DepGraph), rounding
  the kept channels to multiples the CPU kernels like, and fine-tunes (again distilling from the unpruned
  teacher).

Registered names::

    pix2pix-dist-fast            16 filters, 4 levels (thesis "8 blocks"), resize-conv decoder (INT8-able)
    pix2pix-dist-fast-transpose  the thesis's pix2pix-dist-fast as it was (transposed-convolution decoder)
    pix2pix-dist-fast-pixelshuffle / pix2pix-dist-fast-s2d   other export-friendly decoders
    pix2pix-dist-pruned-50       50% of the channels pruned (L2 magnitude, per layer, round to 8), fine-tuned
    pix2pix-dist-pruned-25 / -75 milder / harsher pruning
    pix2pix-dist-l7 … -l4, -f32 … -f8, -k3, -f16-k3, -f18-l5-k3, -f20-l4-k3   the thesis's reduction grid
    distill-unet-f40-l5          the runtime's quality variant (registry ``unet-f40-l5``) from any full model
    distill-unet-f16-l4          the runtime's fast variant (registry ``unet-f16-l4``) from any full model

Example
-------
>>> from virtualfocus.compression.recipes import get_recipe
>>> get_recipe("pix2pix-dist-pruned-50").ratio
0.5
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from virtualfocus.edge.errors import InputError
from virtualfocus.training._registry import Registry

__all__ = ["IMPORTANCES", "RECIPES", "DistillRecipe", "PruneRecipe", "Recipe", "get_recipe", "list_recipes", "register"]

IMPORTANCES = ("l1", "l2", "bn-scale")


@dataclass(frozen=True, kw_only=True)
class Recipe:
    """What every recipe has: the training budget and the distillation loss weights.

    Parameters
    ----------
    name, description : str
    steps : int
        Optimiser steps (distillation, or fine-tuning after pruning, in total).
    lr : float
        Adam learning rate.
    batch_size, crop : int
        Training batch and crop side.
    lambda_teacher : float
        L1 between student and teacher outputs.
    lambda_gt : float
        L1 between student output and the sharp plane.
    lambda_feature : float
        L1 between 1×1-adapted student features and teacher features of the same resolution (0 disables).
    max_defocus_um : float
        Input planes are drawn within ±this of focus.
    """

    method: ClassVar[str] = ""
    name: str
    description: str = ""
    steps: int = 2000
    lr: float = 2e-4
    batch_size: int = 4
    crop: int = 128
    lambda_teacher: float = 1.0
    lambda_gt: float = 1.0
    lambda_feature: float = 0.5
    max_defocus_um: float = 1.4

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch_size < 1 or self.crop < 16 or self.lr <= 0:
            raise InputError(f"recipe {self.name!r}: steps={self.steps}, batch_size={self.batch_size}, "
                             f"crop={self.crop}, lr={self.lr}; expected steps ≥ 0, batch ≥ 1, crop ≥ 16, lr > 0")
        if min(self.lambda_teacher, self.lambda_gt, self.lambda_feature) < 0:
            raise InputError(f"recipe {self.name!r}: loss weights must be ≥ 0")

    def fields(self) -> dict[str, Any]:
        """The recipe as a plain dict (what ``compression.json`` stores)."""
        d = dataclasses.asdict(self)
        d["method"] = self.method
        return d


@dataclass(frozen=True, kw_only=True)
class DistillRecipe(Recipe):
    """A reduced student trained from the teacher.

    Parameters
    ----------
    student : tuple of (field, value)
        Spec fields changed relative to the teacher's spec (``filters``, ``levels``, ``kernel``, ``decoder``,
        ``space_to_depth`` …), or relative to ``student_model``'s spec when that is set. Everything else (inputs,
        channels, norm) is the teacher's (or ``student_model``'s).
    student_model : str
        A registered model spec to build the student from, whatever the teacher's architecture (e.g. a U-Net
        student for the runtime distilled from a NAFNet full model); empty = the teacher's own spec, reduced.
    """

    method: ClassVar[str] = "distill"
    student: tuple[tuple[str, Any], ...] = ()
    student_model: str = ""

    @property
    def overrides(self) -> dict[str, Any]:
        return dict(self.student)


@dataclass(frozen=True, kw_only=True)
class PruneRecipe(Recipe):
    """Structured channel pruning of the teacher (Torch-Pruning DepGraph), then fine-tuning.

    Parameters
    ----------
    ratio : float
        Fraction of channels removed per layer (or globally with ``global_pruning``).
    global_pruning : bool
        Rank channels across layers instead of within each layer.
    round_to : int
        Kept channel counts are multiples of this (8 or 16 suit AVX-512/VNNI kernels).
    importance : {"l1", "l2", "bn-scale"}
        Channel importance: filter-weight magnitude (L1/L2 over the coupled group) or batch-norm scale.
    iterative_steps : int
        Prune in this many equal steps, fine-tuning ``steps // iterative_steps`` after each.
    layer_ratios : tuple of (module name, ratio)
        Per-layer ratios overriding ``ratio`` (module names as in ``model.named_modules()``).
    ignore_first_last : bool
        Never prune the first convolution's output or the output layer (their widths are the image's).
    """

    method: ClassVar[str] = "prune"
    ratio: float = 0.5
    global_pruning: bool = False
    round_to: int = 8
    importance: str = "l2"
    iterative_steps: int = 1
    layer_ratios: tuple[tuple[str, float], ...] = ()
    ignore_first_last: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.ratio < 1.0:
            raise InputError(f"recipe {self.name!r}: ratio={self.ratio}; expected 0 < ratio < 1")
        if self.round_to not in (1, 2, 4, 8, 16, 32):
            raise InputError(f"recipe {self.name!r}: round_to={self.round_to}; expected 1, 2, 4, 8, 16 or 32")
        if self.importance not in IMPORTANCES:
            raise InputError(f"recipe {self.name!r}: importance={self.importance!r}; expected one of {IMPORTANCES}")
        if self.iterative_steps < 1:
            raise InputError(f"recipe {self.name!r}: iterative_steps={self.iterative_steps}; expected ≥ 1")


RECIPES: Registry[Recipe] = Registry("recipe")


def register(recipe: Recipe) -> Recipe:
    """Add a recipe to the registry; a name registered twice is an error (``KeyError``)."""
    return RECIPES.register(recipe)


def list_recipes() -> list[str]:
    """Registered recipe names, sorted."""
    return sorted(RECIPES)


def get_recipe(name: str, **overrides: Any) -> Recipe:
    """The recipe ``name`` with field ``overrides`` (e.g. ``steps=50``).

    Raises
    ------
    KeyError
        Unknown name; the message lists the known ones.
    InputError
        Unknown field or invalid value.
    """
    return RECIPES.get(name, **overrides)


# ------------------------------------------------------------------------------------------------ registry
_FAST = (("filters", 16), ("levels", 4))
register(DistillRecipe(name="pix2pix-dist-fast", student=(*_FAST, ("decoder", "resize-conv")),
                       description="16 filters, 4 levels (thesis pix2pix-dist-fast), resize-conv decoder so that "
                                   "INT8 covers the decoder too; distilled from the full teacher"))
register(DistillRecipe(name="pix2pix-dist-fast-transpose", student=(*_FAST, ("decoder", "transpose")),
                       description="the thesis's pix2pix-dist-fast as it was (transposed-convolution decoder)"))
register(DistillRecipe(name="pix2pix-dist-fast-pixelshuffle", student=(*_FAST, ("decoder", "pixelshuffle")),
                       description="16 filters, 4 levels, sub-pixel (PixelShuffle) decoder"))
register(DistillRecipe(name="pix2pix-dist-fast-s2d",
                       student=(*_FAST, ("decoder", "resize-conv"), ("space_to_depth", 2)),
                       description="16 filters, 4 levels at half resolution (PixelUnshuffle/PixelShuffle), "
                                   "resize-conv decoder"))
for _r in (25, 50, 75):
    register(PruneRecipe(name=f"pix2pix-dist-pruned-{_r}", ratio=_r / 100,
                         description=f"{_r}% of the channels of every inner layer pruned (L2 magnitude, "
                                     "DepGraph, rounded to 8), fine-tuned with distillation from the unpruned model"))
# The thesis's reduction grid (tables 6.10–6.14), each distilled instead of trained from scratch. The teacher's
# decoder is kept so that the grid isolates the size reductions.
for _lv in (7, 6, 5, 4):
    register(DistillRecipe(name=f"pix2pix-dist-l{_lv}", student=(("levels", _lv),),
                           description=f"{2 * _lv} blocks ({_lv} levels), thesis table 6.10"))
for _f in (32, 16, 12, 8):
    register(DistillRecipe(name=f"pix2pix-dist-f{_f}", student=(("filters", _f),),
                           description=f"{_f} filters in the first layer, thesis table 6.11"))
register(DistillRecipe(name="pix2pix-dist-k3", student=(("kernel", 3),), description="3×3 kernels, thesis table 6.12"))
_sizes: tuple[tuple[int, int | None, int], ...] = ((16, None, 3), (18, 5, 3), (20, 4, 3))
for _f, _lv2, _k in _sizes:
    _st: tuple[tuple[str, Any], ...] = (("filters", _f), ("kernel", _k)) + ((("levels", _lv2),) if _lv2 else ())
    register(DistillRecipe(name=f"pix2pix-dist-f{_f}" + (f"-l{_lv2}" if _lv2 else "") + f"-k{_k}", student=_st,
                           description="thesis table 6.13/6.14 combination"))
# Runtime variants derived from the full model, whatever its architecture (the NAFNet full model's LayerNorm and
# gating are memory-bound on CPUs; these U-Nets fold their batch norm into the convolutions and quantize to INT8).
# Every plane of the teacher's data (max_defocus_um large: randomized stacks use µm steps of several sizes), and a
# learning rate for a student that starts from scratch.
for _name in ("unet-f40-l5", "unet-f16-l4"):
    register(DistillRecipe(name=f"distill-{_name}", student_model=_name, lr=1e-3, batch_size=16, crop=128,
                           max_defocus_um=100.0, lambda_teacher=1.0, lambda_gt=1.0, lambda_feature=0.5,
                           description=f"registry {_name} distilled from the full model (output + feature "
                                       "matching through 1×1 adapters, L1 to the sharp plane)"))
