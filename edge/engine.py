"""One loaded restoring model: a variant bound to a backend, with its pre/post-processing.

Two paths give the same result:

- **In the graph** (OpenVINO, uint8/uint16 gray or RGB captures that need no tiling): the capture goes to the
  compiled model as it is; conversion to the model's normalised NCHW floats, reflect padding, cropping, the way
  back to the capture's dtype and layout, and the focus measure of the result (for the restoration gain) all run
  inside the compiled graph (:meth:`~virtualfocus.edge.backends.OpenVINOBackend.run_capture`).
- **In numpy** (ONNX Runtime, float or RGBA captures, tiled scan images, static-shape files):
  :func:`~virtualfocus.edge.preprocess.to_unit` → :class:`~virtualfocus.edge.preprocess.Tiler` /
  :class:`~virtualfocus.edge.preprocess.PadCrop` / :class:`~virtualfocus.edge.preprocess.Normalizer` → backend →
  :func:`~virtualfocus.edge.preprocess.from_unit`.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .backends import Backend, BackendKind, CaptureSpec, open_model
from .defocus import focus_energy
from .errors import BackendError, ModelLoadError
from .manifest import InputContract, Manifest
from .models import ModelSource, resolve_model
from .policy import Capture
from .preprocess import Normalizer, PadCrop, Tiler, from_unit, uint16_scale

__all__ = ["ModelEngine", "Restoration", "engine_from_source"]

log = logging.getLogger("virtualfocus")


@dataclass(frozen=True)
class Restoration:
    """A model's output for one capture: ``image`` in the capture's shape and dtype, ``focus`` the focus measure F
    of the restored plane that the capture's F is compared with (None when not asked for), ``cold`` whether the
    call compiled a new input shape (its time says nothing about steady-state latency)."""

    image: np.ndarray
    focus: float | None
    cold: bool
    nonfinite: int = 0


class ModelEngine:
    """A model variant bound to a backend, with its pre/post-processing.

    Parameters
    ----------
    name : str
        Variant name reported in every frame.
    backend : Backend
        The engine that runs NCHW float32 arrays (and, for OpenVINO, whole captures).
    contract : InputContract
        Channels, value range, pad multiple, static size.
    fallback : callable, optional
        Builds a replacement backend if ``backend`` fails mid-stream (called at most once).
    max_tile, overlap : int
        Images larger than ``max_tile`` on a side are tiled (see :class:`~virtualfocus.edge.preprocess.Tiler`). The
        default 2048 runs a 1920×1200 scan image whole: no overlap computed twice and no blending, at about 120 MB
        more peak memory than 1024-pixel tiles.
    in_graph : bool
        Run pre/post-processing inside the compiled model where the backend can (default True).
    """

    def __init__(
        self,
        name: str,
        backend: Backend,
        contract: InputContract,
        *,
        manifest: Manifest | None = None,
        fallback: Callable[[], Backend] | None = None,
        max_tile: int = 2048,
        overlap: int = 32,
        in_graph: bool = True,
    ) -> None:
        self.name = name
        self.backend = backend
        self.contract = contract
        self.manifest = manifest
        self.in_graph = in_graph
        self._fallback = fallback
        self._switch_lock = threading.Lock()
        self._warm: set[tuple[int | str, ...]] = set()
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
        max_tile: int = 2048,
        overlap: int = 32,
        contract: InputContract | None = None,
    ) -> ModelEngine:
        """Load one variant (shipped name, folder or file) without warm-up; see :meth:`FocusRuntime.load`."""
        return engine_from_source(resolve_model(model, contract=contract), backend=backend, threads=threads,
                                  precision=precision, max_tile=max_tile, overlap=overlap)

    @property
    def backend_name(self) -> str:
        return self.backend.kind.value

    # -- the capture path ----------------------------------------------------------------------------------------
    def capture_spec(self, image: np.ndarray, *, bit_depth: int | None = None,
                     focus: bool = False) -> CaptureSpec | None:
        """The direct-path description of ``image`` (a validated uint8/uint16 gray or RGB capture that needs no
        tiling), or None when the unit-space path must run it."""
        c = self.contract
        if not self.in_graph or c.inputs != 1 or self._static is not None:
            return None
        if image.dtype not in (np.uint8, np.uint16) or (image.ndim == 3 and image.shape[2] not in (1, 3)):
            return None
        h, w = image.shape[:2]
        if self.tiler.needs_tiling(h, w):
            return None
        planes = 1 if image.ndim == 2 else image.shape[2]
        if planes == 3 and c.channels == 1:
            return None  # a gray model on an RGB capture: the numpy path gives the single plane back
        scale = 255.0 if image.dtype == np.uint8 else uint16_scale(image, bit_depth)
        ph, pw = self.padcrop.padded_shape(h, w)
        top, left = (ph - h) // 2, (pw - w) // 2
        pads = (top, ph - h - top, left, pw - w - left)
        lo, hi = c.value_range
        return CaptureSpec(height=h, width=w, planes=planes, dtype=image.dtype.name, scale=scale, pads=pads,
                           reflect=max(pads) < min(h, w), value_range=(float(lo), float(hi)),
                           model_channels=c.channels, focus_channel=(1 if planes == 3 else 0) if focus else -1,
                           clip_input=image.dtype == np.uint16 and bit_depth is not None)

    def restore(self, capture: Capture, *, bit_depth: int | None = None, focus: bool = False) -> Restoration:
        """Restore a validated capture; returns it in the capture's shape and dtype (alpha passed through).

        ``focus``: also measure F of the restored focus channel (for the restoration gain).
        """
        image = capture.image
        spec = self.capture_spec(image, bit_depth=bit_depth, focus=focus)
        if spec is not None:
            key = (*spec.padded, spec.planes, spec.dtype)
            cold = key not in self._warm
            self._warm.add(key)
            try:
                if self._in_graph(spec):
                    out, f = self.backend.run_capture(spec, image)  # type: ignore[attr-defined]
                else:
                    out, f = self._run_direct(spec, image)
            except BackendError as e:
                self._switch(e)
                return self.restore(capture, bit_depth=bit_depth, focus=focus)  # on the fallback's own path
            return Restoration(out.reshape(image.shape), f, cold)
        unit = capture.unit
        out_unit = self.restore_unit(unit)
        info = capture.info
        f_out = focus_energy(out_unit[..., 1 if unit.shape[2] == 3 else 0] * np.float32(255.0)) if focus else None
        return Restoration(from_unit(out_unit, info), f_out, self.cold, info.nonfinite)

    def warm(self, height: int, width: int, *, channels: int = 3, dtype: type = np.uint8, focus: bool = True) -> None:
        """Compile for captures of ``height``×``width`` now, so that the first real frame of that size is not the
        compile (the runtime's ``warmup_shape``)."""
        shape = (height, width) if channels == 1 else (height, width, channels)
        frame: np.ndarray = np.full(shape, 128, dtype)
        self.restore(Capture(frame), focus=focus)

    def _in_graph(self, spec: CaptureSpec) -> bool:
        if not callable(getattr(self.backend, "run_capture", None)):
            return False
        # At OpenVINO's default bf16 the in-graph scaling back to 12–16 bits would cost up to 16 levels; 8-bit
        # output is exact either way.
        return spec.dtype == "uint8" or getattr(self.backend, "precision", "") == "f32"

    def _run_direct(self, spec: CaptureSpec, image: np.ndarray) -> tuple[np.ndarray, float | None]:
        """The fastest path outside a graph (ONNX Runtime): pad in the capture's own dtype, one fused
        scale-and-transpose into the model's NCHW floats (``cv2.dnn.blobFromImage``), and one pass back."""
        import cv2

        lo, hi = spec.value_range
        x = image if image.ndim == 3 else image[..., None]
        if any(spec.pads):
            mode = cv2.BORDER_REFLECT_101 if spec.reflect else cv2.BORDER_REPLICATE
            x = cv2.copyMakeBorder(x, *spec.pads, borderType=mode)
            x = x if x.ndim == 3 else x[..., None]
        if spec.clip_input:
            x = np.minimum(x, np.uint16(spec.scale))
        k = (hi - lo) / spec.scale
        blob = cv2.dnn.blobFromImage(x, scalefactor=k, mean=(-lo / k,) * 3, swapRB=False, crop=False,
                                     ddepth=cv2.CV_32F)
        if spec.planes == 1 and spec.model_channels == 3:
            blob = np.repeat(blob, 3, axis=1)
        y = np.asarray(self.backend.run(blob))
        top, bottom, left, right = spec.pads
        ph, pw = spec.padded
        y = y.reshape(y.shape[-3:])[:, top : ph - bottom, left : pw - right]  # C×H×W, a view
        f = None
        if spec.focus_channel >= 0:
            f = focus_energy((y[spec.focus_channel] - np.float32(lo)) * np.float32(255.0 / (hi - lo)))
        if spec.planes == 1 and y.shape[0] != 1:
            y = y.mean(axis=0, keepdims=True)
        out = np.empty((spec.height, spec.width, y.shape[0]), np.float32)
        np.subtract(y.transpose(1, 2, 0), np.float32(lo), out=out)
        out *= np.float32(spec.scale / (hi - lo))
        np.clip(out, 0.0, spec.scale, out=out)
        return np.rint(out, out=out).astype(spec.dtype), f

    # -- the numpy path ------------------------------------------------------------------------------------------
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
        x = self.normalizer.before(padded)
        y = self._call(lambda be: be.run(x))
        return PadCrop.crop(self.normalizer.after(y), pads)

    def _call(self, fn: Callable[[Backend], np.ndarray]) -> np.ndarray:
        try:
            return fn(self.backend)
        except BackendError as e:
            self._switch(e)
        return fn(self.backend)

    def _switch(self, error: BackendError) -> None:
        """Replace the failed backend by the fallback (once); re-raise ``error`` when there is none."""
        with self._switch_lock:
            build, self._fallback = self._fallback, None
        if build is None:
            raise error
        failed = self.backend_name
        self.backend = build()
        log.warning("virtualfocus: %s failed on %s; switched to %s", self.name, failed, self.backend_name)

    def restore_unit(self, unit: np.ndarray) -> np.ndarray:
        """Restore a 0..1 H×W×C float32 image (any size ≥ the minimum); returns 0..1 H×W×C'.

        After the call, ``cold`` tells whether it had to compile a new input shape.
        """
        self.cold = False
        return self.tiler.run(unit, self._run_tile)


def engine_from_source(
    src: ModelSource,
    *,
    backend: str | BackendKind | None,
    threads: int | None,
    precision: str,
    max_tile: int,
    overlap: int,
) -> ModelEngine:
    """Open a restoring model's backend (with its fallback) and wrap it in a :class:`ModelEngine`."""
    m = src.manifest
    if m.task != "restore":
        raise ModelLoadError(f"{src.origin}: {m.name} is a {m.task!r} model, not a restoring one; pass it as "
                             "FocusRuntime.load(..., defocus_estimator=PATH)")
    be, fallback = open_model(src, backend=backend, threads=threads, precision=precision)
    return ModelEngine(src.label, be, m.input, manifest=m, fallback=fallback, max_tile=max_tile, overlap=overlap)
