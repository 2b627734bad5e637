"""The runtime instrument software imports: restore defocused captures within a latency budget.

Example
-------
>>> from virtualfocus.edge import FocusRuntime
>>> rt = FocusRuntime.load()                    # shipped default, OpenVINO, 70 ms budget
>>> frame = rt.restore(capture)                 # synchronous: same shape and dtype back
>>> fut = rt.submit(capture, meta={"index": 7}) # capture-triggered: returns at once
>>> fut.result().status
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
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from .backends import PRECISIONS, Backend, BackendKind, open_model
from .defocus import (
    DEFAULT_TRUSTED_UM,
    DefocusClassifier,
    DefocusEstimate,
    FocusGainCalibration,
    in_trusted_range,
    restoration_gain,
)
from .errors import BackendError, InputError, ModelLoadError
from .events import (
    BackendFailed,
    BudgetExceededEvent,
    EventBus,
    FallbackEngaged,
    FrameLate,
    FrameRestored,
    GuardRecovered,
    UntrustedCapture,
)
from .manifest import InputContract, Manifest
from .models import ModelSource, resolve_model, shipped
from .preprocess import ImageInfo, Normalizer, PadCrop, Tiler, from_unit, to_unit

__all__ = ["PASSTHROUGH", "FocusRuntime", "FrameStatus", "LatencyGuard", "LoadReport", "ModelEngine", "RestoredFrame"]

log = logging.getLogger("virtualfocus")

#: Name of the last rung of every ladder: the frame is returned untouched.
PASSTHROUGH = "passthrough"

#: Size of the frame the load-time self-measurement uses (the thesis's white-cell capture).
REFERENCE_SIZE = 360


class FrameStatus(StrEnum):
    """What happened to a frame."""

    RESTORED = "restored"  #: restored by a model
    IN_FOCUS = "in-focus"  #: already in focus (defocus estimate in the in-focus band, or focus measure): untouched
    PASSTHROUGH = "passthrough"  #: the latency guard is at the pass-through rung: returned untouched
    LATE = "late"  #: missed its hard deadline: returned raw at the deadline
    OVERFLOW = "overflow"  #: the queue was full: returned raw at once
    FAILED = "failed"  #: every backend failed on it: returned raw
    REJECTED = "rejected"  #: not an image the runtime accepts: returned as given, see ``message``
    CLOSED = "closed"  #: the runtime was closed without draining: returned raw

    @property
    def restored(self) -> bool:
        return self is FrameStatus.RESTORED


@dataclass(frozen=True)
class RestoredFrame:
    """A frame's result.

    Attributes
    ----------
    image : np.ndarray
        Same shape and dtype as the capture (the capture itself when not restored).
    status : FrameStatus
    latency_ms : float
        Time spent restoring (pre-processing, inference, post-processing).
    variant : str
        Model variant that produced ``image`` (``"passthrough"`` when none did).
    backend : str
        ``"openvino"``, ``"onnxruntime"`` or ``""``.
    index : int
        Sequence number given by the runtime (submission order).
    meta : Mapping or None
        The caller's metadata, untouched.
    queue_ms : float
        Time between ``submit`` and the start of restoration (0 for ``restore``).
    message : str
        Why a frame was not restored (or why a restored one is not trusted), in one line.
    focus : float or None
        The capture's focus measure F, when the runtime's in-focus check computed it.
    defocus_um : float or None
        The capture's estimated defocus in µm (signed when ``defocus.signed``); None when the runtime has no
        defocus estimator, the estimate failed, or the frame was not restored (late, overflow, pass-through …).
    trusted : bool or None
        Whether ``defocus_um`` lies in the restoring model's trusted range (``trusted_defocus_um`` of its manifest,
        else :data:`~virtualfocus.edge.integrations.telemetry.DEFAULT_TRUSTED_UM`); None without an estimate.
        A ``False`` frame was restored as usual but its output must not be relied on.
    defocus : DefocusEstimate or None
        The whole estimate (signedness, confidence) behind ``defocus_um``.
    """

    image: np.ndarray
    status: FrameStatus
    latency_ms: float
    variant: str
    backend: str = ""
    index: int = -1
    meta: Mapping[str, Any] | None = None
    queue_ms: float = 0.0
    message: str = ""
    focus: float | None = None
    defocus_um: float | None = None
    trusted: bool | None = None
    defocus: DefocusEstimate | None = None

    def metadata(self) -> dict[str, Any]:
        """Flat ``virtualfocus.*`` keys to merge into an acquisition's per-frame metadata.

        ``virtualfocus.trusted`` is always present (None without an estimate); ``virtualfocus.defocus_um`` and
        ``virtualfocus.defocus_signed`` only when the runtime estimated the capture's defocus.
        """
        md: dict[str, Any] = {
            "virtualfocus.status": self.status.value,
            "virtualfocus.latency_ms": round(self.latency_ms, 3),
            "virtualfocus.variant": self.variant,
            "virtualfocus.backend": self.backend,
            "virtualfocus.message": self.message,
            "virtualfocus.trusted": self.trusted,
        }
        if self.defocus_um is not None:
            md["virtualfocus.defocus_um"] = round(self.defocus_um, 4)
            md["virtualfocus.defocus_signed"] = bool(self.defocus.signed) if self.defocus is not None else False
        return md


# ---------------------------------------------------------------------------------------------------------------
# One loaded model
# ---------------------------------------------------------------------------------------------------------------


class ModelEngine:
    """A model variant bound to a backend, with its pre/post-processing.

    Parameters
    ----------
    name : str
        Variant name reported in every frame.
    backend : Backend
        The engine that runs NCHW float32 arrays.
    contract : InputContract
        Channels, value range, pad multiple, static size.
    fallback : callable, optional
        Builds a replacement backend if ``backend`` fails mid-stream (called at most once).
    max_tile, overlap : int
        Images larger than ``max_tile`` on a side are tiled (see :class:`~virtualfocus.edge.preprocess.Tiler`).
    """

    def __init__(
        self,
        name: str,
        backend: Backend,
        contract: InputContract,
        *,
        manifest: Manifest | None = None,
        fallback: Any = None,
        max_tile: int = 1024,
        overlap: int = 32,
    ) -> None:
        self.name = name
        self.backend = backend
        self.contract = contract
        self.manifest = manifest
        self._fallback = fallback
        self._warm: set[tuple[int, ...]] = set()
        self.cold = False
        self.normalizer = Normalizer(tuple(contract.value_range), contract.channels)  # type: ignore[arg-type]
        if contract.static_size is not None:
            h, w = contract.static_size
            self.padcrop = PadCrop(contract.pad_multiple, min_size=0)
            self.tiler = Tiler(max_tile=min(h, w), overlap=min(overlap, min(h, w) // 4), multiple=1)
            self._static: tuple[int, int] | None = (h, w)
        else:
            self.padcrop = PadCrop(contract.pad_multiple, min_size=contract.min_size)
            self.tiler = Tiler(max_tile=max_tile, overlap=overlap, multiple=contract.pad_multiple)
            self._static = None

    @classmethod
    def load(
        cls,
        model: str | os.PathLike[str] | None,
        *,
        backend: str | None = None,
        threads: int | None = None,
        precision: str = "default",
        max_tile: int = 1024,
        overlap: int = 32,
        contract: InputContract | None = None,
    ) -> ModelEngine:
        """Load one variant (shipped name, folder or file) without warm-up; see :meth:`FocusRuntime.load`."""
        return _engine_from_source(resolve_model(model, contract=contract), backend=backend, threads=threads,
                                   precision=precision, max_tile=max_tile, overlap=overlap)

    @property
    def backend_name(self) -> str:
        return self.backend.kind.value

    def _run_tile(self, unit: np.ndarray) -> np.ndarray:
        if self._static is not None:
            h, w = unit.shape[:2]
            sh, sw = self._static
            top, left = (sh - h) // 2, (sw - w) // 2
            pads = (top, sh - h - top, left, sw - w - left)
            import cv2

            mode = cv2.BORDER_REFLECT_101 if max(pads) < min(h, w) else cv2.BORDER_REPLICATE
            padded = cv2.copyMakeBorder(unit, *pads, borderType=mode) if any(pads) else unit
            if padded.ndim == 2:
                padded = padded[..., None]
        else:
            padded, pads = self.padcrop.pad(unit)
        if padded.shape not in self._warm:
            self._warm.add(padded.shape)
            self.cold = True  # this call compiles a new shape: its time says nothing about steady-state latency
        y = self._infer(self.normalizer.before(padded))
        return PadCrop.crop(self.normalizer.after(y), pads)

    def _infer(self, x: np.ndarray) -> np.ndarray:
        try:
            return self.backend.run(x)
        except BackendError:
            if self._fallback is None:
                raise
            build, self._fallback = self._fallback, None
            failed = self.backend_name
            self.backend = build()
            log.warning("virtualfocus: %s failed on %s; switched to %s", self.name, failed, self.backend_name)
            return self.backend.run(x)

    def restore_unit(self, unit: np.ndarray) -> np.ndarray:
        """Restore a 0..1 H×W×C float32 image (any size ≥ the minimum); returns 0..1 H×W×C'.

        After the call, ``cold`` tells whether it had to compile a new input shape.
        """
        self.cold = False
        return self.tiler.run(unit, self._run_tile)


def _engine_from_source(
    src: ModelSource,
    *,
    backend: str | BackendKind | None,
    threads: int | None,
    precision: str,
    max_tile: int,
    overlap: int,
) -> ModelEngine:
    m = src.manifest
    if m.task != "restore":
        raise ModelLoadError(f"{src.origin}: {m.name} is a {m.task!r} model, not a restoring one; pass it as "
                             "FocusRuntime.load(..., defocus_estimator=PATH)")
    be, fallback = open_model(src, backend=backend, threads=threads, precision=precision)
    return ModelEngine(src.label, be, m.input, manifest=m, fallback=fallback, max_tile=max_tile, overlap=overlap)


#: ``precision`` values of :meth:`FocusRuntime.load`: "default", OpenVINO execution hints, or a shipped file's precision.
_PRECISIONS = PRECISIONS


# ---------------------------------------------------------------------------------------------------------------
# Latency guard
# ---------------------------------------------------------------------------------------------------------------


class LatencyGuard:
    """Rolling p95 over the last ``window`` frames against ``budget_ms``.

    :meth:`record` returns True when the running rung should step down. After ``probe_after`` frames on a lower
    rung :meth:`should_probe` asks to try the rung above again; each failed probe doubles that wait.
    """

    def __init__(self, budget_ms: float, *, window: int = 50, min_samples: int = 10, probe_after: int = 300) -> None:
        if not budget_ms > 0:
            raise InputError(f"budget_ms={budget_ms}: must be a positive number of milliseconds")
        self.budget_ms = float(budget_ms)
        self.window = window
        self.min_samples = min_samples
        self._samples: deque[float] = deque(maxlen=window)
        self._probe_after = probe_after
        self._since_step = 0
        self._next_probe = probe_after

    def p95(self) -> float:
        return float(np.percentile(np.fromiter(self._samples, float), 95)) if self._samples else 0.0

    def p50(self) -> float:
        return float(np.percentile(np.fromiter(self._samples, float), 50)) if self._samples else 0.0

    def record(self, ms: float) -> bool:
        self._samples.append(ms)
        self._since_step += 1
        return len(self._samples) >= self.min_samples and self.p95() > self.budget_ms

    def reset(self) -> None:
        self._samples.clear()
        self._since_step = 0

    def should_probe(self) -> bool:
        return self._since_step >= self._next_probe

    def probe_failed(self) -> None:
        self._next_probe = min(self._next_probe * 2, 100_000)

    def probe_succeeded(self) -> None:
        self._next_probe = self._probe_after


# ---------------------------------------------------------------------------------------------------------------
# The runtime
# ---------------------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Job:
    index: int
    image: Any
    meta: Mapping[str, Any] | None
    future: Future[RestoredFrame]
    submitted: float
    deadline: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: bool = False


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
        return (
            f"{self.variant} on {self.backend}{est}: loaded in {self.load_ms:.0f} ms, first frame "
            f"{self.first_frame_ms:.1f} ms, p50 {self.p50_ms:.2f} ms, p95 {self.p95_ms:.2f} ms at "
            f"{REFERENCE_SIZE}×{REFERENCE_SIZE} (budget {self.budget_ms:g} ms){flag}"
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
        trusted range: a :class:`~virtualfocus.edge.defocus.DefocusClassifier` (signed) or any object with
        ``estimate(image, key=...) -> DefocusEstimate`` (e.g. the focus-measure estimator: a magnitude, compared
        with the nearer bound of the range). None: frames carry ``trusted=None``.
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
        defocus_estimator: Any = None,
        in_focus_band_um: tuple[float, float] | None = None,
        pass_in_focus: bool = True,
    ) -> None:
        if not engines:
            raise ModelLoadError("FocusRuntime needs at least one model engine")
        self.engines: list[ModelEngine | None] = [*engines, None]
        self.guard = LatencyGuard(budget_ms, window=guard_window, probe_after=probe_after)
        self.budget_ms = float(budget_ms)
        self.deadline_ms = float(deadline_ms) if deadline_ms is not None else 2.0 * self.budget_ms
        if queue_size < 1:
            raise InputError(f"queue_size={queue_size}: must be at least 1")
        self.in_focus_threshold = in_focus_threshold
        if defocus_estimator is not None and not callable(getattr(defocus_estimator, "estimate", None)):
            raise InputError(f"defocus_estimator: {type(defocus_estimator).__name__} has no estimate(image, key=...) "
                             "method; pass a DefocusClassifier, a FocusMeasureEstimator or None")
        self.defocus_estimator: Any = defocus_estimator
        if in_focus_band_um is not None:
            lo, hi = (float(v) for v in in_focus_band_um)
            if not lo <= hi:
                raise InputError(f"in_focus_band_um={in_focus_band_um}; expected (low, high) in µm with low ≤ high")
            in_focus_band_um = (lo, hi)
        self.in_focus_band_um: tuple[float, float] | None = in_focus_band_um
        self.pass_in_focus = bool(pass_in_focus)
        self._gain_cal: dict[int, FocusGainCalibration | None] = {}
        self.estimator_failures = 0
        self._estimator_warned: set[str] = set()
        self.events = EventBus()
        self.load_report: LoadReport | None = None
        self._rung = 0
        self._probing = False
        self._state_lock = threading.Lock()
        self._seq = itertools.count()
        self._queue: queue.Queue[_Job | None] = queue.Queue(maxsize=queue_size)
        self._pending: set[_Job] = set()
        self._deadlines: list[tuple[float, int, _Job]] = []
        self._deadline_cv = threading.Condition()
        self._closed = False
        self._worker: threading.Thread | None = None
        self._watchdog: threading.Thread | None = None
        self._start_lock = threading.Lock()

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
        max_tile: int = 1024,
        warmup: int = 20,
        defocus_estimator: Any = "auto",
        in_focus_band_um: Any = "auto",
        pass_in_focus: bool = True,
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
        warmup : int
            Frames run at load to warm up and measure p50/p95 (at least 5 are used for the report).
        defocus_estimator : "auto", None, False, path or estimator
            Flags captures whose estimated defocus lies outside the restoring model's ``trusted_defocus_um`` (a
            model without one is held to :data:`~virtualfocus.edge.integrations.telemetry.DEFAULT_TRUSTED_UM`,
            −0.8…+0.8 µm). ``"auto"`` (default): the shipped estimator (``shipped.json`` ``"defocus_estimator"``)
            if there is one, else none (a shipped one that cannot be loaded is logged and skipped). None or False:
            none. A path or shipped name: that focus-distance classifier folder
            (:class:`~virtualfocus.edge.defocus.DefocusClassifier`; errors raise). An object with
            ``estimate(image, key=...)``: used as given. Its cost is part of every frame's latency.
        in_focus_band_um : "auto", None or (low, high)
            Captures the (signed) estimator places inside this band are returned untouched as ``in-focus``.
            ``"auto"`` (default): ``shipped.json``'s ``"in_focus_band_um"`` when the shipped estimator is in use,
            else off. None: off (every capture is restored).
        pass_in_focus : bool
            Return captures the model barely sharpens untouched (see the class); False restores every capture.

        Raises
        ------
        ModelLoadError
            Unknown variant, missing file, manifest/sha256 mismatch, no usable backend; a ``defocus_estimator``
            path that is not a usable defocus model.
        InputError
            A ``defocus_estimator`` value of another kind.
        """
        t0 = time.perf_counter()
        names: list[str | os.PathLike[str] | None] = [model]
        if ladder is not False:
            try:
                ship = shipped()
                order = list(ship.ladder)
            except ModelLoadError:
                ship, order = None, []
            if isinstance(ladder, Sequence) and not isinstance(ladder, str):
                names += list(ladder)
            else:
                first = model if model is not None else (ship.default if ship else None)
                if isinstance(first, str) and first in order:
                    names += order[order.index(first) + 1 :]
        engines: list[ModelEngine] = []
        for i, name in enumerate(names):
            try:
                src = resolve_model(name, contract=contract)
                engines.append(
                    _engine_from_source(
                        src, backend=backend, threads=threads, precision=precision, max_tile=max_tile, overlap=32
                    )
                )
            except ModelLoadError as e:
                if i == 0 and not fallback:
                    raise
                log.warning("virtualfocus: could not load %s (%s); %s", name, e,
                            "using the next variant" if i == 0 else "dropping this rung")
        if not engines:
            raise ModelLoadError(f"no variant of {names} could be loaded; see the warnings above")
        estimator = _load_estimator(defocus_estimator, backend=backend, threads=threads, precision=precision)
        if isinstance(in_focus_band_um, str):
            if in_focus_band_um != "auto":
                raise InputError(f"in_focus_band_um={in_focus_band_um!r}; expected 'auto', None or (low, high) in µm")
            in_focus_band_um = None
            if estimator is not None and defocus_estimator == "auto":
                try:
                    in_focus_band_um = shipped().in_focus_band_um
                except ModelLoadError:
                    in_focus_band_um = None
        rt = cls(engines, budget_ms=budget_ms, deadline_ms=deadline_ms, queue_size=queue_size,
                 in_focus_threshold=in_focus_threshold, defocus_estimator=estimator,
                 in_focus_band_um=in_focus_band_um, pass_in_focus=pass_in_focus)
        load_ms = (time.perf_counter() - t0) * 1e3
        rt.load_report = rt._measure(load_ms, max(5, warmup))
        log.info("virtualfocus: %s", rt.load_report)
        return rt

    def _measure(self, load_ms: float, n: int) -> LoadReport:
        rng = np.random.default_rng(0)
        frame = np.clip(rng.normal(200, 20, (REFERENCE_SIZE, REFERENCE_SIZE, 3)), 0, 255).astype(np.uint8)
        eng = self.engines[0]
        assert eng is not None
        unit, info = to_unit(frame)
        estimator = self.defocus_estimator
        times = []
        for _ in range(n + 1):
            t = time.perf_counter()
            from_unit(eng.restore_unit(unit), info)
            if estimator is not None:
                try:
                    self._run_estimator(unit, frame, None)
                except Exception as e:  # e.g. a crop larger than the reference frame: measured without it
                    log.debug("virtualfocus: load measurement without the defocus estimator (%s)", e)
                    estimator = None
            times.append((time.perf_counter() - t) * 1e3)
        first, rest = times[0], np.asarray(times[1:])
        trained = bool(eng.manifest.trained) if eng.manifest is not None else True
        label = _estimator_label(self.defocus_estimator)
        if label and estimator is None:
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
        t0 = time.perf_counter()
        queue_ms = (t0 - submitted) * 1e3 if submitted is not None else 0.0
        bit_depth = meta.get("bit_depth") if isinstance(meta, Mapping) else None
        unit, info = to_unit(image, name="image", bit_depth=bit_depth)
        with self._state_lock:
            rung = self._rung
        eng = self.engines[rung]
        focus = None
        if self.in_focus_threshold is not None:
            from .metrics import focus_measure

            focus = float(focus_measure(unit[..., min(1, unit.shape[2] - 1)] * 255.0))
            if focus >= self.in_focus_threshold:
                est, trusted, note = self._estimate(unit, image, meta, index, eng or self.engines[0])
                frame = self._frame(image, FrameStatus.IN_FOCUS, t0, PASSTHROUGH, "", index, meta, queue_ms,
                                    _join("already in focus", note), focus, est, trusted)
                self._flag(frame, eng or self.engines[0])
                return frame
        if eng is None:
            self._account(rung, 0.0)
            return self._frame(image, FrameStatus.PASSTHROUGH, t0, PASSTHROUGH, "", index, meta, queue_ms,
                               "latency guard at pass-through", focus)
        early = None
        if self.in_focus_band_um is not None and self.defocus_estimator is not None:
            early = self._estimate(unit, image, meta, index, eng)
            est0 = early[0]
            lo, hi = self.in_focus_band_um
            if est0 is not None and est0.signed and est0.defocus_um is not None and lo <= est0.defocus_um <= hi:
                frame = self._frame(image, FrameStatus.IN_FOCUS, t0, PASSTHROUGH, "", index, meta, queue_ms,
                                    _join(f"already in focus (estimated {est0.defocus_um:+.2f} µm)", early[2]),
                                    focus, est0, early[1])
                self._flag(frame, eng)
                return frame
        try:
            out = eng.restore_unit(unit)
        except BackendError as e:
            self.events.emit(BackendFailed(eng.name, eng.backend_name, str(e), "frame delivered raw"))
            return self._frame(image, FrameStatus.FAILED, t0, eng.name, eng.backend_name, index, meta, queue_ms,
                               str(e), focus)
        cold = eng.cold
        # Inside the timed span: the guard holds restoration + defocus estimation to the budget together.
        cal = self._gain_calibration(eng)
        gain = restoration_gain(unit, out) if cal is not None else None
        if early is not None:
            est, trusted, note = early
        elif self.defocus_estimator is not None:
            est, trusted, note = self._estimate(unit, image, meta, index, eng)
        elif cal is not None and gain is not None:
            est, trusted, note = self._judge(cal.estimate(gain), eng)
        else:
            est, trusted, note = None, None, ""
        if (self.pass_in_focus and cal is not None and gain is not None and cal.in_focus_below is not None
                and gain < cal.in_focus_below):
            # The model found next to nothing to restore: the capture is in focus, and any change would only
            # cost detail (the thesis's "no harm in focus"). Its time still counts: the model did run.
            ms = (time.perf_counter() - t0) * 1e3
            if not cold:
                self._account(rung, ms * min(1.0, REFERENCE_SIZE * REFERENCE_SIZE / (unit.shape[0] * unit.shape[1])))
            frame = self._frame(image, FrameStatus.IN_FOCUS, t0, eng.name, eng.backend_name, index, meta, queue_ms,
                                _join(f"already in focus (restoration gain {gain:.3f} < {cal.in_focus_below:.3f})",
                                      note), focus, est, trusted)
            self._flag(frame, eng)
            return frame
        result = from_unit(out, info)
        ms = (time.perf_counter() - t0) * 1e3
        if not cold:
            # The budget is per reference capture: larger frames (scan images) count pro rata by pixels.
            pixels = unit.shape[0] * unit.shape[1]
            self._account(rung, ms * min(1.0, REFERENCE_SIZE * REFERENCE_SIZE / pixels))
        frame = RestoredFrame(result, FrameStatus.RESTORED, ms, eng.name, eng.backend_name, index, meta, queue_ms,
                              _join(_nonfinite_note(info), note), focus,
                              est.defocus_um if est is not None else None, trusted, est)
        self._flag(frame, eng)
        return frame

    @staticmethod
    def _frame(image: Any, status: FrameStatus, t0: float, variant: str, backend: str, index: int,
               meta: Mapping[str, Any] | None, queue_ms: float, message: str, focus: float | None,
               est: DefocusEstimate | None = None, trusted: bool | None = None) -> RestoredFrame:
        return RestoredFrame(image, status, (time.perf_counter() - t0) * 1e3, variant, backend, index, meta,
                             queue_ms, message, focus, est.defocus_um if est is not None else None, trusted, est)

    # -- trusted range -----------------------------------------------------------------------------------------
    @staticmethod
    def trusted_range(engine: ModelEngine | None) -> tuple[float, float]:
        """The trusted defocus range (µm) of ``engine``'s model: its manifest's ``trusted_defocus_um``, else
        :data:`~virtualfocus.edge.integrations.telemetry.DEFAULT_TRUSTED_UM`."""
        m = engine.manifest if engine is not None else None
        if m is not None and m.trusted_defocus_um is not None:
            lo, hi = m.trusted_defocus_um
            return float(lo), float(hi)
        return DEFAULT_TRUSTED_UM

    def _run_estimator(self, unit: np.ndarray, image: Any, key: Any) -> DefocusEstimate:
        est = self.defocus_estimator
        if isinstance(est, DefocusClassifier):
            return est.estimate_unit(unit)  # the capture is already converted: no second to_unit
        out = est.estimate(image, key=key)
        if not isinstance(out, DefocusEstimate):
            raise TypeError(f"{type(est).__name__}.estimate returned {type(out).__name__}, not a DefocusEstimate")
        return out

    def _estimate(self, unit: np.ndarray, image: Any, meta: Mapping[str, Any] | None, index: int,
                  engine: ModelEngine | None) -> tuple[DefocusEstimate | None, bool | None, str]:
        """(estimate, trusted, note for the frame's message); never raises: a failure gives (None, None, "")."""
        if self.defocus_estimator is None:
            return None, None, ""
        key = meta.get("key") if isinstance(meta, Mapping) else None
        try:
            est = self._run_estimator(unit, image, key)
        except Exception as e:  # the estimator must never cost a frame
            with self._state_lock:
                self.estimator_failures += 1
                first = type(e).__name__ not in self._estimator_warned
                self._estimator_warned.add(type(e).__name__)
            if first:
                log.warning("virtualfocus: defocus estimator %s failed on frame %d (%s: %s); such frames are delivered "
                            "with trusted=None (warned once per error type)", _estimator_label(self.defocus_estimator),
                            index, type(e).__name__, e)
            return None, None, ""
        return self._judge(est, engine)

    def _judge(self, est: DefocusEstimate, engine: ModelEngine | None
               ) -> tuple[DefocusEstimate, bool | None, str]:
        lo, hi = self.trusted_range(engine)
        trusted = in_trusted_range(est, (lo, hi))
        note = ""
        if trusted is False:
            d = est.defocus_um
            side = f"{d:+.2f} µm" if est.signed else f"|{d:.2f}| µm"
            note = f"untrusted: estimated defocus {side} is outside the trusted range {lo:+.1f}…{hi:+.1f} µm"
        return est, trusted, note

    def _gain_calibration(self, engine: ModelEngine) -> FocusGainCalibration | None:
        key = id(engine)
        if key not in self._gain_cal:
            m = engine.manifest
            self._gain_cal[key] = FocusGainCalibration.of_model(engine.name, m.focus_gain if m else None)
        return self._gain_cal[key]

    def _flag(self, frame: RestoredFrame, engine: ModelEngine | None) -> None:
        if frame.trusted is False and frame.defocus is not None and frame.defocus_um is not None:
            key = frame.meta.get("key") if isinstance(frame.meta, Mapping) else None
            self.events.emit(UntrustedCapture(frame.index, key, frame.defocus_um, self.trusted_range(engine),
                                              frame.defocus.signed, frame.variant, frame.status.value))

    def _account(self, rung: int, ms: float) -> None:
        """Feed the guard; step down the ladder when over budget, probe back up after a while."""
        events: list[Any] = []
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
            elif self._probing and len(g._samples) >= g.window:
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
        job = _Job(index, frame, meta, fut, now, now + self.deadline_ms / 1e3)
        if self._closed:
            self._resolve(job, self._raw(job, FrameStatus.CLOSED, "runtime is closed"))
            return fut
        self._ensure_threads()
        with self._deadline_cv:
            self._pending.add(job)
            heapq.heappush(self._deadlines, (job.deadline, index, job))
            self._deadline_cv.notify()
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            self._resolve(job, self._raw(job, FrameStatus.OVERFLOW, "queue full: restoration cannot keep up"))
        return fut

    def _raw(self, job: _Job, status: FrameStatus, message: str) -> RestoredFrame:
        waited = (time.perf_counter() - job.submitted) * 1e3
        return RestoredFrame(job.image, status, 0.0, PASSTHROUGH, "", job.index, job.meta, waited, message)

    def _resolve(self, job: _Job, frame: RestoredFrame) -> bool:
        with job.lock:
            if job.done:
                return False
            job.done = True
        with self._deadline_cv:
            self._pending.discard(job)
        try:
            job.future.set_result(frame)
        except InvalidStateError:  # pragma: no cover - guarded by job.lock
            return False
        job.image = None  # the deadline heap keeps the job until its deadline; the pixels need not wait with it
        self.events.emit(FrameRestored(frame))
        return True

    def start(self) -> None:
        """Start the worker and deadline threads now (they also start on the first :meth:`submit`)."""
        if self._closed:
            raise RuntimeError("FocusRuntime is closed")
        self._ensure_threads()

    @property
    def closed(self) -> bool:
        return self._closed

    def _ensure_threads(self) -> None:
        if self._worker is not None:
            return
        with self._start_lock:
            if self._worker is None:
                self._watchdog = threading.Thread(target=self._watch, name="virtualfocus-deadlines", daemon=True)
                self._watchdog.start()
                self._worker = threading.Thread(target=self._work, name="virtualfocus-worker", daemon=True)
                self._worker.start()

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            if job.done:
                continue
            try:
                frame = self._process(job.image, job.meta, index=job.index, submitted=job.submitted)
            except InputError as e:
                frame = self._raw(job, FrameStatus.REJECTED, str(e))
            except Exception as e:  # the worker must survive anything a frame or backend throws
                log.exception("virtualfocus: unexpected error on frame %d; delivered raw", job.index)
                frame = self._raw(job, FrameStatus.FAILED, f"{type(e).__name__}: {e}")
            if not self._resolve(job, frame):
                log.debug("virtualfocus: frame %d finished after its deadline; raw copy was delivered", job.index)

    def _watch(self) -> None:
        while True:
            with self._deadline_cv:
                while not self._deadlines and not self._closed:
                    self._deadline_cv.wait()
                if self._closed and not self._pending:
                    return
                if not self._deadlines:
                    self._deadline_cv.wait(0.05)
                    continue
                deadline, _, job = self._deadlines[0]
                wait = deadline - time.perf_counter()
                if wait > 0:
                    self._deadline_cv.wait(wait)
                    continue
                heapq.heappop(self._deadlines)
            if not job.done:
                waited = (time.perf_counter() - job.submitted) * 1e3
                if self._resolve(job, self._raw(job, FrameStatus.LATE, f"missed the {self.deadline_ms:g} ms deadline")):
                    self.events.emit(FrameLate(job.index, waited, self.deadline_ms))
                    # A missed deadline is the clearest sign of overload: it counts against the running rung.
                    self._account(self._rung, waited)

    # -- shutdown ----------------------------------------------------------------------------------------------
    def close(self, *, drain: bool = True, timeout: float | None = None) -> None:
        """Stop accepting frames. ``drain=True`` restores what is queued (each still bound by its deadline);
        ``drain=False`` returns every pending frame raw, flagged ``closed``. Every future resolves either way."""
        if self._closed:
            return
        self._closed = True
        if not drain:
            with self._deadline_cv:
                pending = list(self._pending)
            for job in sorted(pending, key=lambda j: j.index):
                self._resolve(job, self._raw(job, FrameStatus.CLOSED, "runtime closed before restoration"))
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join(timeout)
        with self._deadline_cv:
            pending = list(self._pending)
        for job in sorted(pending, key=lambda j: j.index):  # anything the worker did not reach in time
            self._resolve(job, self._raw(job, FrameStatus.CLOSED, "runtime closed before restoration"))
        with self._deadline_cv:
            self._deadline_cv.notify_all()
        if self._watchdog is not None:
            self._watchdog.join(1.0)

    def __enter__(self) -> FocusRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FocusRuntime(variant={self.variant!r}, ladder={self.ladder}, budget_ms={self.budget_ms:g})"


