"""Inference backends: OpenVINO (preferred on x86) and ONNX Runtime (fallback).

Both take the model as bytes that the caller has already checked against the manifest's sha256, so what runs is
exactly what was verified (no second read from disk), and an ONNX file cannot pull in external data from outside
its folder (external data is refused outright: shipped models are single files of a few MB).

A backend runs one NCHW float32 array and returns the model's first output. OpenVINO compiles one static shape per
distinct input size (at most ``max_shapes`` kept), because a static shape runs faster than a dynamic one on the CPU
plugin and a capture stream almost always has one size.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .defocus import focus_energy
from .errors import BackendError, ModelLoadError, ModelTampered

if TYPE_CHECKING:
    from .manifest import ModelFile
    from .models import ModelSource

__all__ = [
    "PRECISIONS",
    "Backend",
    "BackendKind",
    "CaptureSpec",
    "OnnxRuntimeBackend",
    "OpenVINOBackend",
    "available_backends",
    "open_backend",
    "open_model",
]

#: ``precision`` values of :func:`open_model` (and ``FocusRuntime.load``): "default", OpenVINO execution hints, or a
#: shipped file's precision.
PRECISIONS = ("default", "f32", "bf16", "f16", "fp32", "fp16", "int8")

log = logging.getLogger("virtualfocus")


class BackendKind(StrEnum):
    """Inference engines the runtime can use."""

    OPENVINO = "openvino"
    ONNXRUNTIME = "onnxruntime"

    @classmethod
    def parse(cls, value: str | BackendKind) -> BackendKind:
        try:
            return cls(value)
        except ValueError:
            raise BackendError(
                f"backend={value!r} is not known; expected one of {[k.value for k in cls]}"
            ) from None


class Backend(Protocol):
    """What the runtime needs from an inference engine."""

    kind: BackendKind
    precision: str

    def run(self, x: np.ndarray) -> np.ndarray: ...

    def input_shape(self) -> tuple[int | None, ...]: ...


def available_backends() -> list[BackendKind]:
    """Backends importable in this environment, preferred first."""
    out = []
    for kind, module in ((BackendKind.OPENVINO, "openvino"), (BackendKind.ONNXRUNTIME, "onnxruntime")):
        try:
            __import__(module)
        except ImportError:
            continue
        out.append(kind)
    return out


@dataclass
class _Compiled:
    compiled: object
    request: object


@dataclass(frozen=True, kw_only=True)
class CaptureSpec:
    """A capture as it reaches :meth:`OpenVINOBackend.run_capture`, and what the graph around the model must do.

    ``height``×``width``×``planes`` (1 = gray, 3 = RGB) of ``dtype`` ("uint8" or "uint16"); ``scale`` maps to 1.0;
    ``pads`` (top, bottom, left, right) pad to the model's multiple, ``reflect`` (else edge replication);
    ``value_range`` and ``model_channels`` are the model's input contract; ``focus_channel`` (≥ 0) asks for the
    focus measure F of that restored channel (0..255 scale), -1 for none; ``clip_input`` clips values above
    ``scale`` (a uint16 capture with a stated bit depth).
    """

    height: int
    width: int
    planes: int
    dtype: str
    scale: float
    pads: tuple[int, int, int, int]
    reflect: bool
    value_range: tuple[float, float]
    model_channels: int
    focus_channel: int = -1
    clip_input: bool = False

    @property
    def padded(self) -> tuple[int, int]:
        top, bottom, left, right = self.pads
        return self.height + top + bottom, self.width + left + right


def _capture_graph(ov: Any, model: Any, spec: CaptureSpec) -> Any:
    """``model`` (NCHW float in ``value_range``) wrapped so that it takes the capture as it is and gives it back.

    In: 1×H×W×planes of the capture's dtype. Out 0: the restored capture, same shape and dtype (clipped, rounded
    half to even like numpy). Out 1 (when ``focus_channel`` ≥ 0): that channel of the cropped model output.
    """
    import openvino.opset13 as ops

    etype = {"uint8": np.uint8, "uint16": np.uint16}[spec.dtype]
    lo, hi = spec.value_range
    f32 = np.float32
    src = model.get_parameters()[0].output(0)
    param = ops.parameter([1, spec.height, spec.width, spec.planes], etype, name="capture")
    x = ops.convert(param, "f32")
    if spec.clip_input:
        x = ops.clamp(x, 0.0, float(spec.scale))
    # unit = x / scale; model input = unit·(hi − lo) + lo, with the transpose to NCHW fused by the CPU plugin
    x = ops.add(ops.multiply(x, ops.constant(f32((hi - lo) / spec.scale))), ops.constant(f32(lo)))
    x = ops.transpose(x, ops.constant(np.array([0, 3, 1, 2], np.int64)))
    if spec.planes == 1 and spec.model_channels == 3:
        x = ops.concat([x, x, x], 1)
    if any(spec.pads):
        top, bottom, left, right = spec.pads
        x = ops.pad(x, ops.constant(np.array([0, 0, top, left], np.int64)),
                    ops.constant(np.array([0, 0, bottom, right], np.int64)), "reflect" if spec.reflect else "edge")
    y = model.results[0].input_value(0)
    for target in list(src.get_target_inputs()):
        target.replace_source_output(x.output(0))
    top, bottom, left, right = spec.pads
    ph, pw = spec.padded
    y = ops.slice(y, ops.constant(np.array([top, left], np.int64)),
                  ops.constant(np.array([ph - bottom, pw - right], np.int64)),
                  ops.constant(np.array([1, 1], np.int64)), ops.constant(np.array([2, 3], np.int64)))
    unit = ops.clamp(ops.multiply(ops.subtract(y, ops.constant(f32(lo))), ops.constant(f32(1.0 / (hi - lo)))),
                     0.0, 1.0)
    img = ops.reduce_mean(unit, ops.constant(np.array([1], np.int64)), True) if spec.planes == 1 and \
        spec.model_channels == 3 else unit
    img = ops.round(ops.multiply(img, ops.constant(f32(spec.scale))), "half_to_even")
    img = ops.transpose(ops.convert(ops.clamp(img, 0.0, float(spec.scale)), etype),
                        ops.constant(np.array([0, 2, 3, 1], np.int64)))
    # Edit the model in place (its parameter and first result keep their identity, which the CPU plugin needs).
    model.results[0].input(0).replace_source_output(img.output(0))
    model.replace_parameter(0, param)
    if spec.focus_channel >= 0:
        model.add_results([ops.result(_focus_plane(ops, y, spec))])  # the model's own output: unclipped
    model.validate_nodes_and_infer_types()
    return model


def _focus_plane(ops: Any, y: Any, spec: CaptureSpec) -> Any:
    """The model's output channel the focus measure F looks at (1×1×H×W, cropped, in the model's value range); F is
    measured on it in numpy. Computing F inside the graph was tried: its five shifted slices cost more there than
    the two subtractions cost in numpy, and taking the plane after the post-processing kept the CPU plugin from
    fusing it."""
    c = spec.focus_channel
    return ops.slice(y, ops.constant(np.array([c], np.int64)), ops.constant(np.array([c + 1], np.int64)),
                     ops.constant(np.array([1], np.int64)), ops.constant(np.array([1], np.int64)))


class OpenVINOBackend:
    """OpenVINO CPU inference.

    Parameters
    ----------
    model : bytes
        IR ``.xml`` text or an ONNX file's bytes.
    weights : bytes, optional
        The IR's ``.bin`` (required for IR, None for ONNX).
    threads : int, optional
        ``INFERENCE_NUM_THREADS``; default lets OpenVINO use every core.
    precision : {"default", "f32", "bf16", "f16"}
        ``INFERENCE_PRECISION_HINT``. ``"default"`` keeps OpenVINO's choice, which on CPUs with BF16 runs an fp32
        model in bf16 (fast; what ships). ``"f32"`` pins full precision (parity tests).
    """

    kind = BackendKind.OPENVINO

    def __init__(
        self,
        model: bytes,
        weights: bytes | None = None,
        *,
        threads: int | None = None,
        precision: str = "default",
        max_shapes: int = 4,
        name: str = "model",
    ) -> None:
        try:
            import openvino as ov
        except ImportError as e:  # pragma: no cover - openvino is a core dependency
            raise BackendError("OpenVINO is not installed; install `openvino` or use backend='onnxruntime'") from e
        if precision not in ("default", "f32", "bf16", "f16"):
            raise BackendError(f"precision={precision!r}; expected 'default', 'f32', 'bf16' or 'f16'")
        self._ov = ov
        self._core = ov.Core()
        self.name = name
        self.precision = precision
        self._config: dict[str, object] = {"PERFORMANCE_HINT": "LATENCY"}
        if threads:
            self._config["INFERENCE_NUM_THREADS"] = int(threads)
        if precision != "default":
            self._config["INFERENCE_PRECISION_HINT"] = precision
        try:
            if weights is not None:
                self._model = self._core.read_model(
                    model=model.decode("utf-8"), weights=ov.Tensor(np.frombuffer(weights, np.uint8).copy())
                )
            else:
                self._model = self._core.read_model(model=model, weights=ov.Tensor(np.empty(0, np.uint8)))
        except Exception as e:
            raise ModelLoadError(f"{name}: OpenVINO cannot read this model ({e})") from e
        if len(self._model.inputs) != 1:
            raise ModelLoadError(f"{name}: expected a model with one input, found {len(self._model.inputs)}")
        self._shape = tuple(
            None if d.is_dynamic else d.get_length() for d in self._model.inputs[0].get_partial_shape()
        )
        self._cache: OrderedDict[tuple[int, ...], _Compiled] = OrderedDict()
        self._capture_cache: OrderedDict[CaptureSpec, _Compiled] = OrderedDict()
        self._max_shapes = max_shapes
        self._lock = threading.Lock()

    def input_shape(self) -> tuple[int | None, ...]:
        return self._shape

    def _compiled_for(self, shape: tuple[int, ...]) -> _Compiled:
        hit = self._cache.get(shape)
        if hit is not None:
            self._cache.move_to_end(shape)
            return hit
        model = self._model.clone()
        if any(d is None for d in self._shape):
            model.reshape({model.inputs[0].any_name: self._ov.PartialShape(list(shape))})
        elif tuple(self._shape) != shape:
            raise BackendError(f"{self.name}: static input shape {self._shape}, got {shape}")
        try:
            compiled = self._core.compile_model(model, "CPU", self._config)
        except Exception as e:
            raise BackendError(f"{self.name}: OpenVINO could not compile for input {shape} ({e})") from e
        entry = _Compiled(compiled, compiled.create_infer_request())
        self._cache[shape] = entry
        if len(self._cache) > self._max_shapes:
            self._cache.popitem(last=False)
        return entry

    def run(self, x: np.ndarray) -> np.ndarray:
        with self._lock:
            entry = self._compiled_for(tuple(x.shape))
            try:
                entry.request.infer({0: x})  # type: ignore[attr-defined]
                return np.array(entry.request.get_output_tensor(0).data, copy=True)  # type: ignore[attr-defined]
            except Exception as e:
                raise BackendError(f"{self.name}: OpenVINO inference failed ({e})") from e

    def _capture_compiled(self, spec: CaptureSpec) -> _Compiled:
        hit = self._capture_cache.get(spec)
        if hit is not None:
            self._capture_cache.move_to_end(spec)
            return hit
        model = self._model.clone()
        ph, pw = spec.padded
        shape = (1, spec.model_channels, ph, pw)
        if any(d is None for d in self._shape):
            model.reshape({model.inputs[0].any_name: self._ov.PartialShape(list(shape))})
        elif tuple(self._shape) != shape:
            raise BackendError(f"{self.name}: static input shape {self._shape}, got {shape}")
        try:
            compiled = self._core.compile_model(_capture_graph(self._ov, model, spec), "CPU", self._config)
        except Exception as e:
            raise BackendError(f"{self.name}: OpenVINO could not compile for a {spec.height}×{spec.width}×"
                               f"{spec.planes} {spec.dtype} capture ({e})") from e
        entry = _Compiled(compiled, compiled.create_infer_request())
        self._capture_cache[spec] = entry
        if len(self._capture_cache) > self._max_shapes:
            self._capture_cache.popitem(last=False)
        return entry

    def run_capture(self, spec: CaptureSpec, image: np.ndarray) -> tuple[np.ndarray, float | None]:
        """Restore a whole capture in one compiled graph (see :class:`CaptureSpec`): the image in the capture's
        dtype (1×H×W×planes) and, when asked, F of the restored focus channel."""
        x = np.ascontiguousarray(image).reshape(1, spec.height, spec.width, spec.planes)
        with self._lock:
            entry = self._capture_compiled(spec)
            req = entry.request
            try:
                req.infer({0: x}, share_inputs=True)  # type: ignore[attr-defined]
                out = np.array(req.get_output_tensor(0).data, copy=True)  # type: ignore[attr-defined]
                plane = req.get_output_tensor(1).data if spec.focus_channel >= 0 else None  # type: ignore[attr-defined]
                # F is quadratic in the plane's scale and blind to its offset (the filter taps sum to 0): F of
                # the model's output plane × (255 / (hi − lo))² is F of the restored plane on the 0..255 scale.
                lo, hi = spec.value_range
                f = focus_energy(plane[0, 0]) * (255.0 / (hi - lo)) ** 2 if plane is not None else None
            except Exception as e:
                raise BackendError(f"{self.name}: OpenVINO inference failed ({e})") from e
        return out, f

    def capture_request(self, spec: CaptureSpec, image: np.ndarray) -> Callable[[], None]:
        """A call that runs the compiled capture graph once more on ``image``, already in its input tensor: the
        model's inference alone, for benchmarks (``bare_p50_ms``)."""
        x = np.ascontiguousarray(image).reshape(1, spec.height, spec.width, spec.planes)
        with self._lock:
            req = self._capture_compiled(spec).request
            req.set_input_tensor(self._ov.Tensor(x))  # type: ignore[attr-defined]
        return req.infer  # type: ignore[attr-defined, no-any-return]

    def model_request(self, x: np.ndarray) -> Callable[[], None]:
        """Like :meth:`capture_request` for the plain model on a ready NCHW float tensor (no graph around it)."""
        with self._lock:
            req = self._compiled_for(tuple(x.shape)).request
            req.set_input_tensor(self._ov.Tensor(np.ascontiguousarray(x)))  # type: ignore[attr-defined]
        return req.infer  # type: ignore[attr-defined, no-any-return]

    def execution_precision(self) -> str:
        """The precision OpenVINO actually runs at (e.g. 'bf16' for an fp32 IR on this CPU)."""
        if not self._cache:
            return "unknown"
        entry = next(iter(self._cache.values()))
        t = entry.compiled.get_property("INFERENCE_PRECISION_HINT")  # type: ignore[attr-defined]
        return {"bf16": "bf16", "f32": "f32", "f16": "f16"}.get(str(getattr(t, "to_string", lambda: t)()), str(t))


