"""One decision path per frame: is this capture already in focus, and can its restoration be trusted?

:class:`FocusPolicy` is used by the single-capture runtime and the two-shot fuser alike. Its thresholds are data:
the restoring model's manifest (``trusted_defocus_um``, ``focus_gain`` with its ``in_focus_below``), the shipped
``in_focus_band_um`` and the caller's options; a new model or defocus estimator plugs in by its manifest.

The steps, in order (each optional):

1. **Focus measure** — the capture's F is at least ``in_focus_threshold``: in focus, returned untouched.
2. **Defocus band** — a signed estimate inside ``in_focus_band_um``: in focus, returned untouched.
3. **Restoration gain** — ``F(restored) / F(capture)`` below the model's calibrated ``in_focus_below``: the model
   found nothing to restore; the capture is returned untouched.
4. **Trusted range** — the estimate (the estimator's, else the one the gain calibration gives) against the model's
   ``trusted_defocus_um``: a frame outside it is delivered but flagged ``trusted=False``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .defocus import (
    DEFAULT_TRUSTED_UM,
    DefocusEstimate,
    DefocusEstimator,
    FocusGainCalibration,
    focus_energy,
    in_trusted_range,
)
from .errors import InputError
from .preprocess import ImageInfo, to_unit

if TYPE_CHECKING:
    from .manifest import Manifest

__all__ = ["Capture", "FocusPolicy", "Judgement", "describe_untrusted", "estimator_label", "focus_of_unit", "trusted_range"]

log = logging.getLogger("virtualfocus")

def focus_of_unit(unit: np.ndarray, channel: int) -> float:
    """F of one channel of a 0..1 H×W×C image (the runtime's unit space)."""
    return focus_energy(unit[..., channel] * np.float32(255.0))


def trusted_range(manifest: Manifest | None) -> tuple[float, float]:
    """The trusted defocus range (µm) of a model: its manifest's ``trusted_defocus_um``, else
    :data:`~virtualfocus.edge.defocus.DEFAULT_TRUSTED_UM`."""
    if manifest is not None and manifest.trusted_defocus_um is not None:
        lo, hi = manifest.trusted_defocus_um
        return float(lo), float(hi)
    return DEFAULT_TRUSTED_UM


def describe_untrusted(est: DefocusEstimate, trusted_um: tuple[float, float], *, model: str = "") -> str:
    """One line saying why ``est`` is not trusted: a signed estimate against the range, a magnitude against the
    bound it exceeded (the nearer one, which holds on either side of focus)."""
    lo, hi = trusted_um
    whose = f"{model}'s" if model else "the"
    span = f"{lo:+.1f}…{hi:+.1f} µm"
    d = est.defocus_um if est.defocus_um is not None else float("nan")
    if est.signed:
        return f"estimated defocus {d:+.2f} µm is outside {whose} trusted range {span}"
    bound = min(abs(lo), abs(hi))
    return f"estimated defocus magnitude {abs(d):.2f} µm exceeds {bound:.2f} µm, the nearer bound of {whose} trusted range {span}"


def estimator_label(estimator: object) -> str:
    if estimator is None:
        return ""
    name, backend = getattr(estimator, "name", None), getattr(estimator, "backend_name", None)
    if isinstance(name, str) and isinstance(backend, str):
        return f"{name} on {backend}"
    return type(estimator).__name__


@dataclass(frozen=True)
class Judgement:
    """What the policy decided about one capture.

    ``in_focus`` is the reason the capture is returned untouched ("" when it is restored); ``trusted`` and
    ``note`` come from the trusted-range check (None and "" without an estimate).
    """

    estimate: DefocusEstimate | None = None
    trusted: bool | None = None
    note: str = ""
    in_focus: str = ""
    focus: float | None = None
    gain: float | None = None

    @property
    def defocus_um(self) -> float | None:
        return self.estimate.defocus_um if self.estimate is not None else None

    @property
    def message(self) -> str:
        return "; ".join(n for n in (self.in_focus, self.note) if n)


class Capture:
    """A validated capture and what the policy and the engine may need from it, each computed at most once.

    ``unit`` / ``info``: the capture in the runtime's unit space (:func:`~virtualfocus.edge.preprocess.to_unit`),
    converted only when something asks for it (the in-graph path never does).
    """

    def __init__(self, image: np.ndarray, key: Hashable = None, *, bit_depth: int | None = None) -> None:
        self.image = image
        self.key = key
        self.bit_depth = bit_depth
        self._unit: tuple[np.ndarray, ImageInfo] | None = None
        self._focus: float | None = None

    def _convert(self) -> tuple[np.ndarray, ImageInfo]:
        if self._unit is None:
            self._unit = to_unit(self.image, name="image", bit_depth=self.bit_depth)
        return self._unit

    @property
    def unit(self) -> np.ndarray:
        return self._convert()[0]

    @property
    def info(self) -> ImageInfo:
        return self._convert()[1]

    @property
    def focus_channel(self) -> int:
        """The focus-measure channel: green of RGB(A), the only channel of gray."""
        im = self.image
        return 1 if im.ndim == 3 and im.shape[2] >= 3 else 0

    def focus(self) -> float:
        """F of the capture in unit space ×255 (for uint8 that is the capture's own green plane)."""
        if self._focus is None:
            im = self.image
            if im.dtype == np.uint8:
                self._focus = focus_energy(im if im.ndim == 2 else im[..., self.focus_channel])
            else:
                self._focus = focus_of_unit(self.unit, self.focus_channel)
        return self._focus


class FocusPolicy:
    """The in-focus pass-through, trusted-range and flagging decisions of one runtime (see the module docstring).

    Parameters
    ----------
    estimator : DefocusEstimator, optional
        Estimates captures' defocus (signed or a magnitude). None: the gain calibration, if any, estimates it.
    in_focus_threshold : float, optional
        Step 1: captures with a focus measure F (0..255 scale) at least this are in focus.
    in_focus_band_um : (low, high), optional
        Step 2: captures a signed estimator places in this band are in focus.
    pass_in_focus : bool
        Step 3 on (True) or off.
    """

    def __init__(self, *, estimator: DefocusEstimator | None = None, in_focus_threshold: float | None = None,
                 in_focus_band_um: tuple[float, float] | None = None, pass_in_focus: bool = True) -> None:
        if estimator is not None and not callable(getattr(estimator, "estimate", None)):
            raise InputError(f"defocus_estimator: {type(estimator).__name__} has no estimate(image, key=...) "
                             "method; pass a DefocusClassifier, a FocusMeasureEstimator or None")
        if in_focus_band_um is not None:
            lo, hi = (float(v) for v in in_focus_band_um)
            if not lo <= hi:
                raise InputError(f"in_focus_band_um={in_focus_band_um}; expected (low, high) in µm with low ≤ high")
            in_focus_band_um = (lo, hi)
        self.estimator = estimator
        self.in_focus_threshold = in_focus_threshold
        self.in_focus_band_um = in_focus_band_um
        self.pass_in_focus = bool(pass_in_focus)
        self.estimator_failures = 0
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    # -- data from the model ------------------------------------------------------------------------------------
    def calibration(self, manifest: Manifest | None, name: str = "") -> FocusGainCalibration | None:
        """The model's restoration-gain calibration (its manifest's ``focus_gain``), None when it has none."""
        return None if manifest is None else manifest.focus_gain

    def map_calibration(self, manifest: Manifest | None) -> FocusGainCalibration | None:
        """The gain calibration a focus map reads its tiles with: the model's per-tile ``focus_map_gain``, else its
        frame ``focus_gain``; None when it has neither."""
        if manifest is None:
            return None
        return manifest.focus_map_gain if manifest.focus_map_gain is not None else manifest.focus_gain

    def wants_gain(self, manifest: Manifest | None) -> bool:
        """Whether :meth:`after` needs the restoration gain for this model."""
        return self.calibration(manifest) is not None

    # -- the steps ----------------------------------------------------------------------------------------------
    def before(self, capture: Capture, manifest: Manifest | None, *, restoring: bool, index: int = -1) -> Judgement:
        """Steps 1 and 2, before any model runs. ``restoring``: a model will run (the band check needs one)."""
        focus = None
        if self.in_focus_threshold is not None:
            focus = capture.focus()
            if focus >= self.in_focus_threshold:
                j = self._estimate(capture, manifest, index)
                return Judgement(j.estimate, j.trusted, j.note, "already in focus", focus)
        if restoring and self.in_focus_band_um is not None and self.estimator is not None:
            j = self._estimate(capture, manifest, index)
            est, (lo, hi) = j.estimate, self.in_focus_band_um
            if est is not None and est.signed and est.defocus_um is not None and lo <= est.defocus_um <= hi:
                return Judgement(est, j.trusted, j.note, f"already in focus (estimated {est.defocus_um:+.2f} µm)", focus)
            return Judgement(j.estimate, j.trusted, j.note, "", focus)
        return Judgement(focus=focus)

    def after(self, early: Judgement, capture: Capture, manifest: Manifest | None, *, gain: float | None,
              index: int = -1) -> Judgement:
        """Steps 3 and 4, once the model has run; ``gain`` is F(restored) / F(capture) (None when not measured)."""
        cal = self.calibration(manifest)
        if early.estimate is not None or (self.in_focus_band_um is not None and self.estimator is not None):
            j = early  # the band check already estimated (or tried to): once per frame
        elif self.estimator is not None:
            j = self._estimate(capture, manifest, index)
        elif cal is not None and gain is not None:
            j = self.judge(cal.estimate(gain), manifest)
        else:
            j = Judgement()
        in_focus = ""
        if (self.pass_in_focus and cal is not None and gain is not None and cal.in_focus_below is not None
                and gain < cal.in_focus_below):
            # The model found next to nothing to restore: the capture is in focus, and any change would only cost
            # detail (the thesis's "no harm in focus").
            in_focus = f"already in focus (restoration gain {gain:.3f} < {cal.in_focus_below:.3f})"
        return Judgement(j.estimate, j.trusted, j.note, in_focus, early.focus, gain)

    def judge(self, est: DefocusEstimate, manifest: Manifest | None) -> Judgement:
        """Step 4 alone: ``est`` against the model's trusted range."""
        rng = trusted_range(manifest)
        trusted = in_trusted_range(est, rng)
        note = f"untrusted: {describe_untrusted(est, rng)}" if trusted is False else ""
        return Judgement(est, trusted, note)

    def _estimate(self, capture: Capture, manifest: Manifest | None, index: int) -> Judgement:
        """The estimator's judgement; never raises: a failure gives an empty judgement (``trusted`` None)."""
        if self.estimator is None:
            return Judgement()
        try:
            est = self._run_estimator(capture)
        except Exception as e:  # the estimator must never cost a frame
            name = type(e).__name__
            with self._lock:
                self.estimator_failures += 1
                first = name not in self._warned
                self._warned.add(name)
            if first:
                log.warning("virtualfocus: defocus estimator %s failed on frame %d (%s: %s); such frames are delivered "
                            "with trusted=None (warned once per error type)", estimator_label(self.estimator), index,
                            name, e)
            return Judgement()
        return self.judge(est, manifest)

    def _run_estimator(self, capture: Capture) -> DefocusEstimate:
        est = self.estimator
        assert est is not None
        by_unit = getattr(est, "estimate_unit", None)
        # A classifier takes the capture already converted (no second to_unit); others take it as captured.
        out = by_unit(capture.unit) if callable(by_unit) else est.estimate(capture.image, key=capture.key)
        if not isinstance(out, DefocusEstimate):
            raise TypeError(f"{type(est).__name__}.estimate returned {type(out).__name__}, not a DefocusEstimate")
        return out

    def estimate_for_report(self, capture: Capture) -> DefocusEstimate:
        """Run the estimator on ``capture`` (raises on failure; for the load-time measurement)."""
        return self._run_estimator(capture)
