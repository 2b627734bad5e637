"""Orderly shutdown at interpreter exit for everything in ``edge`` that owns threads.

A runtime (or stream) still open when the script ends must not be frozen mid-inference while OpenVINO / ONNX
Runtime unload (that aborts the process and loses the frames still queued). Each such object registers itself
here; one hook, run by :mod:`threading` before it waits for non-daemon threads and before ``atexit`` handlers and
module teardown, closes every live object, newest first (a stream before the runtime it feeds), each draining its
queue so that every future completes and every done-callback runs.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import threading
import weakref
from collections.abc import Callable
from typing import Protocol

__all__ = ["Closeable", "close_all", "register"]

log = logging.getLogger("virtualfocus")


class Closeable(Protocol):
    def close(self) -> object: ...


_live: dict[int, weakref.ref[Closeable]] = {}
_order = itertools.count()
_lock = threading.Lock()
_hooked = False


def register(obj: Closeable) -> None:
    """Close ``obj`` at interpreter exit unless it was closed or collected before."""
    global _hooked
    with _lock:
        key = next(_order)
        _live[key] = weakref.ref(obj, _forget(key))
        if not _hooked:
            _hooked = True
            # threading's own exit hook runs first at shutdown (concurrent.futures uses it for the same reason);
            # atexit is the fallback where it is missing.
            hook = getattr(threading, "_register_atexit", None)
            try:
                if hook is None:
                    raise RuntimeError("no threading exit hook")
                hook(close_all)
            except RuntimeError:
                atexit.register(close_all)


def _forget(key: int) -> Callable[[weakref.ref[Closeable]], None]:
    def forget(_ref: weakref.ref[Closeable]) -> None:
        _live.pop(key, None)

    return forget


def close_all() -> None:
    """Close every registered object that is still alive, newest first. Failures are logged, never raised."""
    with _lock:
        refs = [r for _, r in sorted(_live.items(), reverse=True)]
        _live.clear()
    for ref in refs:
        obj = ref()
        if obj is None:
            continue
        try:
            obj.close()
        except Exception:
            log.exception("virtualfocus: closing %r at exit failed", obj)
