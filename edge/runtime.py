"""The runtime instrument software imports: restore defocused captures within a latency budget.

Example
-------
>>> from virtualfocus.edge import FocusRuntime
>>> with FocusRuntime.load(warmup_shape=(360, 360)) as rt:  # shipped default, OpenVINO, 70 ms budget
...     frame = rt.restore(capture)                 # synchronous: same shape and dtype back
...     fut = rt.submit(capture, meta={"index": 7}) # capture-triggered: returns at once
...     fut.result().status
<FrameStatus.RESTORED: 'restored'>

Guarantees
----------
- Every frame given to :meth:`FocusRuntime.submit` comes back through its future: restored, or raw with a status
  saying why (late, queue overflow, backend failure, rejected input, runtime closed). None is dropped.
- The acquisition thread never waits on inference: ``submit`` copies the frame into a bounded queue and returns;
  when the queue is full the frame comes back raw at once, flagged ``overflow``.
- Latency guard: when the rolling p95 of the running variant exceeds ``budget_ms``, the runtime steps down its
  ladder (quality → fast → pass-through) and emits :class:`~virtualfocus.edge.events.BudgetExceededEvent` and
  :class:`~virtualfocus.edge.events.FallbackEngaged`; it probes its way back up later. A frame still unfinished
  at its hard deadline (``deadline_ms`` after submission) is delivered raw, flagged ``late``, at the deadline.
- A backend that fails mid-stream is replaced by the other backend (OpenVINO ↔ ONNX Runtime) when the model ships
  a file for it, else the frame comes back raw, flagged ``failed``; the worker never dies.
- Trusted range: with a defocus estimator (``FocusRuntime.load(defocus_estimator=...)``, the shipped one by
  default), every restored or in-focus frame carries the capture's estimated defocus (``defocus_um``) and whether it
  lies in the restoring model's ``trusted_defocus_um`` (``trusted``). A frame outside it is still delivered, with its
  usual status, but ``trusted=False`` and :class:`~virtualfocus.edge.events.UntrustedCapture` is emitted. The
  estimator's time counts in the frame's latency; if it fails, the frame is delivered with ``trusted=None``.
  Every in-focus and trust decision is made by one :class:`~virtualfocus.edge.policy.FocusPolicy`.
- Shutdown: :meth:`FocusRuntime.close` (or leaving a ``with`` block) drains the queue. A runtime still open at
  interpreter exit is closed the same way before the inference libraries unload, and one that is garbage-collected
  is kept alive by its queued frames until they are done: every future completes, every done-callback runs.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import lifecycle
from .backends import PRECISIONS
from .defocus import DefocusEstimator
from .engine import ModelEngine, engine_from_source
from .errors import BackendError, InputError, ModelLoadError
from .events import (
    BackendFailed,
    BudgetExceededEvent,
    Event,
    EventBus,
    FallbackEngaged,
    FrameLate,
    FrameRestored,
    GuardRecovered,
    UntrustedCapture,
)
from .focusmap import DEFAULT_TILE_PX, FocusMap, check_tile_px, focus_map
from .frames import PASSTHROUGH, FrameStatus, RestoredFrame
from .guard import LatencyGuard
from .loading import in_focus_band, load_estimator, load_ladder
from .manifest import InputContract, Manifest
from .policy import Capture, FocusPolicy, Judgement, estimator_label, trusted_range
from .preprocess import validate_image

__all__ = ["PASSTHROUGH", "FocusRuntime", "FrameStatus", "LatencyGuard", "LoadReport", "ModelEngine", "RestoredFrame"]

log = logging.getLogger("virtualfocus")

#: Size of the frame the load-time self-measurement uses (the thesis's white-cell capture).
REFERENCE_SIZE = 360

#: ``precision`` values of :meth:`FocusRuntime.load`: "default", OpenVINO execution hints, or a shipped file's precision.
_PRECISIONS = PRECISIONS

_engine_from_source = engine_from_source  # the name tests and older callers use


@dataclass(eq=False)
class _Job:
    index: int
    image: Any
    meta: Mapping[str, Any] | None
    future: Future[RestoredFrame]
    submitted: float
    deadline: float
    owner: FocusRuntime | None = None  # keeps the runtime alive while the frame is unresolved
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: bool = False


@dataclass(eq=False)
class _Schedule:
    """What the runtime's two threads share with it; they hold this, not the runtime, so it can be collected."""

    queue: queue.Queue[_Job | None]
    cv: threading.Condition = field(default_factory=threading.Condition)
    pending: set[_Job] = field(default_factory=set)
    deadlines: list[tuple[float, int, _Job]] = field(default_factory=list)
    closed: bool = False


