"""The focus-distance classifier: signed defocus of a capture from an exported model (no torch).

See :mod:`virtualfocus.edge.defocus` for the estimate types and how the runtime uses them.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Hashable, Sequence

import numpy as np

from .backends import Backend, BackendKind, open_model
from .defocus import CROP_COUNTS, DefocusEstimate, crop_boxes
from .errors import BackendError, InputError, ModelLoadError
from .manifest import Manifest
from .models import resolve_model
from .preprocess import Normalizer, to_unit

__all__ = ["DefocusClassifier"]

log = logging.getLogger("virtualfocus")


class DefocusClassifier:
    """A focus-distance classifier model folder run through OpenVINO (ONNX Runtime as fallback).

    Implements :class:`~virtualfocus.edge.integrations.telemetry.DefocusEstimator`, so it can drive a
    :class:`~virtualfocus.edge.integrations.telemetry.DriftMonitor` as well as the runtime's trusted-range flag.
    Thread-safe (one inference at a time per backend). Create it with :meth:`load`.

    Parameters
    ----------
    backend : Backend
        Runs the classifier's static ``1×3×S×S`` input.
    manifest : Manifest
        The model folder's manifest (``task == "defocus"``).
    name : str
        Label used in messages.
    fallback : callable, optional
        Builds a replacement backend if ``backend`` fails (called at most once).
    crops : {1, 5}
        Crops per estimate: the centre only, or the centre and the four quadrant centres (default).

    Attributes
    ----------
    crop : int
        Side S of the square crop the model takes; captures must be at least S×S.
    classes_um : np.ndarray
        The signed class centres (µm).
    signed : bool
        Always True: estimates carry the side of focus.
    """

    signed = True

    def __init__(self, backend: Backend, manifest: Manifest, *, name: str = "",
                 fallback: Callable[[], Backend] | None = None, crops: int = 5) -> None:
        manifest.check_task(name or manifest.name)
        if manifest.task != "defocus":
            raise ModelLoadError(f"{name or manifest.name}: task {manifest.task!r}; a defocus estimator needs a model "
                                 "exported from a focus-distance-classifier run (task 'defocus')")
        if crops not in CROP_COUNTS:
            raise InputError(f"crops={crops}: expected one of {list(CROP_COUNTS)} (centre only, or centre + quadrants)")
        assert manifest.input.static_size is not None  # checked by check_task
        h, w = manifest.input.static_size
        if h != w:
            raise ModelLoadError(f"{name or manifest.name}: input.static_size {[h, w]}; expected a square crop")
        self.name = name or manifest.name
        self.manifest = manifest
        self.backend = backend
        self.crop = int(h)
        self.crops = int(crops)
        self.classes_um = np.asarray(manifest.classes_um, np.float64)
        self.normalizer = Normalizer(tuple(manifest.input.value_range), manifest.input.channels)  # type: ignore[arg-type]
        self._fallback = fallback
        self._switch_lock = threading.Lock()
        self._check_output()

    @classmethod
    def load(
        cls,
        model: str | os.PathLike[str],
        *,
        backend: str | BackendKind | None = None,
        threads: int | None = None,
        precision: str = "default",
        crops: int = 5,
    ) -> DefocusClassifier:
        """Load a defocus model: a shipped name, a model folder, or a file listed in a folder's manifest.

        Every file is checked against the manifest's sha256 before a backend parses it.

        Parameters
        ----------
        model : str or path
            A model folder written by ``virtualfocus export`` from a ``focus-distance-classifier`` run.
        backend : {"openvino", "onnxruntime"}, optional
            Force one backend. Default: OpenVINO, with ONNX Runtime as fallback.
        threads : int, optional
            Inference threads (default: all cores).
        precision : {"default", "f32", "bf16", "f16", "fp32"}
            See :func:`~virtualfocus.edge.backends.open_model`.
        crops : {1, 5}
            Crops per estimate.

        Raises
        ------
        ModelLoadError
            Missing or tampered files, a model that is not a defocus estimator, no usable backend.
        """
        if crops not in CROP_COUNTS:
            raise InputError(f"crops={crops}: expected one of {list(CROP_COUNTS)} (centre only, or centre + quadrants)")
        src = resolve_model(model)
        m = src.manifest
        if m.task != "defocus":
            raise ModelLoadError(f"{src.origin}: {m.name} is a {m.task!r} model; a defocus estimator needs a model "
                                 "folder exported from a focus-distance-classifier run (manifest task 'defocus')")
        be, fallback = open_model(src, backend=backend, threads=threads, precision=precision)
        return cls(be, m, name=src.label, fallback=fallback, crops=crops)

    # -- properties --------------------------------------------------------------------------------------------
    @property
    def backend_name(self) -> str:
        return self.backend.kind.value

    def __repr__(self) -> str:
        lo, hi = self.classes_um[0], self.classes_um[-1]
        return (f"DefocusClassifier({self.name!r}, crop={self.crop}, crops={self.crops}, classes {lo:+.1f}…{hi:+.1f} µm, "
                f"backend={self.backend_name!r})")

    # -- inference ---------------------------------------------------------------------------------------------
    def _run(self, x: np.ndarray) -> np.ndarray:
        try:
            return self.backend.run(x)
        except BackendError:
            with self._switch_lock:
                build, self._fallback = self._fallback, None
            if build is None:
                raise
            failed = self.backend_name
            self.backend = build()
            log.warning("virtualfocus: defocus estimator %s failed on %s; switched to %s", self.name, failed,
                        self.backend_name)
            return self.backend.run(x)

    def _check_output(self) -> None:
        """One warm-up run (compiles the static shape) that also checks the logits match ``classes_um``."""
        x = np.zeros((1, self.normalizer.channels, self.crop, self.crop), np.float32)
        try:
            y = np.asarray(self._run(x))
        except BackendError as e:
            raise ModelLoadError(f"{self.name}: the defocus model does not run on a {tuple(x.shape)} input ({e})") from e
        if y.size != len(self.classes_um):
            raise ModelLoadError(f"{self.name}: the model returns {y.size} values of shape {tuple(y.shape)}, but the "
                                 f"manifest lists {len(self.classes_um)} classes_um")

    def boxes(self, height: int, width: int) -> list[tuple[int, int]]:
        """Top-left corners of the crops of a ``height``×``width`` capture (see :func:`crop_boxes`)."""
        return crop_boxes(height, width, self.crop, crops=self.crops)

    def _check_size(self, h: int, w: int, name: str) -> None:
        if h < self.crop or w < self.crop:
            raise InputError(f"{name}: {h}×{w} pixels is smaller than the defocus classifier's {self.crop}×{self.crop} "
                             f"crop; height and width must be at least {self.crop}")

    def probabilities_unit(self, unit: np.ndarray, *, name: str = "image") -> np.ndarray:
        """Class probabilities averaged over the crops of a 0..1 H×W×C float32 image (as from ``to_unit``)."""
        h, w = unit.shape[:2]
        self._check_size(h, w, name)
        s = self.crop
        acc = np.zeros(len(self.classes_um), np.float64)
        boxes = self.boxes(h, w)
        for top, left in boxes:
            x = self.normalizer.before(np.ascontiguousarray(unit[top : top + s, left : left + s]))
            logits = np.asarray(self._run(x), np.float64).reshape(-1)
            if logits.size != acc.size or not np.isfinite(logits).all():
                raise BackendError(f"{self.name}: the defocus model returned {logits.size} value(s) "
                                   f"({'finite' if np.isfinite(logits).all() else 'NaN/Inf'}) for {acc.size} classes")
            e = np.exp(logits - logits.max())
            acc += e / e.sum()
        return acc / len(boxes)

    def estimate_unit(self, unit: np.ndarray, *, name: str = "image") -> DefocusEstimate:
        """:meth:`estimate` for an image already converted by :func:`~virtualfocus.edge.preprocess.to_unit`."""
        p = self.probabilities_unit(unit, name=name)
        return DefocusEstimate(float(np.dot(p, self.classes_um)), True, None, float(p.max()))

    def probabilities(self, image: np.ndarray, *, bit_depth: int | None = None) -> np.ndarray:
        """Class probabilities (one per ``classes_um`` entry) averaged over the crops of ``image``."""
        unit, _ = to_unit(image, name="image", bit_depth=bit_depth)
        return self.probabilities_unit(unit)

    def estimate(self, image: np.ndarray, *, key: Hashable = None, bit_depth: int | None = None) -> DefocusEstimate:
        """Signed defocus of one capture.

        Parameters
        ----------
        image : np.ndarray
            Gray (H×W, H×W×1), RGB or RGBA (alpha ignored); uint8, uint16 or float; at least :attr:`crop` pixels
            on each side.
        key : hashable, optional
            Stage position or field; unused (the estimate needs no reference), accepted for the
            :class:`~virtualfocus.edge.integrations.telemetry.DefocusEstimator` protocol.
        bit_depth : int, optional
            Significant bits of a uint16 capture (inferred when omitted).

        Returns
        -------
        DefocusEstimate
            ``defocus_um`` = probability-weighted mean of ``classes_um``, ``signed`` True, ``confidence`` = the
            largest averaged class probability.

        Raises
        ------
        InputError
            Not an image, or smaller than the crop (the message gives the size and the minimum).
        BackendError
            Inference failed on every backend.
        """
        unit, _ = to_unit(image, name="image", bit_depth=bit_depth)
        return self.estimate_unit(unit)

    def estimate_pair(
        self, images: Sequence[np.ndarray], zs_um: Sequence[float], *, key: Hashable = None
    ) -> DefocusEstimate:
        """Signed defocus of the mid-point of two captures at stage positions ``zs_um`` (µm).

        Each capture's defocus is its stage position minus the focus position, so the mid-point's is the mean of
        the two estimates; ``confidence`` is the lower of the two.
        """
        if len(images) != 2 or len(zs_um) != 2:
            raise InputError(f"estimate_pair: got {len(images)} image(s) and {len(zs_um)} position(s); expected 2 and 2")
        if float(zs_um[0]) == float(zs_um[1]):
            raise InputError(f"estimate_pair: both captures at z={float(zs_um[0])} µm; need two different focus positions")
        a, b = self.estimate(images[0], key=key), self.estimate(images[1], key=key)
        assert a.defocus_um is not None and b.defocus_um is not None
        conf = None if a.confidence is None or b.confidence is None else min(a.confidence, b.confidence)
        return DefocusEstimate((a.defocus_um + b.defocus_um) / 2.0, True, None, conf)
