"""Plain-Python capture-triggered API: push captures from any thread, get results back in capture order.

Instrument software that is neither pymmcore-plus nor pycro-manager uses :class:`FrameStream` directly::

    from virtualfocus.edge import FocusRuntime
    from virtualfocus.edge.integrations import FrameStream

    rt = FocusRuntime.load()
    with FrameStream(rt, on_frame=lambda f: save(f.image, f.metadata)) as stream:
        for img, meta in camera:                 # acquisition thread
            stream.push(img, meta)               # returns at once (copy + enqueue)
    # leaving the block waits until every frame has been delivered

Guarantees
----------
- :meth:`FrameStream.push` only hands the frame to :meth:`FocusRuntime.submit` and returns; it never waits on
  inference.
- Every pushed frame is delivered exactly once, in push order, restored or raw with a status saying why (the
  runtime's ``late``/``overflow``/``failed``/``rejected``/``closed``, or a frame the hook itself could not read).
- Listeners run on the stream's own delivery thread, one frame at a time. A listener that raises is logged and
  skipped for that frame; the other listeners still get it and the stream goes on.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import lifecycle
from ..frames import PASSTHROUGH, FrameStatus, RestoredFrame
from ..runtime import FocusRuntime

if TYPE_CHECKING:
    from .telemetry import DriftMonitor, DriftSample

__all__ = ["FrameStream", "StreamFrame"]

log = logging.getLogger("virtualfocus")


@dataclass(frozen=True)
class StreamFrame:
    """One delivered frame.

    Attributes
    ----------
    seq : int
        Capture order within the stream (0, 1, 2, ...); frames are delivered with strictly increasing ``seq``.
    image : np.ndarray
        The restored image, or the capture itself when it was not restored (see ``frame.status``).
    frame : RestoredFrame
        The runtime's result: status, latency, variant, backend, message.
    metadata : dict
        The caller's metadata (a new dict; the original is not modified) plus the ``virtualfocus.*`` keys of
        :meth:`RestoredFrame.metadata`, ``virtualfocus.seq``, ``virtualfocus.queue_ms`` and, when a drift monitor
        is attached, ``virtualfocus.defocus_um`` (``None`` when no estimate was possible) and
        ``virtualfocus.defocus_signed``.
    context : object
        Whatever was passed as ``context`` to :meth:`FrameStream.push` (the useq event for pymmcore-plus).
    drift : DriftSample or None
        The telemetry sample of this frame.
    """

    seq: int
    image: np.ndarray
    frame: RestoredFrame
    metadata: dict[str, Any]
    context: Any = None
    drift: DriftSample | None = None

    @property
    def status(self) -> FrameStatus:
        return self.frame.status

    @property
    def restored(self) -> bool:
        return self.frame.status.restored


@dataclass(eq=False)
class _Pending:
    """What the delivery thread needs about one capture besides the runtime's result."""

    seq: int
    raw: Any
    meta: Mapping[str, Any] | None
    context: Any
    key: Any = None
    pushed: float = field(default_factory=time.perf_counter)
    extra: dict[str, Any] = field(default_factory=dict)
    raws: tuple[Any, ...] = ()  # two-shot: both captures (for signed telemetry)
    zs: tuple[float | None, ...] = ()


class _WarnLimiter:
    """Log the first few warnings of each kind, then one in ``every`` with a running count."""

    def __init__(self, first: int = 5, every: int = 1000) -> None:
        self.first, self.every = first, every
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def warn(self, kind: str, msg: str, *args: Any) -> None:
        with self._lock:
            n = self._counts.get(kind, 0) + 1
            self._counts[kind] = n
        if n <= self.first or n % self.every == 0:
            suffix = f" [{kind}: {n} so far]" if n > self.first else ""
            log.warning(msg + suffix, *args)