def _work(sched: _Schedule) -> None:
    """Worker thread: restore queued frames until the end-of-queue marker."""
    while True:
        try:
            job = sched.queue.get(timeout=0.5)
        except queue.Empty:
            if sched.closed:
                return  # closed or collected, and nothing left to do
            continue
        if job is None:
            return
        rt = job.owner
        if rt is not None and not job.done:
            rt._run_job(job)
        del rt, job


def _watch(sched: _Schedule) -> None:
    """Deadline thread: deliver frames raw, flagged ``late``, at their hard deadline."""
    while True:
        with sched.cv:
            while not sched.deadlines and not sched.closed:
                sched.cv.wait()
            if sched.closed and not sched.pending:
                return
            if not sched.deadlines:
                sched.cv.wait(0.05)
                continue
            deadline, _, job = sched.deadlines[0]
            wait = deadline - time.perf_counter()
            if wait > 0:
                sched.cv.wait(wait)
                continue
            heapq.heappop(sched.deadlines)
        rt = job.owner
        if rt is not None and not job.done:
            rt._late(job)
        del rt, job


def _shutdown(sched: _Schedule, worker: threading.Thread | None) -> None:
    """Stop the threads of a runtime that was collected (its queue is empty: queued frames keep it alive)."""
    with sched.cv:
        sched.closed = True
        sched.cv.notify_all()
    if worker is not None:
        # Never block here: this may run on the worker itself, with frames already delivered late still queued.
        with contextlib.suppress(queue.Full):
            sched.queue.put_nowait(None)


@dataclass(frozen=True)
class LoadReport:
    """What :meth:`FocusRuntime.load` measured: compile time, first frame, and p50/p95 at 360×360."""

    variant: str
    backend: str
    load_ms: float
    first_frame_ms: float
    p50_ms: float
    p95_ms: float
    budget_ms: float
    trained: bool
    defocus_estimator: str = ""  #: the estimator (included in p50/p95), "" when none

    def __str__(self) -> str:
        flag = "" if self.trained else " [UNTRAINED model]"
        est = f", with defocus estimator {self.defocus_estimator}" if self.defocus_estimator else ""
        # Batch restoration passes an effectively infinite budget: say so instead of printing 1e+09 ms.
        budget = f"budget {self.budget_ms:g} ms" if self.budget_ms < 1e6 else "no latency budget"
        return (
            f"{self.variant} on {self.backend}{est}: loaded in {self.load_ms:.0f} ms, first frame "
            f"{self.first_frame_ms:.1f} ms, p50 {self.p50_ms:.2f} ms, p95 {self.p95_ms:.2f} ms at "
            f"{REFERENCE_SIZE}×{REFERENCE_SIZE} ({budget}){flag}"
        )


