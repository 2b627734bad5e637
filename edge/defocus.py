"""Signed defocus of a capture from an exported focus-distance classifier (numpy + OpenVINO / ONNX Runtime, no torch).

A restoring model is only validated over a range of defocus (its manifest's ``trusted_defocus_um``); outside it the
output must not be passed off as restored. :class:`DefocusClassifier` tells how far from focus, and on which side,
a capture was taken, so that :class:`~virtualfocus.edge.runtime.FocusRuntime` can flag it::

    est = DefocusClassifier.load("models/vf-focus-distance")
    e = est.estimate(capture)          # DefocusEstimate(defocus_um=+0.93, signed=True, confidence=0.61)

The model is the thesis's focus-distance network (``focus-distance-classifier`` in the training registry) exported
by ``virtualfocus export RUN`` to a model folder whose manifest says ``"task": "defocus"``: one static
``1×3×S×S`` input (S = the crop it was trained on, e.g. 128) in [-1, 1], one logit per signed class centre
``classes_um`` (−1.4 … +1.2 µm in 0.2 µm steps, the thesis's sign convention: negative = objective closer to the
slide).

An estimate looks at up to five fixed S×S crops (the centre and the centres of the four quadrants; fewer when the
capture is too small for them to differ), averages the class probabilities, and returns the probability-weighted
mean of the class centres (µm) and, as ``confidence``, the largest averaged class probability. The crops are cut
from the capture at full resolution and scaled exactly as in training (``to_unit`` → 0..1 → [-1, 1]).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .errors import InputError

if TYPE_CHECKING:
    from .classifier import DefocusClassifier

__all__ = ["CROP_COUNTS", "DEFAULT_TRUSTED_UM", "DefocusClassifier", "DefocusEstimate", "DefocusEstimator",
           "FocusGainCalibration", "PairDefocusEstimator", "crop_boxes", "focus_energy", "in_trusted_range",
           "restoration_gain"]

#: Trusted range used when neither the caller nor the model's manifest gives one (the thesis's −0.8…+0.8 µm interval).
#: Re-exported as :data:`virtualfocus.edge.integrations.telemetry.DEFAULT_TRUSTED_UM`.
DEFAULT_TRUSTED_UM = (-0.8, 0.8)

#: Crop counts :class:`DefocusClassifier` accepts: the centre only, or the centre and the four quadrant centres.
CROP_COUNTS = (1, 5)


@dataclass(frozen=True)
class DefocusEstimate:
    """One estimate.

    Attributes
    ----------
    defocus_um : float or None
        Estimated defocus in µm (None if no estimate was possible). Signed when ``signed``, else a magnitude.
    signed : bool
        Whether the side of focus is known.
    focus : float or None
        The thesis focus measure F of the capture, when the estimator computed it.
    confidence : float or None
        The estimator's confidence in 0..1 (for a classifier: its largest averaged class probability).
    """

    defocus_um: float | None
    signed: bool
    focus: float | None = None
    confidence: float | None = None



class DefocusEstimator(Protocol):
    """What the runtime needs from a defocus estimator: one estimate per capture.

    :class:`~virtualfocus.edge.classifier.DefocusClassifier` (signed) and
    :class:`~virtualfocus.edge.integrations.telemetry.FocusMeasureEstimator` (a magnitude) implement it.
    """

    def estimate(self, image: np.ndarray, *, key: Hashable = None) -> DefocusEstimate: ...


class PairDefocusEstimator(DefocusEstimator, Protocol):
    """A :class:`DefocusEstimator` that also estimates the mid-point of a two-shot pair (for the drift monitor)."""

    def estimate_pair(
        self, images: Sequence[np.ndarray], zs_um: Sequence[float], *, key: Hashable = None
    ) -> DefocusEstimate: ...


def in_trusted_range(estimate: DefocusEstimate, trusted_um: tuple[float, float]) -> bool | None:
    """Whether ``estimate`` lies in ``trusted_um`` (None without an estimate).

    A magnitude (``signed`` False) is compared with ``min(|low|, |high|)``, the bound that holds on either side.
    """
    if estimate.defocus_um is None or not math.isfinite(estimate.defocus_um):
        return None
    lo, hi = trusted_um
    if estimate.signed:
        return bool(lo <= estimate.defocus_um <= hi)
    return bool(abs(estimate.defocus_um) <= min(abs(lo), abs(hi)))


_R = 6  # half-width of the thesis focus filters ωx, ωy = [-1, 0,0,0,0,0, 2, 0,0,0,0,0, -1]


def focus_energy(g: np.ndarray) -> float:
    """The thesis focus measure F of one 0..255 plane (equal to :func:`~virtualfocus.edge.metrics.focus_measure`).

    The filters have three taps, so on the valid region they are two subtractions of shifted views: no
    convolution and no full-size float64 copies (a few times faster at 360×360).
    """
    g = np.asarray(g, np.float32)
    c = g[_R:-_R, _R:-_R]
    gx = (2 * c - g[_R:-_R, : -2 * _R] - g[_R:-_R, 2 * _R :]).ravel()
    gy = (2 * c - g[: -2 * _R, _R:-_R] - g[2 * _R :, _R:-_R]).ravel()
    if not gx.size:
        raise InputError(f"image: {g.shape[0]}×{g.shape[1]} is too small; the focus filters need more than 12 px")
    return float((np.dot(gx, gx) + np.dot(gy, gy)) / gx.size)


def restoration_gain(capture_unit: np.ndarray, restored_unit: np.ndarray) -> float:
    """``F(restored) / F(capture)``: how much a restoration sharpened the capture (thesis focus measure F).

    Both images are H×W×C floats in 0..1 (the runtime's unit space). About 1 for an in-focus capture (there is
    nothing to restore) and growing with the defocus the model undid: a per-capture defocus magnitude that costs
    two focus measures and no extra network, and that normalises the content away (dense and sparse fields alike).
    """
    ch = min(1, capture_unit.shape[2] - 1)
    f_in = focus_energy(capture_unit[..., ch] * np.float32(255.0))
    f_out = focus_energy(restored_unit[..., ch] * np.float32(255.0))
    return f_out / f_in if f_in > 0 else float("inf")


@dataclass(frozen=True)
class FocusGainCalibration:
    """Restoration gain → defocus magnitude for one restoring model, measured on held-out simulated stacks.

    ``levels_um`` / ``gain``: the median gain (:func:`restoration_gain`) of the model at each focus level;
    ``in_focus_below``: captures whose gain stays below this are already in focus — the runtime returns them
    untouched (chosen on tuning stacks so the model never loses detail there); ``stacks``: how many stacks measured.
    Written into the model's manifest (``focus_gain``) by ``benchmarks/quality_report.py --cards``.

    The estimate is a magnitude (``signed`` False): both sides of focus blur, and the gain does not tell which.
    """

    levels_um: tuple[float, ...]
    gain: tuple[float, ...]
    in_focus_below: float | None = None
    stacks: int = 0

    @classmethod
    def from_dict(cls, d: Any) -> FocusGainCalibration:
        """Raises :class:`InputError` naming what is wrong."""
        known = {"levels_um", "gain", "in_focus_below", "stacks"}
        if not isinstance(d, dict):
            raise InputError(f"{d!r}: expected an object with {sorted(known)}")
        if set(d) - known:
            raise InputError(f"unknown key(s) {sorted(set(d) - known)}; known keys are {sorted(known)}")
        try:
            lv = tuple(float(v) for v in d["levels_um"])
            g = tuple(float(v) for v in d["gain"])
            below = None if d.get("in_focus_below") is None else float(d["in_focus_below"])
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"levels_um and gain must be lists of numbers ({e})") from e
        if len(lv) != len(g) or len(lv) < 2 or not all(math.isfinite(v) and v > 0 for v in g):
            raise InputError(f"levels_um ({len(lv)}) and gain ({len(g)}) must have the same length ≥ 2, gains > 0")
        return cls(lv, g, below, int(d.get("stacks", 0)))

    def to_dict(self) -> dict[str, Any]:
        return {"levels_um": [round(v, 3) for v in self.levels_um], "gain": [round(v, 4) for v in self.gain],
                "in_focus_below": None if self.in_focus_below is None else round(self.in_focus_below, 4),
                "stacks": self.stacks}

    def curve(self) -> tuple[np.ndarray, np.ndarray]:
        """(gains, |levels|): the median gain over |level| (both sides averaged, made monotone), ascending."""
        by: dict[float, list[float]] = {}
        for lv, g in zip(self.levels_um, self.gain, strict=True):
            by.setdefault(round(abs(lv), 3), []).append(g)
        mags = np.array(sorted(by))
        gains = np.maximum.accumulate(np.array([float(np.mean(by[m])) for m in mags]))
        return gains, mags

    def magnitude_um(self, gain: float) -> float:
        """|defocus| (µm) for a measured gain: :meth:`curve` inverted by linear interpolation and clamped to the
        calibrated range."""
        gains, mags = self.curve()
        if not math.isfinite(gain):
            return float(mags[-1])
        return float(np.interp(gain, gains, mags))

    def magnitudes_um(self, gains: np.ndarray) -> np.ndarray:
        """:meth:`magnitude_um` of every element (NaN stays NaN, +inf reads as the largest calibrated level)."""
        curve_g, mags = self.curve()
        g = np.asarray(gains, np.float64)
        out = np.interp(np.nan_to_num(g, nan=0.0, posinf=np.inf), curve_g, mags)
        out[np.isnan(g)] = np.nan
        return out

    def estimate(self, gain: float) -> DefocusEstimate:
        return DefocusEstimate(self.magnitude_um(gain), False, None, None)


def crop_boxes(height: int, width: int, crop: int, *, crops: int = 5) -> list[tuple[int, int]]:
    """Top-left corners of the ``crop``×``crop`` windows an estimate looks at, centre first.

    The windows are centred on the image centre and (``crops=5``) on the centres of its four quadrants, shifted
    inside the image; windows that coincide (a capture barely larger than the crop) are counted once.

    Raises
    ------
    InputError
        ``crops`` not in :data:`CROP_COUNTS`, or an image smaller than the crop.
    """
    if crops not in CROP_COUNTS:
        raise InputError(f"crops={crops}: expected one of {list(CROP_COUNTS)} (centre only, or centre + quadrants)")
    if height < crop or width < crop:
        raise InputError(f"image: {height}×{width} pixels is smaller than the defocus classifier's {crop}×{crop} crop; "
                         f"height and width must be at least {crop}")
    centres = [(0.5, 0.5)]
    if crops == 5:
        centres += [(0.25, 0.25), (0.25, 0.75), (0.75, 0.25), (0.75, 0.75)]
    out: list[tuple[int, int]] = []
    for fy, fx in centres:
        top = int(np.clip(round(fy * height - crop / 2), 0, height - crop))
        left = int(np.clip(round(fx * width - crop / 2), 0, width - crop))
        if (top, left) not in out:
            out.append((top, left))
    return out