class _OrderedDelivery:
    """Reorder buffer + delivery thread shared by the single-shot and two-shot streams.

    Producers call :meth:`_put` with a sequence number from :meth:`_next_seq` (from any thread, in any order);
    the delivery thread releases frames strictly in sequence order to the listeners.
    """

    def __init__(
        self,
        *,
        on_frame: Callable[[StreamFrame], Any] | None = None,
        telemetry: DriftMonitor | None = None,
        name: str = "virtualfocus-deliver",
        backlog_warning: int = 256,
    ) -> None:
        self._listeners: list[Callable[[StreamFrame], Any]] = [on_frame] if on_frame is not None else []
        self._listener_lock = threading.Lock()
        self.telemetry = telemetry
        self._inbox: queue.SimpleQueue[tuple[int, _Pending, RestoredFrame] | None] = queue.SimpleQueue()
        self._seq_lock = threading.Lock()
        self._pushed = 0
        self._delivered = 0
        self._done_cv = threading.Condition()
        self._thread: threading.Thread | None = None
        self._name = name
        self._closed = False
        self._backlog_warning = backlog_warning
        self._warn = _WarnLimiter()
        self.counts: dict[str, int] = {}
        lifecycle.register(self)  # still open at interpreter exit: delivered in full before the libraries unload

    def close(self, timeout: float | None = 30.0) -> bool:  # pragma: no cover - each stream defines its own
        raise NotImplementedError

    # -- listeners -------------------------------------------------------------------------------------------
    def connect(self, listener: Callable[[StreamFrame], Any]) -> Callable[[StreamFrame], Any]:
        """Call ``listener(frame)`` for every delivered :class:`StreamFrame` (on the delivery thread)."""
        if not callable(listener):
            raise TypeError(f"listener must be callable, got {type(listener).__name__}")
        with self._listener_lock:
            self._listeners.append(listener)
        return listener

    def disconnect(self, listener: Callable[[StreamFrame], Any]) -> None:
        with self._listener_lock:
            self._listeners = [fn for fn in self._listeners if fn is not listener]

    # -- producer side ---------------------------------------------------------------------------------------
    def _next_seq(self) -> int:
        with self._seq_lock:
            seq = self._pushed
            self._pushed += 1
        return seq

    def _ensure_thread(self) -> None:
        if self._thread is None:
            with self._seq_lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                    self._thread.start()

    def start(self) -> None:
        """Start the background threads now rather than on the first frame (keeps thread start-up, ~1 ms, out of
        the first frame's acquisition-thread time). Optional."""
        self._ensure_thread()

    def _put(self, pending: _Pending, frame: RestoredFrame) -> None:
        self._inbox.put((pending.seq, pending, frame))

    def _put_raw(self, pending: _Pending, status: FrameStatus, message: str) -> None:
        """Deliver ``pending`` untouched (the hook could not hand it to the runtime)."""
        frame = RestoredFrame(image=pending.raw, status=status, latency_ms=0.0, variant=PASSTHROUGH, meta=pending.meta,
                              message=message)
        self._put(pending, frame)

    # -- delivery thread -------------------------------------------------------------------------------------
    def _run(self) -> None:
        held: dict[int, tuple[_Pending, RestoredFrame]] = {}
        nxt = 0
        while True:
            item = self._inbox.get()
            if item is None:
                if not held:
                    return
                continue
            seq, pending, frame = item
            held[seq] = (pending, frame)
            if len(held) > self._backlog_warning:
                self._warn.warn("backlog", "virtualfocus: %d frames wait for frame %d before they can be delivered "
                                "in order", len(held), nxt)
            while nxt in held:
                p, f = held.pop(nxt)
                try:
                    self._deliver(p, f)
                except Exception:  # never let the delivery thread die: the frame counts as delivered
                    log.exception("virtualfocus: internal error delivering frame %d", nxt)
                nxt += 1
                with self._done_cv:
                    self._delivered = nxt
                    self._done_cv.notify_all()

    def _build(self, pending: _Pending, frame: RestoredFrame) -> StreamFrame:
        meta: dict[str, Any] = dict(pending.meta) if isinstance(pending.meta, Mapping) else {}
        meta.update(frame.metadata())
        meta["virtualfocus.seq"] = pending.seq
        meta["virtualfocus.queue_ms"] = round(frame.queue_ms, 3)
        meta.update(pending.extra)
        sample = None
        if self.telemetry is not None:
            try:
                if len(pending.raws) == 2 and all(z is not None for z in pending.zs):
                    sample = self.telemetry.observe_pair(pending.raws, pending.zs, key=pending.key, seq=pending.seq)
                elif frame.defocus is not None and self.telemetry.estimator is getattr(
                        getattr(self, "runtime", None), "defocus_estimator", None):
                    # The runtime already ran this monitor's estimator on this capture: record, don't estimate again.
                    sample = self.telemetry.record(frame.defocus, key=pending.key, seq=pending.seq)
                else:
                    sample = self.telemetry.observe(pending.raw, key=pending.key, seq=pending.seq)
            except Exception as e:  # telemetry must never cost a frame
                self._warn.warn("telemetry", "virtualfocus: no defocus estimate for frame %d (%s: %s)",
                                pending.seq, type(e).__name__, e)
            meta["virtualfocus.defocus_um"] = None if sample is None or sample.defocus_um is None else round(
                sample.defocus_um, 4)
            meta["virtualfocus.defocus_signed"] = bool(sample.signed) if sample is not None else False
        return StreamFrame(pending.seq, frame.image, frame, meta, pending.context, sample)

    def _deliver(self, pending: _Pending, frame: RestoredFrame) -> None:
        status = frame.status
        self.counts[status.value] = self.counts.get(status.value, 0) + 1
        if status in (FrameStatus.REJECTED, FrameStatus.FAILED) or status in (FrameStatus.LATE, FrameStatus.OVERFLOW):
            self._warn.warn(status.value, "virtualfocus: frame %d delivered raw, flagged %r: %s", pending.seq,
                            status.value, frame.message)
        out = self._build(pending, frame)
        with self._listener_lock:
            listeners = list(self._listeners)
        for fn in listeners:
            try:
                fn(out)
            except Exception as e:
                self._warn.warn(f"listener:{id(fn)}", "virtualfocus: listener %r raised %s: %s on frame %d; the "
                                "frame was still delivered to the other listeners and acquisition continues",
                                fn, type(e).__name__, e, pending.seq)
        self._emit(out)

    def _emit(self, out: StreamFrame) -> None:
        """Hook for adapters (pymmcore-plus emits its psygnal signal here)."""

    # -- shutdown --------------------------------------------------------------------------------------------
    @property
    def pushed(self) -> int:
        """Frames accepted so far."""
        return self._pushed

    @property
    def delivered(self) -> int:
        """Frames delivered so far."""
        return self._delivered

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every frame pushed so far has been delivered; False if ``timeout`` (s) ran out first."""
        with self._seq_lock:
            target = self._pushed
        end = None if timeout is None else time.monotonic() + timeout
        with self._done_cv:
            while self._delivered < target:
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._done_cv.wait(left)
        return True

    def _stop_thread(self, timeout: float | None) -> None:
        if self._thread is not None:
            self._inbox.put(None)
            self._thread.join(timeout)


class FrameStream(_OrderedDelivery):
    """Submit captures to a :class:`~virtualfocus.edge.FocusRuntime` and receive results in capture order.

    Parameters
    ----------
    runtime : FocusRuntime
        The runtime that restores each frame (its queue, deadline and latency guard apply).
    on_frame : callable, optional
        ``on_frame(StreamFrame)``, called on the stream's delivery thread; more with :meth:`connect`.
    telemetry : DriftMonitor, optional
        Fed every delivered frame's capture (in order); adds ``virtualfocus.defocus_um`` to the metadata.
    close_runtime : bool
        :meth:`close` also closes the runtime.
    """

    def __init__(
        self,
        runtime: FocusRuntime,
        *,
        on_frame: Callable[[StreamFrame], Any] | None = None,
        telemetry: DriftMonitor | None = None,
        close_runtime: bool = False,
    ) -> None:
        if not isinstance(runtime, FocusRuntime):
            raise TypeError(f"runtime must be a FocusRuntime (FocusRuntime.load(...)), got {type(runtime).__name__}")
        super().__init__(on_frame=on_frame, telemetry=telemetry)
        self.runtime = runtime
        self._close_runtime = close_runtime

    def start(self) -> None:
        super().start()
        if not self.runtime.closed:
            self.runtime.start()

    def push(
        self, image: np.ndarray, meta: Mapping[str, Any] | None = None, *, context: Any = None, key: Any = None
    ) -> int:
        """Hand one capture to the runtime and return its sequence number at once.

        Parameters
        ----------
        image : np.ndarray
            The capture (copied by the runtime; the caller may reuse its buffer).
        meta : mapping, optional
            Per-frame metadata, returned merged with ``virtualfocus.*`` keys. ``meta["bit_depth"]`` gives the
            significant bits of a uint16 capture.
        context : object, optional
            Returned untouched in :attr:`StreamFrame.context`.
        key : hashable, optional
            Telemetry key (e.g. the stage position index): the focus reference is kept per key.

        Never raises for a bad frame: it is delivered raw, flagged ``rejected``.
        """
        if self._closed:
            raise RuntimeError("FrameStream is closed; create a new one")
        self._ensure_thread()
        seq = self._next_seq()
        pending = _Pending(seq, image, meta, context, key)
        try:
            fut: Future[RestoredFrame] = self.runtime.submit(image, meta)
            fut.add_done_callback(functools.partial(self._done, pending))
        except Exception as e:  # the frame must still come out, in order
            self._put_raw(pending, FrameStatus.REJECTED, f"could not submit: {type(e).__name__}: {e}")
        return seq

    def _done(self, pending: _Pending, fut: Future[RestoredFrame]) -> None:
        self._put(pending, fut.result())

    def close(self, timeout: float | None = 30.0) -> bool:
        """Stop accepting frames, wait for every pushed frame to be delivered; True when all were."""
        if self._closed:
            return True
        self._closed = True
        ok = self.flush(timeout)
        self._stop_thread(1.0)
        if self._close_runtime:
            self.runtime.close()
        return ok

    def __enter__(self) -> FrameStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