class FocusRuntime:
    """Restore defocused captures with a shipped or exported model inside a latency budget.

    Use :meth:`load` to create one. The runtime is thread-safe: :meth:`restore` may be called from several
    threads, :meth:`submit` from any number of producers.

    Parameters
    ----------
    engines : sequence of ModelEngine
        The ladder, best first; pass-through is always appended as the last rung.
    budget_ms : float
        Per-frame latency budget the rolling p95 is held to.
    deadline_ms : float, optional
        Hard deadline after :meth:`submit` (default ``2 × budget_ms``); an unfinished frame is delivered raw.
    queue_size : int
        Frames that may wait for the worker; more are delivered raw at once (``overflow``).
    in_focus_threshold : float, optional
        Frames whose focus measure F (thesis definition, 0..255 scale) is at least this are returned untouched.
    defocus_estimator : DefocusEstimator, optional
        Estimates every restored (and in-focus) capture's defocus to flag those outside the restoring model's
        trusted range: a :class:`~virtualfocus.edge.classifier.DefocusClassifier` (signed) or any object with
        ``estimate(image, key=...) -> DefocusEstimate`` (e.g. the focus-measure estimator: a magnitude, compared
        with the nearer bound of the range). None: frames carry ``trusted=None``.
    focus_map : bool
        Give every frame the model ran on a per-tile map of estimated |defocus| (``RestoredFrame.focus_map``, see
        :mod:`virtualfocus.edge.focusmap`; about 1 ms at 360×360, counted in the frame's latency).
    focus_map_tile : int
        Tile side of the map in pixels (default 64: 6×6 tiles of 60 px on a 360×360 capture; at least 16).
    """


    def __init__(
        self,
        engines: Sequence[ModelEngine],
        *,
        budget_ms: float = 70.0,
        deadline_ms: float | None = None,
        queue_size: int = 16,
        in_focus_threshold: float | None = None,
        guard_window: int = 50,
        probe_after: int = 300,
        defocus_estimator: DefocusEstimator | None = None,
        in_focus_band_um: tuple[float, float] | None = None,
        pass_in_focus: bool = True,
        focus_map: bool = False,
        focus_map_tile: int = DEFAULT_TILE_PX,
    ) -> None:
        if not engines:
            raise ModelLoadError("FocusRuntime needs at least one model engine")
        self.engines: list[ModelEngine | None] = [*engines, None]
        self.guard = LatencyGuard(budget_ms, window=guard_window, probe_after=probe_after)
        self.budget_ms = float(budget_ms)
        self.deadline_ms = float(deadline_ms) if deadline_ms is not None else 2.0 * self.budget_ms
        if queue_size < 1:
            raise InputError(f"queue_size={queue_size}: must be at least 1")
        self.focus_map_tile: int | None = check_tile_px(focus_map_tile) if focus_map else None
        self.policy = FocusPolicy(estimator=defocus_estimator, in_focus_threshold=in_focus_threshold,
                                  in_focus_band_um=in_focus_band_um, pass_in_focus=pass_in_focus)
        self.events = EventBus()
        self.load_report: LoadReport | None = None
        self._rung = 0
        self._probing = False
        self._state_lock = threading.Lock()
        self._seq = itertools.count()
        self._sched = _Schedule(queue.Queue(maxsize=queue_size))
        self._worker: threading.Thread | None = None
        self._watchdog: threading.Thread | None = None
        self._start_lock = threading.Lock()
        lifecycle.register(self)

    # The policy's settings, where callers have always found them.
    @property
    def defocus_estimator(self) -> DefocusEstimator | None:
        return self.policy.estimator

    @property
    def in_focus_threshold(self) -> float | None:
        return self.policy.in_focus_threshold

    @property
    def in_focus_band_um(self) -> tuple[float, float] | None:
        return self.policy.in_focus_band_um

    @property
    def pass_in_focus(self) -> bool:
        return self.policy.pass_in_focus

    @property
    def estimator_failures(self) -> int:
        return self.policy.estimator_failures

    # -- construction ------------------------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        model: str | os.PathLike[str] | None = None,
        *,
        backend: str | None = None,
        budget_ms: float = 70.0,
        threads: int | None = None,
        precision: str = "default",
        ladder: bool | Sequence[str] = True,
        fallback: bool = False,
        deadline_ms: float | None = None,
        queue_size: int = 16,
        in_focus_threshold: float | None = None,
        contract: InputContract | None = None,
        max_tile: int = 2048,
        warmup: int = 20,
        warmup_shape: tuple[int, ...] | None = None,
        warmup_dtype: str = "uint8",
        defocus_estimator: Any = "auto",
        in_focus_band_um: Any = "auto",
        pass_in_focus: bool = True,
        focus_map: bool = False,
        focus_map_tile: int = DEFAULT_TILE_PX,
    ) -> FocusRuntime:
        """Load a model, compile it once, warm it up and measure its own latency.

        Parameters
        ----------
        model : str or path, optional
            A shipped variant name (``virtualfocus models`` lists them), a model folder with ``manifest.json``, or
            an ``.xml``/``.onnx`` file. Default: the shipped default variant.
        backend : {"openvino", "onnxruntime"}, optional
            Force one backend. Default: OpenVINO, with ONNX Runtime as fallback.
        budget_ms : float
            Per-frame latency budget for the guard (default 70 ms, a mechanical refocus).
        threads : int, optional
            Inference threads (default: all cores).
        precision : {"default", "f32", "bf16", "int8", "fp16"}
            ``"default"`` runs the fastest file the model ships (INT8 where it was shipped because it pays) at
            OpenVINO's default precision (bf16 on CPUs that have it). ``"f32"`` pins full precision.
        ladder : bool or sequence of str
            True: shipped variants below ``model`` in the shipped ladder become fallback rungs. False: only
            ``model`` and pass-through. A sequence names the lower rungs explicitly.
        fallback : bool
            If ``model`` cannot be loaded (missing, tampered), load the next variant of the ladder instead of raising.
        max_tile : int
            Captures larger than this on a side are restored in overlapping tiles (default 2048: a 1920×1200 scan
            image runs whole).
        warmup : int
            Frames run at load to warm up and measure p50/p95 (at least 5 are used for the report).
        warmup_shape : (height, width) or (height, width, channels), optional
            Also compile every rung for captures of this size (RGB for (H, W); (H, W, 1) for a gray camera; uint8
            unless ``warmup_dtype`` says otherwise), so that the first real frame is not the compile.
        warmup_dtype : str
            dtype of the captures ``warmup_shape`` prepares for ("uint8" or "uint16").
        defocus_estimator : "auto", None, False, path or estimator
            Flags captures whose estimated defocus lies outside the restoring model's ``trusted_defocus_um`` (a
            model without one is held to :data:`~virtualfocus.edge.integrations.telemetry.DEFAULT_TRUSTED_UM`,
            −0.8…+0.8 µm). ``"auto"`` (default): the shipped estimator (``shipped.json`` ``"defocus_estimator"``)
            if there is one, else none (a shipped one that cannot be loaded is logged and skipped). None or False:
            none. A path or shipped name: that focus-distance classifier folder
            (:class:`~virtualfocus.edge.classifier.DefocusClassifier`; errors raise). An object with
            ``estimate(image, key=...)``: used as given. Its cost is part of every frame's latency.
        in_focus_band_um : "auto", None or (low, high)
            Captures the (signed) estimator places inside this band are returned untouched as ``in-focus``.
            ``"auto"`` (default): ``shipped.json``'s ``"in_focus_band_um"`` when the shipped estimator is in use,
            else off. None: off (every capture is restored).
        pass_in_focus : bool
            Return captures the model barely sharpens untouched (see the class); False restores every capture.
        focus_map, focus_map_tile : bool, int
            Per-tile focus maps (``RestoredFrame.focus_map``): see the class.

        Raises
        ------
        ModelLoadError
            Unknown variant, missing file, manifest/sha256 mismatch, no usable backend; a ``defocus_estimator``
            path that is not a usable defocus model.
        InputError
            A ``defocus_estimator`` value of another kind.
        """
        t0 = time.perf_counter()
        engines = load_ladder(model, ladder=ladder, fallback=fallback, contract=contract, backend=backend,
                               threads=threads, precision=precision, max_tile=max_tile)
        estimator = load_estimator(defocus_estimator, backend=backend, threads=threads, precision=precision)
        band = in_focus_band(in_focus_band_um, estimator, defocus_estimator)
        rt = cls(engines, budget_ms=budget_ms, deadline_ms=deadline_ms, queue_size=queue_size,
                 in_focus_threshold=in_focus_threshold, defocus_estimator=estimator, in_focus_band_um=band,
                 pass_in_focus=pass_in_focus, focus_map=focus_map, focus_map_tile=focus_map_tile)
        if warmup_shape is not None:
            rt.warm(warmup_shape, dtype=warmup_dtype)
        load_ms = (time.perf_counter() - t0) * 1e3
        rt.load_report = rt._measure(load_ms, max(5, warmup))
        log.info("virtualfocus: %s", rt.load_report)
        return rt

    def warm(self, shape: tuple[int, ...], *, dtype: str = "uint8") -> None:
        """Compile every rung for captures of ``shape`` now (see ``warmup_shape``): (H, W) or (H, W, 3) for RGB,
        (H, W, 1) for gray captures (2-D or H×W×1 alike)."""
        if len(shape) not in (2, 3) or min(shape[:2]) < 1:
            raise InputError(f"warmup_shape={shape}: expected (height, width) or (height, width, channels)")
        if dtype not in ("uint8", "uint16"):
            raise InputError(f"warmup_dtype={dtype!r}: expected 'uint8' or 'uint16'")
        h, w = int(shape[0]), int(shape[1])
        channels = int(shape[2]) if len(shape) == 3 else 3  # (H, W): an RGB camera; gray ones say (H, W, 1)
        for eng in self.engines:
            if eng is not None:
                for _ in range(2):  # the compile, then the first run's own allocations
                    eng.warm(h, w, channels=channels, dtype=np.dtype(dtype).type,
                             focus=self.policy.wants_gain(eng.manifest))

    def _measure(self, load_ms: float, n: int) -> LoadReport:
        rng = np.random.default_rng(0)
        frame = np.clip(rng.normal(200, 20, (REFERENCE_SIZE, REFERENCE_SIZE, 3)), 0, 255).astype(np.uint8)
        eng = self.engines[0]
        assert eng is not None
        with_estimator = self.policy.estimator is not None
        times = []
        for _ in range(n + 1):
            t = time.perf_counter()
            capture = Capture(frame)
            eng.restore(capture, focus=self.policy.wants_gain(eng.manifest))
            if with_estimator:
                try:
                    self.policy.estimate_for_report(capture)
                except Exception as e:  # e.g. a crop larger than the reference frame: measured without it
                    log.debug("virtualfocus: load measurement without the defocus estimator (%s)", e)
                    with_estimator = False
            times.append((time.perf_counter() - t) * 1e3)
        first, rest = times[0], np.asarray(times[1:])
        trained = bool(eng.manifest.trained) if eng.manifest is not None else True
        label = estimator_label(self.policy.estimator)
        if label and not with_estimator:
            label += " (failed on the reference frame: not in these figures)"
        return LoadReport(eng.name, eng.backend_name, load_ms, first, float(np.percentile(rest, 50)),
                          float(np.percentile(rest, 95)), self.budget_ms, trained, label)

    # -- properties --------------------------------------------------------------------------------------------
    @property
    def variant(self) -> str:
        """The variant currently running (``"passthrough"`` at the last rung)."""
        eng = self.engines[self._rung]
        return eng.name if eng is not None else PASSTHROUGH

    @property
    def ladder(self) -> list[str]:
        return [e.name if e is not None else PASSTHROUGH for e in self.engines]

    @staticmethod
    def trusted_range(engine: ModelEngine | None) -> tuple[float, float]:
        """The trusted defocus range (µm) of ``engine``'s model: its manifest's ``trusted_defocus_um``, else
        :data:`~virtualfocus.edge.defocus.DEFAULT_TRUSTED_UM`."""
        return trusted_range(engine.manifest if engine is not None else None)

    # -- synchronous path --------------------------------------------------------------------------------------
    def restore(self, image: np.ndarray, meta: Mapping[str, Any] | None = None) -> RestoredFrame:
        """Restore one capture now, in the calling thread.

        Parameters
        ----------
        image : np.ndarray
            Gray (H×W, H×W×1), RGB or RGBA (alpha is passed through); uint8, uint16 or float; at least 16×16.
        meta : mapping, optional
            Returned untouched in the frame. ``meta["bit_depth"]`` (e.g. 12) tells the significant bits of a
            uint16 capture; ``meta["key"]`` (e.g. the stage position) is passed to the defocus estimator and
            reported in :class:`~virtualfocus.edge.events.UntrustedCapture`.

        Raises
        ------
        InputError
            The image is not something the runtime accepts (the message says what is).
        """
        return self._process(image, meta, index=next(self._seq), submitted=None)

    def _process(
        self, image: Any, meta: Mapping[str, Any] | None, *, index: int, submitted: float | None
    ) -> RestoredFrame:
        """The one decision path of a frame: policy before the model, the model, policy after it."""
        t0 = time.perf_counter()
        queue_ms = (t0 - submitted) * 1e3 if submitted is not None else 0.0
        md = meta if isinstance(meta, Mapping) else {}
        capture = Capture(validate_image(image, name="image"), md.get("key"), bit_depth=md.get("bit_depth"))
        if capture.image.dtype.kind == "f" or md.get("bit_depth") is not None:
            capture.info  # noqa: B018 - float scale, NaN and bit-depth checks raise InputError here, before any work
        with self._state_lock:
            rung = self._rung
        eng = self.engines[rung]
        manifest = (eng or self.engines[0]).manifest  # type: ignore[union-attr]

        def frame(status: FrameStatus, out: Any, j: Judgement, message: str, variant: str = PASSTHROUGH,
                  backend: str = "", fmap: FocusMap | None = None) -> RestoredFrame:
            return RestoredFrame(image=out, status=status, latency_ms=(time.perf_counter() - t0) * 1e3,
                                 variant=variant, backend=backend, index=index, meta=meta, queue_ms=queue_ms,
                                 message=message, focus=j.focus, defocus_um=j.defocus_um, trusted=j.trusted,
                                 defocus=j.estimate, focus_map=fmap)

        early = self.policy.before(capture, manifest, restoring=eng is not None, index=index)
        if early.in_focus:
            return self._flag(frame(FrameStatus.IN_FOCUS, image, early, early.message), manifest)
        if eng is None:
            self._account(rung, 0.0)
            return frame(FrameStatus.PASSTHROUGH, image, Judgement(focus=early.focus), "latency guard at pass-through")
        try:
            res = eng.restore(capture, bit_depth=capture.bit_depth, focus=self.policy.wants_gain(eng.manifest))
        except BackendError as e:
            self.events.emit(BackendFailed(eng.name, eng.backend_name, str(e), "frame delivered raw"))
            return frame(FrameStatus.FAILED, image, Judgement(focus=early.focus), str(e), eng.name, eng.backend_name)
        # Inside the timed span: the guard holds restoration + the policy's checks to the budget together.
        gain = None
        if res.focus is not None:
            f_in = capture.focus()
            gain = res.focus / f_in if f_in > 0 else float("inf")
        j = self.policy.after(early, capture, eng.manifest, gain=gain, index=index)
        fmap, map_note = self._focus_map(capture, res.image, eng) if self.focus_map_tile is not None else (None, "")
        if not res.cold:
            # The budget is per reference capture: larger frames (scan images) count pro rata by pixels.
            pixels = capture.image.shape[0] * capture.image.shape[1]
            self._account(rung, (time.perf_counter() - t0) * 1e3 * min(1.0, REFERENCE_SIZE**2 / pixels))
        if j.in_focus:  # the model ran but found nothing to restore: the capture goes back untouched
            message = "; ".join(n for n in (j.message, map_note) if n)
            return self._flag(frame(FrameStatus.IN_FOCUS, image, j, message, eng.name, eng.backend_name, fmap),
                              manifest)
        nonfinite = f"{res.nonfinite} NaN/Inf pixel(s) were treated as 0" if res.nonfinite else ""
        message = "; ".join(n for n in (nonfinite, j.note, map_note) if n)
        return self._flag(frame(FrameStatus.RESTORED, res.image, j, message, eng.name, eng.backend_name, fmap),
                          manifest)

    def _focus_map(self, capture: Capture, restored: np.ndarray, eng: ModelEngine) -> tuple[FocusMap | None, str]:
        """The capture's focus map from its restoration, or None and the reason in a few words."""
        tile = self.focus_map_tile
        assert tile is not None
        cal = self.policy.map_calibration(eng.manifest)
        if cal is None:
            return None, f"no focus map: {eng.name} has no restoration-gain calibration (focus_gain) in its manifest"
        im, ch = capture.image, capture.focus_channel
        h, w = im.shape[:2]
        if h < tile or w < tile:
            return None, f"no focus map: the {h}×{w} capture is smaller than one {tile}×{tile} px tile"
        plane_in = im if im.ndim == 2 else im[..., ch]
        out = np.asarray(restored)
        plane_out = out if out.ndim == 2 else out[..., ch]
        try:
            return focus_map(plane_in, plane_out, cal, tile_px=tile, trusted_um=trusted_range(eng.manifest)), ""
        except InputError as e:
            return None, f"no focus map: {e}"

    def _flag(self, frame: RestoredFrame, manifest: Manifest | None) -> RestoredFrame:
        if frame.trusted is False and frame.defocus is not None and frame.defocus_um is not None:
            key = frame.meta.get("key") if isinstance(frame.meta, Mapping) else None
            self.events.emit(UntrustedCapture(frame.index, key, frame.defocus_um, trusted_range(manifest),
                                              frame.defocus.signed, frame.variant, frame.status.value))
        return frame

    def _account(self, rung: int, ms: float) -> None:
        """Feed the guard; step down the ladder when over budget, probe back up after a while."""
        events: list[Event] = []
        with self._state_lock:
            if rung != self._rung:
                return  # a frame from before the last step says nothing about the current rung
            g = self.guard
            if g.record(ms) and self._rung < len(self.engines) - 1:
                p95, old = g.p95(), self.variant
                if self._probing:
                    g.probe_failed()
                self._rung, self._probing = self._rung + 1, False
                g.reset()
                reason = f"rolling p95 {p95:.1f} ms > budget {self.budget_ms:g} ms"
                events += [BudgetExceededEvent(old, p95, self.budget_ms), FallbackEngaged(old, self.variant, reason)]
            elif self._probing and g.full:
                self._probing = False
                g.probe_succeeded()
                events.append(GuardRecovered(self.variant, g.p95()))
            elif self._rung > 0 and not self._probing and g.should_probe():
                self._rung, self._probing = self._rung - 1, True
                g.reset()
        for ev in events:
            log.warning("virtualfocus: %s", ev)
            self.events.emit(ev)

    # -- capture-triggered path --------------------------------------------------------------------------------
    def submit(self, image: np.ndarray, meta: Mapping[str, Any] | None = None) -> Future[RestoredFrame]:
        """Queue a capture for restoration and return at once.

        The frame is copied (the caller may reuse its buffer). The future always resolves with a
        :class:`RestoredFrame`, never an exception: invalid input comes back ``rejected``, a full queue
        ``overflow``, a missed deadline ``late``.
        """
        now = time.perf_counter()
        index = next(self._seq)
        fut: Future[RestoredFrame] = Future()
        fut.set_running_or_notify_cancel()
        frame = np.array(image, copy=True) if isinstance(image, np.ndarray) else image
        job = _Job(index, frame, meta, fut, now, now + self.deadline_ms / 1e3, owner=self)
        sched = self._sched
        if sched.closed:
            self._resolve(job, self._raw(job, FrameStatus.CLOSED, "runtime is closed"))
            return fut
        self._ensure_threads()
        with sched.cv:
            sched.pending.add(job)
            heapq.heappush(sched.deadlines, (job.deadline, index, job))
            sched.cv.notify()
        try:
            sched.queue.put_nowait(job)
        except queue.Full:
            self._resolve(job, self._raw(job, FrameStatus.OVERFLOW, "queue full: restoration cannot keep up"))
        return fut

    def _raw(self, job: _Job, status: FrameStatus, message: str) -> RestoredFrame:
        waited = (time.perf_counter() - job.submitted) * 1e3
        return RestoredFrame(image=job.image, status=status, latency_ms=0.0, variant=PASSTHROUGH, index=job.index,
                             meta=job.meta, queue_ms=waited, message=message)

    def _resolve(self, job: _Job, frame: RestoredFrame) -> bool:
        with job.lock:
            if job.done:
                return False
            job.done = True
        with self._sched.cv:
            self._sched.pending.discard(job)
        job.owner = None  # the deadline heap keeps the job until its deadline; the runtime need not wait with it
        try:
            job.future.set_result(frame)
        except InvalidStateError:  # pragma: no cover - guarded by job.lock
            return False
        job.image = None
        self.events.emit(FrameRestored(frame))
        return True

    def _run_job(self, job: _Job) -> None:
        try:
            frame = self._process(job.image, job.meta, index=job.index, submitted=job.submitted)
        except InputError as e:
            frame = self._raw(job, FrameStatus.REJECTED, str(e))
        except Exception as e:  # the worker must survive anything a frame or backend throws
            log.exception("virtualfocus: unexpected error on frame %d; delivered raw", job.index)
            frame = self._raw(job, FrameStatus.FAILED, f"{type(e).__name__}: {e}")
        if not self._resolve(job, frame):
            log.debug("virtualfocus: frame %d finished after its deadline; raw copy was delivered", job.index)

    def _late(self, job: _Job) -> None:
        waited = (time.perf_counter() - job.submitted) * 1e3
        if self._resolve(job, self._raw(job, FrameStatus.LATE, f"missed the {self.deadline_ms:g} ms deadline")):
            self.events.emit(FrameLate(job.index, waited, self.deadline_ms))
            # A missed deadline is the clearest sign of overload: it counts against the running rung.
            self._account(self._rung, waited)

    def start(self) -> None:
        """Start the worker and deadline threads now (they also start on the first :meth:`submit`)."""
        if self._sched.closed:
            raise RuntimeError("FocusRuntime is closed")
        self._ensure_threads()

    @property
    def closed(self) -> bool:
        return self._sched.closed

    def _ensure_threads(self) -> None:
        if self._worker is not None:
            return
        with self._start_lock:
            if self._worker is None:
                self._watchdog = threading.Thread(target=_watch, args=(self._sched,), name="virtualfocus-deadlines",
                                                  daemon=True)
                self._watchdog.start()
                self._worker = threading.Thread(target=_work, args=(self._sched,), name="virtualfocus-worker",
                                                daemon=True)
                self._worker.start()
                # Collected with an empty queue (queued frames keep it alive): stop the threads.
                weakref.finalize(self, _shutdown, self._sched, self._worker)

    # -- shutdown ----------------------------------------------------------------------------------------------
    def close(self, *, drain: bool = True, timeout: float | None = None) -> None:
        """Stop accepting frames. ``drain=True`` restores what is queued (each still bound by its deadline);
        ``drain=False`` returns every pending frame raw, flagged ``closed``. Every future resolves either way.
        Closing twice is harmless; leaving a ``with`` block and interpreter exit close with ``drain=True``."""
        sched = self._sched
        with sched.cv:
            if sched.closed:
                return
            sched.closed = True
        if not drain:
            self._resolve_pending("runtime closed before restoration")
        if self._worker is not None:
            sched.queue.put(None)
            self._worker.join(timeout)
        self._resolve_pending("runtime closed before restoration")  # anything the worker did not reach in time
        with sched.cv:
            sched.cv.notify_all()
        if self._watchdog is not None:
            self._watchdog.join(1.0)

    def _resolve_pending(self, message: str) -> None:
        with self._sched.cv:
            pending = sorted(self._sched.pending, key=lambda j: j.index)
        for job in pending:
            self._resolve(job, self._raw(job, FrameStatus.CLOSED, message))

    def __enter__(self) -> FocusRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FocusRuntime(variant={self.variant!r}, ladder={self.ladder}, budget_ms={self.budget_ms:g})"
