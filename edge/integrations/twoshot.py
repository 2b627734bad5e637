"""Two-shot mode: fuse two defocused captures of one field (±ΔD around the last known focus) with a two-input model.

The TSVA paper (``001_*``) and the thesis's pix2pix-dist-2inputs capture each field twice, on both sides of the
expected focus, and let a network fuse them instead of refocusing. Here:

1. **Pairing** — :class:`TwoShotStream` pairs consecutive captures that share a ``group`` key (for pymmcore-plus:
   the useq event index without its ``z`` axis, i.e. the same time point / position / channel).
2. **Alignment check** — the sub-pixel shift between the shots is estimated by phase correlation
   (:func:`estimate_shift`); the second capture is re-aligned onto the sharper one (``cv2.warpAffine``). When the
   shots disagree — shift larger than ``max_shift_px`` or normalised correlation after alignment below
   ``min_correlation`` (the stage moved, the field changed) — the sharper capture is restored single-shot with
   the runtime's model, flagged ``virtualfocus.two_shot = "single-shot"`` with the reason.
3. **Residual base** — the sharper shot by the Brenner gradient goes first (TSVA adds the model's residual to it).
4. **Two-input model** — a model whose manifest says ``input.inputs == 2`` gets the two captures concatenated on
   channels (sharper first) through the engine's own normaliser, padding and tiling.

5. **In focus stays untouched** — as in the single-capture runtime: when the model's calibrated restoration gain
   says the sharper shot is already in focus, that shot is returned as captured (``"in-focus"``).

A second shot that never arrives within ``pair_timeout_ms`` does not hold the stream up: the first is restored
single-shot and flagged (``virtualfocus.two_shot_reason`` says so).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from ..engine import ModelEngine
from ..errors import BackendError, InputError, ModelLoadError
from ..frames import PASSTHROUGH, FrameStatus, RestoredFrame
from ..metrics import brenner
from ..policy import Capture, FocusPolicy, Judgement, focus_of_unit
from ..preprocess import from_unit, to_unit
from ..runtime import FocusRuntime
from .callbacks import StreamFrame, _OrderedDelivery, _Pending

if TYPE_CHECKING:
    from .telemetry import DriftMonitor

__all__ = [
    "ShiftEstimate",
    "TwoShotConfig",
    "TwoShotFuser",
    "TwoShotResult",
    "TwoShotStream",
    "align",
    "estimate_shift",
    "load_two_shot_engine",
]

log = logging.getLogger("virtualfocus")


# ---------------------------------------------------------------------------------------------------- alignment
@dataclass(frozen=True)
class ShiftEstimate:
    """``other`` ≈ ``base`` moved by (``dy``, ``dx``) pixels; ``correlation`` is the normalised correlation of the
    two after re-alignment (1 = identical up to brightness and contrast; near 0 = unrelated)."""

    dy: float
    dx: float
    correlation: float

    @property
    def magnitude(self) -> float:
        return float(np.hypot(self.dy, self.dx))


_CACHE: dict[tuple[int, int, float], tuple[np.ndarray, np.ndarray]] = {}

#: Standard deviation (cycles/pixel) of the Gaussian low-pass applied to the phase-correlation spectrum.
LOWPASS_CYCLES = 0.05


def _focus_plane(unit: np.ndarray) -> np.ndarray:
    """The green plane (the focus channel) of a 0..1 H×W×C image, float32 contiguous."""
    return np.ascontiguousarray(unit[..., min(1, unit.shape[2] - 1)], dtype=np.float32)


def _window_and_lowpass(shape: tuple[int, int], cycles: float) -> tuple[np.ndarray, np.ndarray]:
    key = (shape[0], shape[1], cycles)
    got = _CACHE.get(key)
    if got is None:
        h, w = shape
        win = cv2.createHanningWindow((w, h), cv2.CV_32F)
        fy = np.fft.fftfreq(h)[:, None]
        fx = np.fft.fftfreq(w)[None, :]
        lp = np.exp(-(fy**2 + fx**2) / (2 * cycles**2)).astype(np.float32)
        got = _CACHE[key] = (win, lp)
        if len(_CACHE) > 16:
            _CACHE.pop(next(iter(_CACHE)))
    return got


def _peak_offset(m: float, z: float, p: float) -> float:
    """Sub-sample position of a Gaussian-shaped peak from three samples (parabola through their logarithms)."""
    lm, lz, lp = (np.log(max(v, 1e-12)) for v in (m, z, p))
    den = lm - 2 * lz + lp
    return float(np.clip(0.5 * (lm - lp) / den, -0.5, 0.5)) if den < 0 else 0.0


def estimate_shift(base: np.ndarray, other: np.ndarray) -> tuple[float, float]:
    """Sub-pixel translation (dy, dx) of ``other`` relative to ``base``.

    Phase correlation (Hann window) whose whitened cross-power spectrum is weighted by a Gaussian low-pass, so
    that camera noise, which whitening would otherwise amplify, does not bias the peak; the smooth peak is then
    located to a fraction of a pixel by a parabola through the logarithms of its neighbours (< 0.1 px on simulated
    noisy ±0.4 µm pairs; OpenCV's ``phaseCorrelate`` is off by up to 0.6 px on the same pairs). Shots blurred very
    differently (e.g. 0 and 1 µm) on small images are less certain (errors up to ~0.5 px).

    Parameters
    ----------
    base, other : 2-D float arrays of one shape.
    """
    if base.shape != other.shape or base.ndim != 2:
        raise InputError(f"estimate_shift: shapes {base.shape} and {other.shape}; expected two equal 2-D images")
    a: np.ndarray = base.astype(np.float32, copy=False)
    b: np.ndarray = other.astype(np.float32, copy=False)
    # The low-pass leaves nothing above ~3σ = 0.15 cycles/pixel: estimating at half resolution (Nyquist 0.25)
    # gives the same accuracy for a quarter of the work.
    scale, cycles = 1.0, LOWPASS_CYCLES
    if min(a.shape) >= 128:
        a = cv2.resize(a, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
        b = cv2.resize(b, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
        scale, cycles = 2.0, 2 * LOWPASS_CYCLES
    h, w = a.shape
    win, lp = _window_and_lowpass((h, w), cycles)
    fa = cv2.dft((a - np.float32(a.mean())) * win, flags=cv2.DFT_COMPLEX_OUTPUT)
    fb = cv2.dft((b - np.float32(b.mean())) * win, flags=cv2.DFT_COMPLEX_OUTPUT)
    r = cv2.mulSpectrums(fb, fa, 0, conjB=True)
    mag = cv2.magnitude(r[..., 0], r[..., 1])
    r *= (lp / (mag + np.float32(1e-12)))[..., None]
    c = cv2.idft(r, flags=cv2.DFT_REAL_OUTPUT | cv2.DFT_SCALE)
    py, px = np.unravel_index(int(np.argmax(c)), c.shape)
    dy = _peak_offset(c[(py - 1) % h, px], c[py, px], c[(py + 1) % h, px])
    dx = _peak_offset(c[py, (px - 1) % w], c[py, px], c[py, (px + 1) % w])
    y = py if py <= h // 2 else py - h
    x = px if px <= w // 2 else px - w
    return float((y + dy) * scale), float((x + dx) * scale)


def align(image: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """Move ``image`` (H×W or H×W×C, C ≤ 4) by (−dy, −dx): undoes a shift found by :func:`estimate_shift`."""
    h, w = image.shape[:2]
    m = np.array([[1, 0, -dx], [0, 1, -dy]], np.float32)
    out = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    return out.reshape(image.shape)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two planes on a 2× downsampled grid (cheap, robust to brightness/contrast)."""
    if min(a.shape) >= 64:
        a = cv2.resize(a, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
        b = cv2.resize(b, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    a = a - a.mean()
    b = b - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else 0.0


# ------------------------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class TwoShotConfig:
    """Options of two-shot fusion.

    Parameters
    ----------
    max_shift_px : float
        Shots further apart than this (after estimation) disagree: restored single-shot.
    min_correlation : float
        Shots whose normalised correlation after alignment is below this disagree.
    align : bool
        Re-align the second shot onto the sharper one before fusion (else only check).
    pair_timeout_ms : float
        How long a first shot waits for its partner before it is restored alone.
    max_pending : int
        Groups in flight (waiting for a partner or for fusion); more shots are delivered raw, flagged ``overflow``.
    pass_in_focus : bool
        When the model's manifest carries a restoration-gain calibration (``focus_gain``, written by
        ``benchmarks/quality_report.py --cards``) and the fused output barely sharpens the sharper shot (gain below
        ``in_focus_below``), that shot is in focus: it is returned untouched (status ``in-focus``, mode
        ``"in-focus"``) instead of the model's output, which could only cost detail. False gives the model alone.
    """

    max_shift_px: float = 8.0
    min_correlation: float = 0.5
    align: bool = True
    pair_timeout_ms: float = 1000.0
    max_pending: int = 16
    pass_in_focus: bool = True

    def __post_init__(self) -> None:
        if not self.max_shift_px >= 0 or not -1 <= self.min_correlation <= 1:
            raise InputError(f"TwoShotConfig(max_shift_px={self.max_shift_px}, min_correlation="
                             f"{self.min_correlation}): expected max_shift_px ≥ 0 and -1 ≤ min_correlation ≤ 1")
        if not self.pair_timeout_ms > 0 or self.max_pending < 1:
            raise InputError(f"TwoShotConfig(pair_timeout_ms={self.pair_timeout_ms}, max_pending="
                             f"{self.max_pending}): expected a positive timeout and max_pending ≥ 1")


def load_two_shot_engine(
    model: str | os.PathLike[str] | None = None, *, backend: str | None = None, threads: int | None = None,
    precision: str = "default",
) -> ModelEngine:
    """Load a two-input model (manifest ``input.inputs == 2``) as a :class:`~virtualfocus.edge.runtime.ModelEngine`.

    ``model`` is a model folder, a file, or a shipped variant name; None loads the shipped two-shot variant
    (``shipped.json`` ``"two_shot"``).

    Raises
    ------
    ModelLoadError
        Not found, not a two-input model, or no backend could load it.
    """
    from ..models import resolve_model, shipped

    if model is None:
        name = shipped().two_shot
        if not name:
            raise ModelLoadError("no two-shot model is shipped (shipped.json has no \"two_shot\"); pass model=PATH")
        model = name
    src = resolve_model(model)
    if src.manifest.input.inputs != 2:
        raise ModelLoadError(f"{src.origin}: input.inputs is {src.manifest.input.inputs}; two-shot mode needs a "
                             "two-input model (input.inputs == 2)")
    return ModelEngine.load(src.origin, backend=backend, threads=threads, precision=precision)


# ---------------------------------------------------------------------------------------------------------- fuser
@dataclass(frozen=True)
class TwoShotResult:
    """A fused (or single-shot fallback) frame and what the two-shot step found."""

    frame: RestoredFrame
    mode: str  # "fused" | "in-focus" (the sharper shot returned untouched) | "single-shot"
    reason: str = ""
    shift: ShiftEstimate | None = None
    base_shot: int = 0  # which input (0 = first captured) was the sharper, residual base

    def metadata(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "virtualfocus.two_shot": self.mode,
            "virtualfocus.two_shot_reason": self.reason,
            "virtualfocus.base_shot": self.base_shot,
        }
        if self.shift is not None:
            out["virtualfocus.shift_px"] = [round(self.shift.dy, 3), round(self.shift.dx, 3)]
            out["virtualfocus.shot_correlation"] = round(self.shift.correlation, 4)
        return out


class TwoShotFuser:
    """Synchronous two-shot restoration: pair check, alignment, sharper-first fusion, single-shot fallback.

    Parameters
    ----------
    runtime : FocusRuntime
        Restores single-shot fallbacks (its ladder and latency guard apply).
    engine : ModelEngine
        The two-input model (:func:`load_two_shot_engine`).
    config : TwoShotConfig
    """

    def __init__(self, runtime: FocusRuntime, engine: ModelEngine, *, config: TwoShotConfig | None = None) -> None:
        if engine.contract.inputs != 2:
            raise ModelLoadError(f"engine {engine.name!r} takes {engine.contract.inputs} input(s); two-shot fusion "
                                 "needs a two-input model")
        self.runtime = runtime
        self.engine = engine
        self.config = config or TwoShotConfig()
        self._lock = threading.Lock()  # one fusion at a time per engine
        # Pass-through and trust are decided as in the single-capture runtime (same policy, same manifest data).
        self.policy = FocusPolicy(pass_in_focus=self.config.pass_in_focus)
        self.gain_calibration = self.policy.calibration(engine.manifest, engine.name)

    def single(self, image: Any, meta: Mapping[str, Any] | None, reason: str, *, base_shot: int = 0,
               shift: ShiftEstimate | None = None) -> TwoShotResult:
        """Restore one capture with the runtime, flagged single-shot with ``reason``."""
        t0 = time.perf_counter()
        try:
            frame = self.runtime.restore(image, meta)
        except InputError as e:
            frame = RestoredFrame(image=image, status=FrameStatus.REJECTED, latency_ms=(time.perf_counter() - t0) * 1e3,
                                  variant=PASSTHROUGH, meta=meta, message=str(e))
        except Exception as e:  # a fallback must never raise into the stream
            frame = RestoredFrame(image=image, status=FrameStatus.FAILED, latency_ms=(time.perf_counter() - t0) * 1e3,
                                  variant=PASSTHROUGH, meta=meta, message=f"{type(e).__name__}: {e}")
        if frame.status is not FrameStatus.RESTORED or not frame.message:
            frame = RestoredFrame(image=frame.image, status=frame.status, latency_ms=frame.latency_ms,
                                  variant=frame.variant, backend=frame.backend, index=frame.index, meta=frame.meta,
                                  queue_ms=frame.queue_ms, message=frame.message or reason, focus=frame.focus)
        return TwoShotResult(frame, "single-shot", reason, shift, base_shot)

    def fuse(
        self, first: Any, second: Any, meta: Mapping[str, Any] | None = None, *, bit_depth: int | None = None
    ) -> TwoShotResult:
        """Restore one field from two captures (in capture order); never raises for bad input."""
        t0 = time.perf_counter()
        bd = bit_depth if bit_depth is not None else (meta.get("bit_depth") if isinstance(meta, Mapping) else None)
        try:
            ua, info_a = to_unit(first, name="first shot", bit_depth=bd)
        except InputError as e:
            return self.single(second, meta, f"first shot unusable ({e}); restored the second alone", base_shot=1)
        try:
            ub, info_b = to_unit(second, name="second shot", bit_depth=bd)
        except InputError as e:
            return self.single(first, meta, f"second shot unusable ({e}); restored the first alone")
        if ua.shape != ub.shape:
            return self.single(first, meta, f"shots differ in shape {first.shape} vs {second.shape}; restored the "
                                            "first alone")
        # Sharper first (TSVA): Brenner gradient on the focus channel.
        base_shot = 0 if brenner(ua) >= brenner(ub) else 1
        base, other = (ua, ub) if base_shot == 0 else (ub, ua)
        base_img, base_info = (first, info_a) if base_shot == 0 else (second, info_b)
        cfg = self.config
        gb, go = _focus_plane(base), _focus_plane(other)
        dy, dx = estimate_shift(gb, go)
        moved = np.hypot(dy, dx) > 0.05
        go_aligned = align(go, dy, dx) if moved else go
        shift = ShiftEstimate(dy, dx, _correlation(gb, go_aligned))
        if shift.magnitude > cfg.max_shift_px:
            return self.single(base_img, meta, f"shots disagree: shift {shift.magnitude:.1f} px > max_shift_px "
                               f"{cfg.max_shift_px:g}", base_shot=base_shot, shift=shift)
        if shift.correlation < cfg.min_correlation:
            return self.single(base_img, meta, f"shots disagree: correlation {shift.correlation:.2f} < "
                               f"min_correlation {cfg.min_correlation:g}", base_shot=base_shot, shift=shift)
        if cfg.align and moved:
            other = align(other, dy, dx)
            if other.ndim == 2:
                other = other[..., None]
        channels = self.engine.contract.channels
        if base.shape[2] == 1 and channels == 3:
            base, other = np.repeat(base, 3, axis=2), np.repeat(other, 3, axis=2)
        x = np.concatenate([base, other], axis=2)
        try:
            with self._lock:
                out = self.engine.restore_unit(x)
        except BackendError as e:
            return self.single(base_img, meta, f"two-shot model failed ({e})", base_shot=base_shot, shift=shift)
        # The runtime's own decision path: the restoration gain of the sharper shot against the model's calibration.
        manifest = self.engine.manifest
        gain = None
        if self.policy.wants_gain(manifest):
            ch = 1 if base.shape[2] == 3 else 0
            f_in = focus_of_unit(base, ch)
            gain = focus_of_unit(out, ch) / f_in if f_in > 0 else float("inf")
        j = self.policy.after(Judgement(), Capture(base_img), manifest, gain=gain)
        if j.in_focus:
            note = f"{j.in_focus}: the sharper shot (base {base_shot}) returned untouched"
            frame = RestoredFrame(image=base_img, status=FrameStatus.IN_FOCUS, latency_ms=(time.perf_counter() - t0) * 1e3,
                                  variant=self.engine.name, backend=self.engine.backend_name, meta=meta,
                                  message="; ".join(n for n in (note, j.note) if n), defocus_um=j.defocus_um,
                                  trusted=j.trusted, defocus=j.estimate)
            return TwoShotResult(frame, "in-focus", "", shift, base_shot)
        image = from_unit(out, base_info)
        ms = (time.perf_counter() - t0) * 1e3
        note = f"fused 2 shots (base {base_shot}, shift {dy:+.2f},{dx:+.2f} px)"
        frame = RestoredFrame(image=image, status=FrameStatus.RESTORED, latency_ms=ms, variant=self.engine.name,
                              backend=self.engine.backend_name, meta=meta,
                              message="; ".join(n for n in (note, j.note) if n), defocus_um=j.defocus_um,
                              trusted=j.trusted, defocus=j.estimate)
        return TwoShotResult(frame, "fused", "", shift, base_shot)


# --------------------------------------------------------------------------------------------------------- stream
@dataclass(eq=False)
class _Group:
    seq: int
    key: Hashable
    shots: list[tuple[Any, Mapping[str, Any] | None, Any, float | None]] = field(default_factory=list)
    opened: float = field(default_factory=time.perf_counter)
    completed: float = 0.0
    done: bool = False
    timed_out: bool = False


class TwoShotStream(_OrderedDelivery):
    """Pair captures by ``group``, fuse each pair, deliver one frame per pair in capture order.

    Parameters
    ----------
    runtime : FocusRuntime
        Restores single-shot fallbacks.
    engine : ModelEngine or str or path, optional
        The two-input model (a loaded engine, or what :func:`load_two_shot_engine` accepts; None = shipped).
    config : TwoShotConfig
    on_frame : callable, optional
        ``on_frame(StreamFrame)`` on the delivery thread; ``frame.metadata`` carries the two-shot keys
        (``virtualfocus.two_shot``, ``..._reason``, ``.shift_px``, ``.shot_correlation``, ``.base_shot``).
    telemetry : DriftMonitor, optional
        Fed each pair (signed estimate when both shots carry a stage z).
    """

    def __init__(
        self,
        runtime: FocusRuntime,
        engine: ModelEngine | str | os.PathLike[str] | None = None,
        *,
        config: TwoShotConfig | None = None,
        on_frame: Callable[[StreamFrame], Any] | None = None,
        telemetry: DriftMonitor | None = None,
    ) -> None:
        super().__init__(on_frame=on_frame, telemetry=telemetry, name="virtualfocus-twoshot-deliver")
        if not isinstance(engine, ModelEngine):
            engine = load_two_shot_engine(engine)
        self.fuser = TwoShotFuser(runtime, engine, config=config)
        self.config = self.fuser.config
        self.runtime = runtime
        self._lock = threading.Lock()
        self._open: dict[Hashable, _Group] = {}
        self._inflight = 0
        self._work: queue.SimpleQueue[_Group | None] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        #: Pair latency (ms) from the second shot's push to the fused frame being handed to delivery (last 1000).
        self.pair_ms: list[float] = []

    def _ensure_worker(self) -> None:
        self._ensure_thread()
        if self._worker is None:
            with self._lock:
                if self._worker is None:
                    self._worker = threading.Thread(target=self._run_worker, name="virtualfocus-twoshot", daemon=True)
                    self._worker.start()

    def start(self) -> None:
        self._ensure_worker()

    def push(
        self, image: np.ndarray, meta: Mapping[str, Any] | None = None, *, group: Hashable, z_um: float | None = None,
        context: Any = None, key: Hashable = None,
    ) -> int:
        """Hand one shot over and return at once; returns the sequence number of the frame it will be part of.

        Parameters
        ----------
        image : np.ndarray
            The capture (copied).
        meta : mapping, optional
            Metadata of this shot; the delivered frame carries the first shot's.
        group : hashable
            Shots with the same group are paired (first two consecutive ones). ``None`` means "no partner
            expected": the shot is restored single-shot at once, flagged.
        z_um : float, optional
            Stage z of the shot (µm), for the signed defocus estimate.
        context : object, optional
            Returned in :attr:`StreamFrame.context` (the first shot's).
        key : hashable, optional
            Telemetry key (stage position).
        """
        if self._closed:
            raise RuntimeError("TwoShotStream is closed; create a new one")
        self._ensure_worker()
        if group is not None:
            try:
                hash(group)
            except TypeError:
                self._warn.warn("unhashable-group", "virtualfocus: two-shot group %r is not hashable; the shot is "
                                "restored single-shot, flagged", group)
                group = None
        shot = (np.array(image, copy=True) if isinstance(image, np.ndarray) else image, meta, context, z_um)
        overflow_seq = None
        with self._lock:
            g = self._open.get(group) if group is not None else None
            if g is None:
                if self._inflight >= self.config.max_pending:
                    overflow_seq = self._next_seq()
                else:
                    g = _Group(self._next_seq(), key)
                    g.shots.append(shot)
                    self._inflight += 1
                    if group is not None:
                        self._open[group] = g
                    else:
                        g.timed_out = True  # no partner expected: restore alone now
                        g.completed = time.perf_counter()
            else:
                g.shots.append(shot)
                g.completed = time.perf_counter()
                del self._open[group]
        if overflow_seq is not None:
            self._put_raw(_Pending(overflow_seq, shot[0], meta, context, key), FrameStatus.OVERFLOW,
                          "two-shot queue full: fusion cannot keep up")
            return overflow_seq
        assert g is not None
        if len(g.shots) == 2 or g.timed_out:
            self._work.put(g)
        elif len(g.shots) == 1:
            self._work.put(g)  # tells the worker to start the partner timeout
        return g.seq

    # -- worker ----------------------------------------------------------------------------------------------
    def _run_worker(self) -> None:
        waiting: dict[int, _Group] = {}
        timeout_s = self.config.pair_timeout_ms / 1e3
        stop = False
        tick = object()
        while True:
            if stop and not waiting:
                return
            wait = None
            if waiting:
                oldest = min(g.opened for g in waiting.values())
                wait = max(0.0, oldest + timeout_s - time.perf_counter())
            item: Any
            try:
                item = self._work.get(timeout=0.0 if stop else wait)
            except queue.Empty:
                item = tick
            if item is None:
                stop = True  # close(): finish what is waiting now
            elif item is not tick and not item.done:
                if len(item.shots) >= 2 or item.timed_out:
                    waiting.pop(item.seq, None)
                    self._finish(item)
                else:
                    waiting[item.seq] = item
            now = time.perf_counter()
            for seq, w in sorted(waiting.items()):
                if w.done:
                    waiting.pop(seq)
                    continue
                if stop or now - w.opened >= timeout_s:
                    with self._lock:
                        if len(w.shots) >= 2:
                            continue  # the partner arrived meanwhile: its own message finishes it
                        w.timed_out = True
                        for k, v in list(self._open.items()):
                            if v is w:
                                del self._open[k]
                    waiting.pop(seq)
                    self._finish(w)

    def _finish(self, g: _Group) -> None:
        if g.done:
            return
        g.done = True
        raws: tuple[Any, ...]
        zs: tuple[float | None, ...]
        try:
            first = g.shots[0]
            if len(g.shots) >= 2:
                second = g.shots[1]
                result = self.fuser.fuse(first[0], second[0], first[1])
                raws, zs = (first[0], second[0]), (first[3], second[3])
            else:
                why = ("no partner expected (group None)" if not self._waited(g) else
                       f"second shot never arrived within {self.config.pair_timeout_ms:g} ms")
                result = self.fuser.single(first[0], first[1], f"{why}; restored single-shot")
                raws, zs = (first[0],), ()
        except Exception as e:  # never lose a frame
            log.exception("virtualfocus: two-shot fusion failed on frame %d; delivered raw", g.seq)
            frame = RestoredFrame(image=g.shots[0][0], status=FrameStatus.FAILED, latency_ms=0.0, variant=PASSTHROUGH,
                                  meta=g.shots[0][1], message=f"{type(e).__name__}: {e}")
            result = TwoShotResult(frame, "single-shot", f"fusion error: {e}")
            raws, zs = (g.shots[0][0],), ()
        if result.mode == "single-shot":
            self._warn.warn("two-shot:" + result.reason.split(" (")[0][:40], "virtualfocus: frame %d: %s", g.seq,
                            result.reason)
        if g.completed and len(g.shots) >= 2:
            self.pair_ms.append((time.perf_counter() - g.completed) * 1e3)
            if len(self.pair_ms) > 1000:
                del self.pair_ms[:500]
        first = g.shots[0]
        frame = result.frame
        frame = dataclasses.replace(frame, meta=first[1],
                                    queue_ms=(time.perf_counter() - g.opened) * 1e3 - frame.latency_ms)
        pending = _Pending(g.seq, first[0], first[1], first[2], g.key, extra=result.metadata(), raws=raws, zs=zs)
        with self._lock:
            self._inflight -= 1
        self._put(pending, frame)

    @staticmethod
    def _waited(g: _Group) -> bool:
        return not (g.timed_out and g.completed and len(g.shots) == 1)

    # -- shutdown --------------------------------------------------------------------------------------------
    def close(self, timeout: float | None = 30.0) -> bool:
        """Stop accepting shots; unpaired first shots are restored alone; wait until every frame is delivered."""
        if self._closed:
            return True
        self._closed = True
        if self._worker is not None:
            self._work.put(None)
            self._worker.join(timeout)
        ok = self.flush(timeout)
        self._stop_thread(1.0)
        return ok

    def __enter__(self) -> TwoShotStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
