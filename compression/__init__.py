"""Derive fast variants from a trained full model: distillation into reduced architectures, structured pruning,
and (through :mod:`virtualfocus.export`) INT8 quantization. Importing this package does not import torch.
"""

from .recipes import DistillRecipe, PruneRecipe, Recipe, get_recipe, list_recipes, register

__all__ = ["DistillRecipe", "PruneRecipe", "Recipe", "get_recipe", "list_recipes", "register"]
