"""Focus-drift telemetry: a per-frame defocus estimate, a drift trace, and an event when focus leaves the trusted range.

Restoration makes a mechanical refocus unnecessary only while the capture stays inside the defocus range the
model was validated on (the manifest's ``trusted_defocus_um``). :class:`DriftMonitor` turns every capture into a
defocus estimate and tells the instrument when to refocus mechanically::

    mon = DriftMonitor.for_runtime(rt)                       # trusted range from the model's manifest
    rt.events.connect(FocusDriftDetected, lambda ev: stage.refocus(ev.key))
    ...
    mon.summary()   # {'n': 50, 'median_um': 0.41, 'trend_um_per_frame': 0.012, ...}

Estimators
----------
:class:`FocusMeasureEstimator` (implemented) uses the thesis focus measure F. A single capture gives the defocus
*magnitude* relative to the sharpest recent capture at the same key (stage position), with a Gaussian model
``F(d) = F0 · exp(-d² / (2 w²))``. A two-shot pair taken at ``z0 ± Δ`` gives a *signed*, content-independent
estimate ``d = w² · ln(F(z0-Δ) / F(z0+Δ)) / (2Δ)`` of the defocus of ``z0`` (the content cancels in the ratio).
``w`` defaults to a value measured on the project's simulator (100×/1.25 oil optics); :meth:`calibrate` fits it
from a z-stack of the instrument's own captures.

Any object with the :class:`DefocusEstimator` methods can replace it. :class:`~virtualfocus.edge.classifier.DefocusClassifier`
(the thesis's focus-distance classifier, exported to a model folder) gives a *signed* estimate from a single
capture; :meth:`DriftMonitor.for_runtime` uses the runtime's classifier when it has one.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..defocus import (
    DEFAULT_TRUSTED_UM,
    DefocusEstimate,
    DefocusEstimator,
    PairDefocusEstimator,
    in_trusted_range,
)
from ..errors import InputError
from ..events import Event, EventBus
from ..metrics import focus_measure

if TYPE_CHECKING:
    from virtualfocus.zstacks.stack import ZStack

    from ..runtime import FocusRuntime

__all__ = [
    "DEFAULT_TRUSTED_UM",
    "DefocusEstimate",
    "DefocusEstimator",
    "DriftMonitor",
    "DriftSample",
    "FocusDriftDetected",
    "FocusDriftRecovered",
    "FocusMeasureEstimator",
    "PairDefocusEstimator",
]

log = logging.getLogger("virtualfocus")

# DEFAULT_TRUSTED_UM (−0.8…+0.8 µm, the thesis's interval) and DefocusEstimate live in virtualfocus.edge.defocus, which
# the runtime imports without the integrations; they are re-exported here.

#: Width of the Gaussian focus-measure model: median of :meth:`FocusMeasureEstimator.calibrate` over simulated
#: fields (0.65…0.73 µm; F/F0 ≈ 0.5 at ±0.8 µm). Calibrate on the instrument's own z-stack for real optics.
DEFAULT_WIDTH_UM = 0.7


# ------------------------------------------------------------------------------------------------------- events
@dataclass(frozen=True)
class FocusDriftDetected(Event):
    """The defocus estimate at ``key`` left the trusted range for ``confirm`` consecutive frames.

    ``defocus_um`` is the latest estimate, ``median_um`` the median of the confirming frames; ``signed`` False means
    the estimates are magnitudes (single-shot focus measure) and the side of focus is unknown.
    """

    key: Any
    defocus_um: float
    median_um: float
    trusted_um: tuple[float, float]
    seq: int
    signed: bool


@dataclass(frozen=True)
class FocusDriftRecovered(Event):
    """After a :class:`FocusDriftDetected`, the estimate at ``key`` was back in the trusted range for ``confirm``
    consecutive frames (e.g. after a mechanical refocus)."""

    key: Any
    defocus_um: float
    seq: int


# --------------------------------------------------------------------------------------------------- estimators
class FocusMeasureEstimator:
    """Defocus from the thesis focus measure F (see the module docstring).

    Parameters
    ----------
    width_um : float
        ``w`` of the model ``F(d) = F0 · exp(-d² / (2 w²))``.
    reference_window : int
        Single-shot reference: the largest F among the last ``reference_window`` captures of the same key.
    """

    def __init__(self, *, width_um: float = DEFAULT_WIDTH_UM, reference_window: int = 200) -> None:
        if not width_um > 0:
            raise InputError(f"width_um={width_um}: expected a positive width in µm")
        if reference_window < 1:
            raise InputError(f"reference_window={reference_window}: expected at least 1 frame")
        self.width_um = float(width_um)
        self.reference_window = int(reference_window)
        self._refs: dict[Hashable, deque[float]] = {}
        self._lock = threading.Lock()

    def estimate(self, image: np.ndarray, *, key: Hashable = None) -> DefocusEstimate:
        f = focus_measure(image)
        with self._lock:
            ref = self._refs.get(key)
            if ref is None:
                if len(self._refs) >= 4096:  # bounded: forget the oldest key
                    self._refs.pop(next(iter(self._refs)))
                ref = self._refs[key] = deque(maxlen=self.reference_window)
            ref.append(f)
            f0 = max(ref)
        if f0 <= 0 or f <= 0:
            return DefocusEstimate(None, False, f)
        return DefocusEstimate(self.width_um * math.sqrt(2.0 * max(0.0, math.log(f0 / f))), False, f)

    def estimate_pair(
        self, images: Sequence[np.ndarray], zs_um: Sequence[float], *, key: Hashable = None
    ) -> DefocusEstimate:
        """Signed defocus of the mid-point of two captures at stage positions ``zs_um`` (µm)."""
        (a, b), (za, zb) = images, (float(zs_um[0]), float(zs_um[1]))
        if za == zb:
            raise InputError(f"estimate_pair: both captures at z={za} µm; need two different focus positions")
        if za > zb:
            a, b, za, zb = b, a, zb, za
        fa, fb = focus_measure(a, name="shot at lower z"), focus_measure(b, name="shot at higher z")
        if fa <= 0 or fb <= 0:
            return DefocusEstimate(None, True, max(fa, fb))
        half = (zb - za) / 2.0
        d = self.width_um**2 * math.log(fa / fb) / (2.0 * half)
        return DefocusEstimate(d, True, max(fa, fb))

    @classmethod
    def calibrate(cls, stack: ZStack, **kwargs: Any) -> FocusMeasureEstimator:
        """Fit ``width_um`` to a z-stack of one field (planes at known offsets, e.g. the first tile's stack).

        Raises
        ------
        InputError
            Fewer than three planes or a curve that is not peaked.
        """
        from ..metrics import focus_curve

        if len(stack.planes) < 3:
            raise InputError(f"calibrate: stack {stack.name!r} has {len(stack.planes)} planes; need at least 3")
        f = focus_curve(stack.planes, name=stack.name)
        d = np.asarray(stack.offsets_um, float) - float(stack.offsets_um[int(np.argmax(f))])
        y = np.log(np.maximum(f, 1e-12) / f.max())
        mask = d != 0
        # y = -d² / (2 w²): least squares through the origin in d².
        x2 = d[mask] ** 2
        slope = float(np.dot(x2, y[mask]) / np.dot(x2, x2))
        if not slope < 0:
            raise InputError(f"calibrate: the focus curve of {stack.name!r} is not peaked; cannot fit a width")
        return cls(width_um=math.sqrt(-1.0 / (2.0 * slope)), **kwargs)


# ------------------------------------------------------------------------------------------------------ monitor
@dataclass(frozen=True)
class DriftSample:
    """One point of the drift trace."""

    seq: int
    key: Any
    defocus_um: float | None
    signed: bool
    focus: float | None
    in_range: bool | None
    t: float


class DriftMonitor:
    """Per-frame defocus estimates → a bounded drift trace, drift events and a rolling summary.

    Parameters
    ----------
    estimator : DefocusEstimator, optional
        Default :class:`FocusMeasureEstimator`.
    trusted_defocus_um : (float, float)
        Trusted range (µm). For unsigned estimates (magnitudes) the bound is ``min(|low|, |high|)``.
    window : int
        Frames in the rolling :meth:`summary`.
    confirm : int
        Consecutive out-of-range (or back-in-range) frames at one key before an event fires, so that one noisy
        estimate does not trigger a mechanical refocus.
    events : EventBus, optional
        Where :class:`FocusDriftDetected` / :class:`FocusDriftRecovered` go (pass ``runtime.events`` to get them
        with the runtime's other events). Default: a bus of its own, :attr:`events`.
    history : int
        Length of the kept trace (older samples are dropped: constant memory).
    """

    def __init__(
        self,
        estimator: PairDefocusEstimator | None = None,
        *,
        trusted_defocus_um: tuple[float, float] = DEFAULT_TRUSTED_UM,
        window: int = 50,
        confirm: int = 3,
        events: EventBus | None = None,
        history: int = 2048,
    ) -> None:
        lo, hi = (float(v) for v in trusted_defocus_um)
        if not lo < hi:
            raise InputError(f"trusted_defocus_um={trusted_defocus_um}: expected (low, high) with low < high")
        if window < 2 or confirm < 1 or history < window:
            raise InputError(f"DriftMonitor(window={window}, confirm={confirm}, history={history}): need window ≥ 2, "
                             "confirm ≥ 1 and history ≥ window")
        self.estimator: PairDefocusEstimator = estimator or FocusMeasureEstimator()
        self.trusted_um = (lo, hi)
        self.window = int(window)
        self.confirm = int(confirm)
        self.events = events if events is not None else EventBus()
        self._trace: deque[DriftSample] = deque(maxlen=int(history))
        self._streak: dict[Hashable, list[DriftSample]] = {}
        self._out: dict[Hashable, bool] = {}
        self._lock = threading.Lock()
        self._seq = 0

    @classmethod
    def for_runtime(cls, runtime: FocusRuntime, **kwargs: Any) -> DriftMonitor:
        """A monitor for ``runtime``: its estimator is the runtime's defocus estimator when it has one (a signed
        focus-distance classifier, see ``FocusRuntime.load(defocus_estimator=...)``), else the focus measure; its
        trusted range comes from the running model's manifest (``trusted_defocus_um``); its events go to
        ``runtime.events``. Keyword arguments override any of these."""
        if kwargs.get("estimator") is None and getattr(runtime, "defocus_estimator", None) is not None:
            kwargs["estimator"] = runtime.defocus_estimator
        if "trusted_defocus_um" not in kwargs:
            eng = next((e for e in runtime.engines if e is not None), None)
            m = getattr(eng, "manifest", None)
            if m is not None and m.trusted_defocus_um is not None:
                kwargs["trusted_defocus_um"] = tuple(m.trusted_defocus_um)
        kwargs.setdefault("events", runtime.events)
        return cls(**kwargs)

    # -- feeding ---------------------------------------------------------------------------------------------
    def observe(self, image: np.ndarray, *, key: Hashable = None, seq: int | None = None) -> DriftSample:
        """Estimate the defocus of one capture and record it."""
        return self.record(self.estimator.estimate(image, key=key), key=key, seq=seq)

    def observe_pair(
        self, images: Sequence[np.ndarray], zs_um: Sequence[float | None], *, key: Hashable = None,
        seq: int | None = None,
    ) -> DriftSample:
        """Signed estimate from two captures of one field at stage positions ``zs_um``."""
        zs = [float(z) for z in zs_um if z is not None]
        if len(zs) != 2 or zs[0] == zs[1]:
            return self.observe(images[0], key=key, seq=seq)
        return self.record(self.estimator.estimate_pair(images, zs, key=key), key=key, seq=seq)

    def _in_range(self, est: DefocusEstimate) -> bool | None:
        return in_trusted_range(est, self.trusted_um)

    def record(self, est: DefocusEstimate, *, key: Hashable = None, seq: int | None = None) -> DriftSample:
        """Record an estimate made elsewhere (e.g. by a classifier model); fires the events."""
        events: list[Event] = []
        with self._lock:
            if seq is None:
                seq = self._seq
            self._seq = seq + 1
            sample = DriftSample(seq, key, est.defocus_um, est.signed, est.focus, self._in_range(est), time.time())
            self._trace.append(sample)
            if sample.in_range is not None:
                out = self._out.get(key, False)
                streak = self._streak.setdefault(key, [])
                if sample.in_range == out:  # heading the other way
                    streak.append(sample)
                else:
                    streak.clear()
                if len(streak) >= self.confirm:
                    vals = [s.defocus_um for s in streak if s.defocus_um is not None]
                    if not out:
                        events.append(FocusDriftDetected(key, float(est.defocus_um), float(np.median(vals)),  # type: ignore[arg-type]
                                                         self.trusted_um, seq, est.signed))
                    else:
                        events.append(FocusDriftRecovered(key, float(est.defocus_um), seq))  # type: ignore[arg-type]
                    self._out[key] = not out
                    streak.clear()
                if len(self._streak) > 4096:
                    self._streak.pop(next(iter(self._streak)))
                    self._out.pop(next(iter(self._out)), None)
        for ev in events:
            log.warning("virtualfocus: %s", ev)
            self.events.emit(ev)
        return sample

    # -- reading ---------------------------------------------------------------------------------------------
    def trace(self, key: Hashable = ..., last: int | None = None) -> list[DriftSample]:  # type: ignore[assignment]
        """The kept samples, oldest first (only ``key``'s when given; the last ``last`` ones when given)."""
        with self._lock:
            samples = list(self._trace)
        if key is not ...:
            samples = [s for s in samples if s.key == key]
        return samples[-last:] if last else samples

    def summary(self, key: Hashable = ...) -> dict[str, Any]:  # type: ignore[assignment]
        """Rolling summary over the last ``window`` estimates (of ``key`` when given).

        Keys: ``n``, ``window``, ``mean_um``, ``median_um``, ``min_um``, ``max_um``, ``trend_um_per_frame`` (least
        squares slope against the frame sequence number), ``last_um``, ``out_of_range`` (count in the window),
        ``signed``, ``trusted_um``, ``drifting`` (keys currently out of range).
        """
        samples = [s for s in self.trace(key) if s.defocus_um is not None][-self.window :]
        vals = np.array([s.defocus_um for s in samples], float)
        out: dict[str, Any] = {"n": len(samples), "window": self.window, "trusted_um": list(self.trusted_um)}
        with self._lock:
            out["drifting"] = [k for k, v in self._out.items() if v]
        if not len(vals):
            out.update(mean_um=None, median_um=None, min_um=None, max_um=None, trend_um_per_frame=None,
                       last_um=None, out_of_range=0, signed=None)
            return out
        seqs = np.array([s.seq for s in samples], float)
        trend = float(np.polyfit(seqs, vals, 1)[0]) if len(vals) >= 2 and np.ptp(seqs) > 0 else 0.0
        out.update(
            mean_um=round(float(vals.mean()), 4),
            median_um=round(float(np.median(vals)), 4),
            min_um=round(float(vals.min()), 4),
            max_um=round(float(vals.max()), 4),
            trend_um_per_frame=round(trend, 5),
            last_um=round(float(vals[-1]), 4),
            out_of_range=sum(1 for s in samples if s.in_range is False),
            signed=all(s.signed for s in samples),
        )
        return out