class OnnxRuntimeBackend:
    """ONNX Runtime CPU inference of an ONNX model given as bytes (external data is refused)."""

    kind = BackendKind.ONNXRUNTIME

    def __init__(self, model: bytes, *, threads: int | None = None, name: str = "model") -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:  # pragma: no cover - onnxruntime is a core dependency
            raise BackendError("ONNX Runtime is not installed; install `onnxruntime` or use backend='openvino'") from e
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        if threads:
            so.intra_op_num_threads = int(threads)
            so.inter_op_num_threads = 1
        self.name = name
        self.precision = "fp32"
        try:
            self._sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise ModelLoadError(f"{name}: ONNX Runtime cannot load this model ({e})") from e
        inputs = self._sess.get_inputs()
        if len(inputs) != 1:
            raise ModelLoadError(f"{name}: expected a model with one input, found {len(inputs)}")
        self._input = inputs[0].name
        self._shape = tuple(d if isinstance(d, int) else None for d in inputs[0].shape)
        self._lock = threading.Lock()

    def input_shape(self) -> tuple[int | None, ...]:
        return self._shape

    def run(self, x: np.ndarray) -> np.ndarray:
        with self._lock:
            try:
                return np.asarray(self._sess.run(None, {self._input: x})[0])
            except Exception as e:
                raise BackendError(f"{self.name}: ONNX Runtime inference failed ({e})") from e


