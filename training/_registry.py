"""Registry machinery: one named table of frozen dataclasses, shared by the model specs and the compression recipes.

The variants themselves live where they are defined (:mod:`virtualfocus.training.registry` for the model specs,
:mod:`virtualfocus.compression.recipes` for the recipes), each registered explicitly by name, as timm keeps its
``_registry.py`` apart from the variant modules. This module imports neither torch nor any variant.

Rules every registry follows:

- registering a name twice is an error (``KeyError``);
- an unknown name raises ``KeyError`` listing the known names;
- overrides must be fields of the registered dataclass (``InputError`` listing the valid fields), and are
  validated by the dataclass itself (``__post_init__``); JSON lists become tuples, as the frozen specs hold them.

Example
-------
>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Colour:
...     name: str
...     rgb: tuple[int, int, int] = (0, 0, 0)
>>> colours: Registry[Colour] = Registry("colour")
>>> _ = colours.register(Colour("black"))
>>> colours.get("black", rgb=[1, 2, 3]).rgb
(1, 2, 3)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any, Generic, Protocol, TypeVar

from virtualfocus.edge.errors import InputError

__all__ = ["Named", "Registry"]


class Named(Protocol):
    """What a registry holds: a (frozen) dataclass with a ``name`` field."""

    @property
    def name(self) -> str: ...


T = TypeVar("T", bound=Named)


class Registry(Generic[T]):
    """Frozen dataclasses registered under their ``name``, in registration order.

    Parameters
    ----------
    kind : str
        What the entries are, for messages ("model", "recipe"): ``unknown model 'x'; known models: …``.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, entry: T) -> T:
        """Add ``entry`` under ``entry.name`` and return it.

        Raises
        ------
        KeyError
            The name is already registered.
        InputError
            ``entry`` is not a dataclass instance.
        """
        if not dataclasses.is_dataclass(entry) or isinstance(entry, type):
            raise InputError(f"{self.kind} registry: expected a dataclass instance, got {type(entry).__name__}")
        if entry.name in self._entries:
            raise KeyError(f"{self.kind} {entry.name!r} is already registered")
        self._entries[entry.name] = entry
        return entry

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._entries)

    def get(self, name: str, /, **overrides: Any) -> T:
        """The entry registered as ``name``, with field ``overrides`` applied (``name`` itself cannot change).

        Raises
        ------
        KeyError
            Unknown name; the message lists the known names.
        InputError
            Unknown field (the message lists the valid fields), or a value the dataclass rejects.
        """
        try:
            entry = self._entries[name]
        except KeyError:
            raise KeyError(f"unknown {self.kind} {name!r}; known {self.kind}s: {', '.join(self._entries)}") from None
        overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items() if k != "name"}
        if not overrides:
            return entry
        valid = {f.name for f in dataclasses.fields(entry)} - {"name"}  # type: ignore[arg-type]
        unknown = sorted(set(overrides) - valid)
        if unknown:
            raise InputError(f"{self.kind} {name!r}: unknown field(s) {', '.join(unknown)}; valid fields: "
                             f"{', '.join(sorted(valid))}")
        return dataclasses.replace(entry, **overrides)  # type: ignore[type-var]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
