"""pymmcore-plus adapter: restore every frame of an MDA acquisition without ever blocking it.

    from pymmcore_plus import CMMCorePlus
    from virtualfocus.edge import FocusRuntime
    from virtualfocus.edge.integrations.pymmcore import attach

    core = CMMCorePlus(); core.loadSystemConfiguration(...)
    proc = attach(core, FocusRuntime.load())
    proc.frameRestored.connect(lambda img, event, meta, frame: viewer.show(img, meta["virtualfocus.status"]))
    core.mda.run(sequence)          # or core.run_mda(sequence)
    proc.detach()                   # waits until every frame has been delivered

The hook connected to ``core.mda.events.frameReady`` only copies the frame into the runtime's queue and returns
(tens of µs at 360×360). Restored frames are emitted **in capture order** on :attr:`Processor.frameRestored`, a
psygnal signal (pymmcore-plus's own signal library) with ``(image, event, metadata, frame)``: the restored image
(or the raw capture, flagged), the original ``useq.MDAEvent``, the original frame metadata plus ``virtualfocus.*``
keys (status, latency_ms, variant, backend, message, seq, queue_ms, defocus_um), and the
:class:`~virtualfocus.edge.integrations.StreamFrame`.

Two-shot acquisitions pair the two captures of each field by their event index without the ``z`` axis: a useq
sequence with ``z_plan={"relative": [-ΔD, +ΔD]}`` (or :func:`two_shot_engine`, which snaps both shots in one event
around the last known focus) gives one fused frame per field.

pymmcore-plus and psygnal are imported only when this module's functions run (``pip install virtualfocus[mm]``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import numpy as np

from ..engine import ModelEngine
from ..errors import InputError
from ..runtime import FocusRuntime
from .callbacks import FrameStream, StreamFrame, _OrderedDelivery, _WarnLimiter
from .telemetry import DriftMonitor, FocusDriftDetected, FocusDriftRecovered
from .twoshot import TwoShotConfig, TwoShotStream

__all__ = ["Processor", "attach", "two_shot_engine"]

log = logging.getLogger("virtualfocus")

_SIGNALS: type | None = None


def _require_psygnal() -> Any:
    try:
        import psygnal
    except ImportError as e:  # pragma: no cover - psygnal comes with pymmcore-plus
        raise ImportError("the pymmcore-plus adapter needs psygnal: pip install 'virtualfocus[mm]'") from e
    return psygnal


def _signals_type() -> type:
    """The psygnal signal container, built on first use so that importing this module needs no psygnal."""
    global _SIGNALS
    if _SIGNALS is None:
        psygnal = _require_psygnal()

        class ProcessorSignals:
            """Signals of a :class:`Processor` (psygnal; connect with ``.connect(slot)``)."""

            #: ``(image, event, metadata, frame)`` for every frame, in capture order.
            frameRestored = psygnal.Signal(np.ndarray, object, dict, object)
            #: :class:`FocusDriftDetected` or :class:`FocusDriftRecovered` from the drift monitor.
            focusDrift = psygnal.Signal(object)

        _SIGNALS = ProcessorSignals
    return _SIGNALS


def _mda_events(core_or_runner: Any) -> Any:
    mda = getattr(core_or_runner, "mda", None)
    events = getattr(mda if mda is not None else core_or_runner, "events", None)
    if events is None or not hasattr(events, "frameReady"):
        raise TypeError(
            f"attach: expected a pymmcore_plus.CMMCorePlus or an MDARunner (something with .mda.events.frameReady or "
            f".events.frameReady), got {type(core_or_runner).__name__}"
        )
    return events


def _index(event: Any) -> dict[str, int] | None:
    idx = getattr(event, "index", None)
    if not isinstance(idx, Mapping):
        return None
    return {str(getattr(k, "value", k)): v for k, v in idx.items()}


class Processor:
    """A runtime attached to a pymmcore-plus MDA frame stream (create it with :func:`attach`).

    Attributes
    ----------
    frameRestored : psygnal.SignalInstance
        ``(image, event, metadata, frame)`` per frame, in capture order, on the processor's delivery thread.
    focusDrift : psygnal.SignalInstance
        Drift events of the attached :class:`~virtualfocus.edge.integrations.telemetry.DriftMonitor`.
    stream : FrameStream or TwoShotStream
        The ordered stream underneath (``stream.counts`` counts frames by status).
    telemetry : DriftMonitor or None
    """

    def __init__(
        self,
        core_or_runner: Any,
        runtime: FocusRuntime,
        *,
        telemetry: DriftMonitor | bool = True,
        two_shot: ModelEngine | str | os.PathLike[str] | bool | None = None,
        two_shot_config: TwoShotConfig | None = None,
        shot_axis: str = "z",
        position_axis: str = "p",
        hook_history: int = 100_000,
    ) -> None:
        self._mda_events = _mda_events(core_or_runner)
        self._core = core_or_runner if hasattr(core_or_runner, "getImageBitDepth") else None
        self.runtime = runtime
        self.signals = _signals_type()()
        self.frameRestored = self.signals.frameRestored
        self.focusDrift = self.signals.focusDrift
        if telemetry is True:
            telemetry = DriftMonitor.for_runtime(runtime)
        self.telemetry: DriftMonitor | None = telemetry or None
        self.two_shot = two_shot is not None and two_shot is not False
        self.shot_axis = shot_axis
        self.position_axis = position_axis
        self.stream: _OrderedDelivery
        if self.two_shot:
            engine = None if two_shot is True else two_shot
            self.stream = TwoShotStream(runtime, engine, config=two_shot_config, telemetry=self.telemetry)  # type: ignore[arg-type]
        else:
            self.stream = FrameStream(runtime, telemetry=self.telemetry)
        self.stream._emit = self._emit  # type: ignore[method-assign]
        self._warn = _WarnLimiter()
        self._hook_ms = np.zeros(int(hook_history), np.float32)
        self._hook_cpu_ms = np.zeros(int(hook_history), np.float32)
        self._hooks = 0
        self._bit_depth: int | None = None
        self._attached = False
        self._lock = threading.Lock()
        if self.telemetry is not None:
            self.telemetry.events.connect(FocusDriftDetected, self._on_drift)
            self.telemetry.events.connect(FocusDriftRecovered, self._on_drift)
        self._attach()
        self.stream.start()

    # -- wiring ----------------------------------------------------------------------------------------------
    def _attach(self) -> None:
        self._mda_events.frameReady.connect(self._on_frame_ready)
        if hasattr(self._mda_events, "sequenceStarted"):
            self._mda_events.sequenceStarted.connect(self._on_sequence_started)
        self._attached = True

    def detach(self, *, timeout: float | None = 30.0) -> bool:
        """Disconnect from the MDA signals, then wait until every frame already captured has been delivered.

        Returns True when all were delivered within ``timeout`` seconds. The runtime stays open.
        """
        with self._lock:
            if not self._attached:
                return True
            self._attached = False
        self._mda_events.frameReady.disconnect(self._on_frame_ready)
        if hasattr(self._mda_events, "sequenceStarted"):
            self._mda_events.sequenceStarted.disconnect(self._on_sequence_started)
        ok = self.stream.close(timeout)  # type: ignore[attr-defined]
        if self.telemetry is not None:
            self.telemetry.events.disconnect(self._on_drift)
        return bool(ok)

    def __enter__(self) -> Processor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.detach()

    def connect(self, listener: Callable[[StreamFrame], Any]) -> Callable[[StreamFrame], Any]:
        """Plain-Python listener ``listener(StreamFrame)``, isolated from the others (an exception in it is logged and
        the others still get the frame). psygnal slots connected to :attr:`frameRestored` run after these."""
        return self.stream.connect(listener)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every frame captured so far has been delivered."""
        return self.stream.flush(timeout)

    # -- acquisition thread ----------------------------------------------------------------------------------
    def _on_sequence_started(self, *args: Any) -> None:
        if self._core is not None:
            try:
                self._bit_depth = int(self._core.getImageBitDepth()) or None
            except Exception:
                self._bit_depth = None

    def _on_frame_ready(self, img: Any, event: Any = None, metadata: Any = None, *rest: Any) -> None:
        """The frameReady hook: hand the frame over and return (never raises into the acquisition)."""
        t0 = time.perf_counter()
        c0 = time.thread_time()
        try:
            meta = metadata if isinstance(metadata, Mapping) else None
            if meta is None:
                self._warn.warn("no-metadata", "virtualfocus: frame metadata is %s, not a mapping; the frame is "
                                "restored and delivered with virtualfocus.* keys only", type(metadata).__name__)
            if self._bit_depth and isinstance(img, np.ndarray) and img.dtype == np.uint16 and 8 < self._bit_depth <= 16:
                meta = {**(meta or {}), "bit_depth": self._bit_depth}
            idx = _index(event)
            key: Hashable = idx.get(self.position_axis) if idx is not None else None
            if self.two_shot:
                group: Hashable = None
                if idx is None or self.shot_axis not in idx:
                    self._warn.warn("no-shot-axis", "virtualfocus: event index %s has no %r axis to pair two shots "
                                    "by; the frame is restored single-shot, flagged", idx, self.shot_axis)
                else:
                    group = tuple(sorted((k, v) for k, v in idx.items() if k != self.shot_axis))
                z = getattr(event, "z_pos", None)
                self.stream.push(img, meta, group=group, z_um=z, context=event, key=key)  # type: ignore[attr-defined]
            else:
                self.stream.push(img, meta, context=event, key=key)  # type: ignore[attr-defined]
        except Exception as e:  # pragma: no cover - push itself never raises for a frame
            log.warning("virtualfocus: could not hand frame over (%s: %s); acquisition continues", type(e).__name__, e)
        finally:
            n = self._hooks
            i = n % len(self._hook_ms)
            self._hook_ms[i] = (time.perf_counter() - t0) * 1e3
            self._hook_cpu_ms[i] = (time.thread_time() - c0) * 1e3
            self._hooks = n + 1

    # -- delivery thread -------------------------------------------------------------------------------------
    def _emit(self, out: StreamFrame) -> None:
        try:
            self.frameRestored.emit(out.image, out.context, out.metadata, out)
        except Exception as e:
            cause = e.__cause__ or e
            self._warn.warn("psygnal-slot", "virtualfocus: a frameRestored slot raised %s: %s on frame %d; earlier "
                            "slots and listeners got the frame, acquisition continues", type(cause).__name__, cause,
                            out.seq)

    def _on_drift(self, ev: Any) -> None:
        self.focusDrift.emit(ev)

    # -- statistics ------------------------------------------------------------------------------------------
    def hook_ms(self, *, cpu: bool = False) -> np.ndarray:
        """Acquisition-thread time of the most recent hooks (ms), oldest first: wall-clock, or the thread's CPU time
        when ``cpu`` (which leaves out time the OS gave to other processes)."""
        buf = self._hook_cpu_ms if cpu else self._hook_ms
        n = self._hooks
        size = len(buf)
        if n <= size:
            return buf[:n].copy()
        i = n % size
        return np.concatenate([buf[i:], buf[:i]])

    def hook_stats(self) -> dict[str, float]:
        """p50 / p99 / max of the acquisition-thread time per frame (ms): wall clock, and ``cpu_*`` thread CPU time."""
        out: dict[str, float] = {"n": int(self._hooks)}
        for prefix, cpu in (("", False), ("cpu_", True)):
            h = self.hook_ms(cpu=cpu)
            if not len(h):
                h = np.zeros(1, np.float32)
            out.update({f"{prefix}p50_ms": float(np.percentile(h, 50)), f"{prefix}p99_ms": float(np.percentile(h, 99)),
                        f"{prefix}max_ms": float(h.max())})
        return out