def open_backend(
    kind: BackendKind | str,
    model: bytes,
    weights: bytes | None = None,
    *,
    is_ir: bool,
    threads: int | None = None,
    precision: str = "default",
    name: str = "model",
) -> Backend:
    """Create a backend of ``kind`` for a model given as bytes (``is_ir``: OpenVINO IR xml + bin)."""
    kind = BackendKind.parse(kind)
    if kind is BackendKind.OPENVINO:
        return OpenVINOBackend(model, weights if is_ir else None, threads=threads, precision=precision, name=name)
    if is_ir:
        raise BackendError(f"{name}: ONNX Runtime cannot run an OpenVINO IR (.xml); give the .onnx file")
    return OnnxRuntimeBackend(model, threads=threads, name=name)


def open_model(
    src: ModelSource,
    *,
    backend: str | BackendKind | None = None,
    threads: int | None = None,
    precision: str = "default",
) -> tuple[Backend, Callable[[], Backend] | None]:
    """Open the file of a model folder that suits the first usable backend (OpenVINO first, ONNX Runtime next).

    Every file is read through ``src.read``, i.e. checked against the manifest's sha256 before a backend parses it.

    Parameters
    ----------
    src : ModelSource
        The model (see :func:`~virtualfocus.edge.models.resolve_model`).
    backend : {"openvino", "onnxruntime"}, optional
        Force one backend (then there is no fallback).
    threads : int, optional
        Inference threads.
    precision : str
        One of :data:`PRECISIONS`: "default" runs the fastest file the model ships; "f32"/"bf16"/"f16" pin
        OpenVINO's execution precision (on full-precision weights); "fp32"/"fp16"/"int8" run exactly that file.

    Returns
    -------
    backend, fallback
        The opened backend, and a callable that opens the other backend's file (None when there is none).

    Raises
    ------
    ModelLoadError
        Unknown precision, tampered file (sha256 mismatch), or no backend could open any file.
    """
    m = src.manifest
    kinds = [BackendKind.parse(backend)] if backend else available_backends()
    if not kinds:
        raise ModelLoadError("neither OpenVINO nor ONNX Runtime is installed; install `virtualfocus` with its core deps")
    if precision not in PRECISIONS:
        raise ModelLoadError(f"precision={precision!r} is not known; expected one of {list(PRECISIONS)}")

    def file_for(kind: BackendKind) -> ModelFile | None:
        if precision in ("int8", "fp16", "fp32"):  # a file precision: run exactly that file
            return m.select(kind.value, precision)
        if precision in ("f32", "bf16", "f16"):  # an execution precision: prefer full-precision weights
            return m.select(kind.value, "fp32") or m.select(kind.value)
        return m.select(kind.value)  # default: the fastest file the model ships

    def build(kind: BackendKind, f: ModelFile) -> Backend:
        is_ir = f.path.endswith(".xml")
        weights = None
        if is_ir:
            bin_name = f.path[: -len(".xml")] + ".bin"
            wf = next((g for g in m.files if g.path == bin_name), None)
            if wf is None:
                raise ModelLoadError(f"{m.folder}: {f.path} has no weights file {bin_name} in the manifest")
            weights = src.read(wf)
        ov_prec = precision if kind is BackendKind.OPENVINO and precision in ("f32", "bf16", "f16") else "default"
        return open_backend(
            kind, src.read(f), weights, is_ir=is_ir, threads=threads, precision=ov_prec, name=f"{src.label}:{f.path}"
        )

    errors: list[str] = []
    for i, kind in enumerate(kinds):
        f = file_for(kind)
        if f is None:
            errors.append(f"no file for {kind.value}")
            continue
        try:
            be = build(kind, f)
        except (ModelLoadError, BackendError) as e:
            if isinstance(e, ModelTampered):
                raise
            errors.append(str(e))
            continue
        fallback = None
        for other in kinds[i + 1 :] if backend is None else []:
            g = file_for(other)
            if g is not None:
                fallback = functools.partial(build, other, g)
                break
        return be, fallback
    raise ModelLoadError(f"{src.origin}: no backend could load it ({'; '.join(errors)})")
