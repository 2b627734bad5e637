"""Typed events the runtime emits, and the small bus that delivers them.

Instrument software subscribes to what it cares about::

    rt.events.connect(FallbackEngaged, lambda ev: log.warning("running %s now: %s", ev.to_variant, ev.reason))

Listeners run on the runtime's worker thread (or the caller's thread for :meth:`FocusRuntime.restore`); they should
return quickly. A listener that raises is logged and never stops restoration or acquisition.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .frames import RestoredFrame

__all__ = [
    "BackendFailed",
    "BudgetExceededEvent",
    "Event",
    "EventBus",
    "FallbackEngaged",
    "FrameLate",
    "FrameRestored",
    "GuardRecovered",
    "UntrustedCapture",
]

log = logging.getLogger("virtualfocus")


@dataclass(frozen=True)
class Event:
    """Base class of runtime events."""


@dataclass(frozen=True)
class FrameRestored(Event):
    """A frame's result is ready (restored, passed through or flagged: see ``frame.status``)."""

    frame: RestoredFrame


@dataclass(frozen=True)
class BudgetExceededEvent(Event):
    """The rolling p95 latency of ``variant`` went over the per-frame budget."""

    variant: str
    p95_ms: float
    budget_ms: float


@dataclass(frozen=True)
class FallbackEngaged(Event):
    """The runtime switched from one variant/backend to a cheaper or healthier one (``to_variant`` may be
    ``"passthrough"``)."""

    from_variant: str
    to_variant: str
    reason: str


@dataclass(frozen=True)
class GuardRecovered(Event):
    """After stepping down, the runtime stepped back up to ``variant`` because latency allowed it again."""

    variant: str
    p95_ms: float


@dataclass(frozen=True)
class FrameLate(Event):
    """A frame missed its hard deadline and was delivered raw (``index`` is its sequence number)."""

    index: int
    waited_ms: float
    deadline_ms: float


@dataclass(frozen=True)
class BackendFailed(Event):
    """An inference backend raised while running a frame; ``action`` says what the runtime did about it."""

    variant: str
    backend: str
    error: str
    action: str


@dataclass(frozen=True)
class UntrustedCapture(Event):
    """A capture's estimated defocus lies outside the trusted range of the model that restored it.

    The frame is still delivered (restored, with its usual status) but flagged ``trusted=False``: its output must
    not be relied on (e.g. refocus mechanically and capture again). ``seq`` is the frame's sequence number
    (``RestoredFrame.index``), ``key`` the caller's ``meta["key"]`` (e.g. stage position) or None,
    ``defocus_um`` the estimate (a magnitude when ``signed`` is False), ``trusted_um`` the range it missed,
    ``variant`` and ``status`` the frame's.
    """

    seq: int
    key: Any
    defocus_um: float
    trusted_um: tuple[float, float]
    signed: bool
    variant: str
    status: str


E = TypeVar("E", bound=Event)


class EventBus:
    """Per-runtime listener registry; thread-safe; listener failures are logged, never raised."""

    def __init__(self) -> None:
        self._listeners: list[tuple[type[Event], Callable[[Any], None]]] = []
        self._lock = threading.Lock()

    def connect(self, event_type: type[E], listener: Callable[[E], None]) -> Callable[[E], None]:
        """Call ``listener(event)`` for every event of ``event_type`` (or a subclass; ``Event`` = all)."""
        if not (isinstance(event_type, type) and issubclass(event_type, Event)):
            raise TypeError(f"event_type must be an Event subclass such as FrameRestored, got {event_type!r}")
        with self._lock:
            self._listeners.append((event_type, listener))
        return listener

    def disconnect(self, listener: Callable[[Any], None]) -> None:
        with self._lock:
            self._listeners = [(t, fn) for t, fn in self._listeners if fn is not listener]

    def emit(self, event: Event) -> None:
        with self._lock:
            targets = [fn for t, fn in self._listeners if isinstance(event, t)]
        for fn in targets:
            try:
                fn(event)
            except Exception:
                log.exception("virtualfocus: listener %r failed on %s (ignored)", fn, type(event).__name__)