def attach(
    core_or_runner: Any,
    runtime: FocusRuntime,
    *,
    telemetry: DriftMonitor | bool = True,
    two_shot: ModelEngine | str | os.PathLike[str] | bool | None = None,
    two_shot_config: TwoShotConfig | None = None,
    shot_axis: str = "z",
    position_axis: str = "p",
) -> Processor:
    """Attach ``runtime`` to a pymmcore-plus acquisition.

    Parameters
    ----------
    core_or_runner : CMMCorePlus or MDARunner
        Whose ``mda.events.frameReady`` (or ``events.frameReady``) to listen to.
    runtime : FocusRuntime
        Restores each frame (single-shot) and every two-shot fallback.
    telemetry : DriftMonitor or bool
        True (default): a :meth:`DriftMonitor.for_runtime` monitor keyed by stage position; False: none.
    two_shot : ModelEngine, str, path or bool, optional
        A two-input model (or True for the shipped one): pair the captures of each field by their event index
        without ``shot_axis`` and fuse them (see :mod:`virtualfocus.edge.integrations.twoshot`).
    two_shot_config : TwoShotConfig, optional
    shot_axis : str
        Event-index axis that tells the two shots of a field apart (``"z"`` for a two-plane relative z plan).
    position_axis : str
        Event-index axis of the stage position (telemetry key).

    Returns
    -------
    Processor
        Call :meth:`Processor.detach` when done.
    """
    if not isinstance(runtime, FocusRuntime):
        raise InputError(f"attach: runtime must be a FocusRuntime (FocusRuntime.load(...)), got {type(runtime).__name__}")
    return Processor(core_or_runner, runtime, telemetry=telemetry, two_shot=two_shot, two_shot_config=two_shot_config,
                     shot_axis=shot_axis, position_axis=position_axis)