def _nonfinite_note(info: ImageInfo) -> str:
    return f"{info.nonfinite} NaN/Inf pixel(s) were treated as 0" if info.nonfinite else ""


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


def _estimator_label(estimator: Any) -> str:
    if estimator is None:
        return ""
    if isinstance(estimator, DefocusClassifier):
        return f"{estimator.name} on {estimator.backend_name}"
    return type(estimator).__name__


def _load_estimator(spec: Any, *, backend: str | None, threads: int | None, precision: str) -> Any:
    """Resolve ``FocusRuntime.load(defocus_estimator=...)`` (see there)."""
    if spec is None or spec is False:
        return None
    # The estimator runs its own full-precision file; only an OpenVINO execution hint carries over.
    prec = precision if precision in ("f32", "bf16", "f16") else "default"
    if isinstance(spec, str) and spec == "auto":
        try:
            name = shipped().defocus_estimator
        except ModelLoadError:
            return None
        if name is None:
            return None
        try:
            return DefocusClassifier.load(name, backend=backend, threads=threads, precision=prec)
        except (ModelLoadError, BackendError) as e:
            log.warning("virtualfocus: could not load the shipped defocus estimator %s (%s); captures are not checked "
                        "against the trusted range", name, e)
            return None
    if isinstance(spec, (str, os.PathLike)):
        return DefocusClassifier.load(spec, backend=backend, threads=threads, precision=prec)
    if callable(getattr(spec, "estimate", None)):
        return spec
    raise InputError(f"defocus_estimator={spec!r}: expected 'auto', None, False, a defocus model folder, or an object "
                     "with estimate(image, key=...)")

