from __future__ import annotations

import pytest
from virtualfocus.compression.recipes import DistillRecipe, PruneRecipe, get_recipe, list_recipes, register
from virtualfocus.edge.errors import InputError


def test_registry_has_named_variants():
    names = list_recipes()
    for n in ("pix2pix-dist-fast", "pix2pix-dist-pruned-50", "pix2pix-dist-l4", "pix2pix-dist-f16", "pix2pix-dist-k3",
              "pix2pix-dist-f18-l5-k3"):
        assert n in names
    fast = get_recipe("pix2pix-dist-fast")
    assert isinstance(fast, DistillRecipe) and fast.overrides["filters"] == 16 and fast.overrides["levels"] == 4
    pruned = get_recipe("pix2pix-dist-pruned-50")
    assert isinstance(pruned, PruneRecipe) and pruned.ratio == 0.5 and pruned.round_to == 8


def test_overrides_and_errors():
    assert get_recipe("pix2pix-dist-fast", steps=7).steps == 7
    with pytest.raises(KeyError, match="pix2pix-dist-fast"):
        get_recipe("no-such-recipe")
    with pytest.raises(InputError, match="unknown field"):
        get_recipe("pix2pix-dist-fast", filterz=3)
    with pytest.raises(InputError, match="ratio"):
        get_recipe("pix2pix-dist-pruned-50", ratio=1.5)
    with pytest.raises(InputError, match="importance"):
        PruneRecipe(name="x", importance="random")
    with pytest.raises(KeyError, match="already registered"):
        register(get_recipe("pix2pix-dist-fast"))