# ----------------------------------------------------------------------------------------- two-shot engine step
def two_shot_engine(core: Any, *, delta_um: float = 0.4, shot_axis: str = "shot", follow_gain: float = 0.5) -> Any:
    """A pymmcore-plus ``MDAEngine`` whose every imaging event snaps two shots at ``z0 − Δ`` and ``z0 + Δ``.

    ``z0`` is the event's z (or the current focus position) plus the engine's per-position correction
    ``engine.focus_correction_um[p]``: the last known focus. Connect ``processor.connect(engine.follow)`` to
    move that correction with the signed two-shot defocus estimates, so the pair stays centred on a drifting
    focus without any mechanical refocus (``follow_gain`` < 1 damps the loop: the focus-measure estimate's scale is
    only as good as its calibrated width). Each shot is yielded with ``shot_axis`` (0, 1) added to its index; attach
    the processor with ``shot_axis=...`` the same.

    Usage: ``core.mda.set_engine(two_shot_engine(core)); attach(core, rt, two_shot=model, shot_axis="shot")``.
    """
    from pymmcore_plus.mda import MDAEngine

    if not delta_um > 0:
        raise InputError(f"delta_um={delta_um}: expected a positive focus offset in µm")
    if not 0 < follow_gain <= 1:
        raise InputError(f"follow_gain={follow_gain}: expected 0 < follow_gain ≤ 1")

    class TwoShotMDAEngine(MDAEngine):  # type: ignore[misc, valid-type]
        """Snaps two shots (±Δ around the last known focus) per imaging event."""

        def __init__(self, mmcore: Any) -> None:
            super().__init__(mmcore)
            self.use_hardware_sequencing = False  # every event must come through exec_single_event
            self.delta_um = float(delta_um)
            self.shot_axis = shot_axis
            self.focus_correction_um: dict[Any, float] = {}

        def exec_single_event(self, event: Any) -> Any:
            core = self.mmcore
            p = (_index(event) or {}).get("p")
            z_event = event.z_pos if event.z_pos is not None else core.getZPosition()
            z0 = float(z_event) + self.focus_correction_um.get(p, 0.0)
            for k, dz in enumerate((-self.delta_um, self.delta_um)):
                core.setZPosition(z0 + dz)
                core.waitForDevice(core.getFocusDevice())
                sub = event.model_copy(update={"index": {**event.index, self.shot_axis: k}, "z_pos": z0 + dz})
                yield from super().exec_single_event(sub)

        def follow(self, frame: StreamFrame) -> None:
            """Listener: shift position ``p``'s correction by the frame's signed defocus estimate."""
            d = frame.metadata.get("virtualfocus.defocus_um")
            if d is None or not frame.metadata.get("virtualfocus.defocus_signed"):
                return
            p = (_index(frame.context) or {}).get("p")
            self.focus_correction_um[p] = self.focus_correction_um.get(p, 0.0) - follow_gain * float(d)

    return TwoShotMDAEngine(core)
