"""The one registry machinery behind the model specs and the compression recipes."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from virtualfocus.edge.errors import InputError
from virtualfocus.training._registry import Registry


@dataclass(frozen=True)
class _Thing:
    name: str
    size: int = 1
    shape: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.size < 1:
            raise InputError(f"{self.name}: size={self.size}; expected ≥ 1")


def test_register_get_override_and_errors() -> None:
    things: Registry[_Thing] = Registry("thing")
    a = things.register(_Thing("a"))
    things.register(_Thing("b", size=2))
    assert things.names() == ["a", "b"] and "a" in things and len(things) == 2
    assert things.get("a") is a
    assert things.get("a", size=3, shape=[1, 2]) == _Thing("a", size=3, shape=(1, 2))  # JSON lists → tuples
    assert things.get("a", name="ignored").name == "a"
    with pytest.raises(KeyError, match=r"already registered"):
        things.register(_Thing("a", size=5))
    assert things.get("a").size == 1  # the first registration stays
    with pytest.raises(KeyError, match=r"unknown thing 'c'; known things: a, b"):
        things.get("c")
    with pytest.raises(InputError, match=r"unknown field\(s\) sise; valid fields: shape, size"):
        things.get("a", sise=2)
    with pytest.raises(InputError, match="size=0"):
        things.get("a", size=0)
    with pytest.raises(InputError, match="dataclass"):
        things.register("a")  # type: ignore[arg-type]


def test_models_and_recipes_share_the_machinery() -> None:
    from virtualfocus.compression.recipes import RECIPES
    from virtualfocus.training.registry import MODELS

    assert type(MODELS) is type(RECIPES) is Registry
