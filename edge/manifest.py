"""Model manifests: the config that travels with every exported model.

A model folder (``models/<name>/``) holds the model files and a ``manifest.json``::

    {
      "format": "virtualfocus-model/1",
      "name": "vf-fast",                      # the variant name users say
      "architecture": "pix2pix-dist-fast",    # registry name in virtualfocus.training
      "spec": {...},                          # the registry spec's fields (filters, levels, decoder ...)
      "params": 390000, "gflops_360": 1.8,    # size and cost of one 360×360 frame
      "trained": true,                        # false for an untrained export (labelled as such everywhere)
      "input": {...},                         # InputContract below
      "files": [{"path": "model.xml", "sha256": "...", "bytes": 123, "backend": "openvino",
                 "precision": "int8", "shape": "dynamic"}, ...],
      "latency_ms": {"openvino/int8": {"p50": 3.1, "p95": 3.6}, ...},
      "quality": {...},                       # measured on the fixed simulated validation set
      "trusted_defocus_um": [-0.8, 0.8],      # range of defocus where the output can be trusted
      "task": "restore",                      # "restore" (image → image) or "defocus" (a focus-distance
      "classes_um": [],                       #   classifier: logits over these signed class centres, µm)
      "training": {...},                      # data, recipe, iterations, run id
      "compression": {...},                   # params/GFLOPs, INT8 calibration, ignored scopes, dropped files
      "parity": {...},                        # exported files vs torch (relative error, INT8 quality drop)
      "created": "2026-11-21T12:00:00Z"
    }

Unknown keys are rejected on load (a typo must not silently change behaviour), and every listed file's sha256 is
verified before a backend ever parses it. ``task`` and ``classes_um`` are optional (manifests written before they
existed load as restoring models): a ``"defocus"`` model maps a ``1×3×S×S`` crop (``input.static_size``) to one
logit per entry of ``classes_um`` (see :class:`~virtualfocus.edge.classifier.DefocusClassifier`).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .defocus import FocusGainCalibration
from .errors import InputError, ModelLoadError, ModelTampered

__all__ = ["FORMAT", "TASKS", "InputContract", "Manifest", "ModelFile", "sha256_file", "write_json_atomic"]

FORMAT = "virtualfocus-model/1"

#: What a model folder does: restore captures (image → image) or estimate their defocus (crop → class logits).
TASKS = ("restore", "defocus")


def sha256_file(path: str | os.PathLike[str], *, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> None:
    """Write JSON to ``path`` through a temp file in the same folder and a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o644)  # mkstemp creates 0600; outputs are ordinary shared files
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2, sort_keys=False)
            fh.write("\n")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _strict(cls: type, data: dict[str, Any], where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ModelLoadError(f"{where}: expected an object, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ModelLoadError(f"{where}: unknown key(s) {unknown}; known keys are {sorted(known)}")
    return data


@dataclass(frozen=True)
class InputContract:
    """What a model expects and returns.

    The runtime converts any capture to this contract (see :mod:`virtualfocus.edge.preprocess`): ``channels``
    planes (RGB order when 3), NCHW float32 scaled to ``value_range``, height and width padded to a multiple of
    ``pad_multiple`` (reflect padding). ``inputs`` is 2 for two-shot models, which take the captures concatenated
    along channels. ``static_size`` is set for files exported with a fixed spatial size.
    """

    channels: int = 3
    inputs: int = 1
    layout: str = "NCHW"
    dtype: str = "float32"
    value_range: tuple[float, float] = (-1.0, 1.0)
    pad_multiple: int = 16
    min_size: int = 32
    static_size: tuple[int, int] | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "input") -> InputContract:
        d = dict(_strict(cls, d, where))
        if "value_range" in d:
            d["value_range"] = tuple(d["value_range"])
        if d.get("static_size") is not None:
            d["static_size"] = tuple(d["static_size"])
        c = cls(**d)
        if c.channels not in (1, 3) or c.inputs not in (1, 2) or c.pad_multiple < 1 or c.layout != "NCHW":
            raise ModelLoadError(f"{where}: unsupported input contract {c}")
        return c


@dataclass(frozen=True)
class ModelFile:
    """One file of a model folder. ``backend``: openvino|onnxruntime|weights; ``precision``: fp32|fp16|int8."""

    path: str
    sha256: str
    bytes: int
    backend: str
    precision: str = "fp32"
    shape: str = "dynamic"

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "files") -> ModelFile:
        return cls(**_strict(cls, d, where))


@dataclass
class Manifest:
    """The manifest of one exported model; see the module docstring for the file layout."""

    name: str
    architecture: str
    input: InputContract
    files: list[ModelFile]
    trained: bool = False
    spec: dict[str, Any] = field(default_factory=dict)
    params: int = 0
    gflops_360: float = 0.0
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    quality: dict[str, Any] = field(default_factory=dict)
    trusted_defocus_um: tuple[float, float] | None = None
    training: dict[str, Any] = field(default_factory=dict)
    compression: dict[str, Any] = field(default_factory=dict)
    parity: dict[str, Any] = field(default_factory=dict)  # exported files vs torch (virtualfocus.export.parity)
    created: str = ""
    description: str = ""
    task: str = "restore"
    classes_um: tuple[float, ...] = ()  # task "defocus": the signed class centres (µm) the logits stand for
    # Restoration gain F(restored)/F(capture) per focus level (virtualfocus.edge.defocus.FocusGainCalibration):
    # {"levels_um": [...], "gain": [...], "in_focus_below": float | None, "stacks": int}
    focus_gain: dict[str, Any] | None = None
    # The same per tile of a focus map (virtualfocus.edge.focusmap; written by benchmarks/focus_map.py --calibrate).
    focus_map_gain: dict[str, Any] | None = None
    format: str = FORMAT
    folder: Path | None = field(default=None, compare=False)

    # -- reading -----------------------------------------------------------------------------------------------
    @classmethod
    def load(cls, folder_or_file: str | os.PathLike[str], *, verify: bool = True) -> Manifest:
        """Read ``manifest.json`` from a model folder (or the file itself) and, by default, verify every file.

        Raises
        ------
        ModelLoadError
            Missing/invalid JSON, unknown keys, unsupported format, a listed file missing, or a sha256 mismatch.
        """
        p = Path(folder_or_file)
        path = p / "manifest.json" if p.is_dir() else p
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError as e:
            raise ModelLoadError(f"{path}: no manifest.json; a model folder needs one (see `virtualfocus export`)") from e
        except (OSError, ValueError) as e:
            raise ModelLoadError(f"{path}: manifest is not valid JSON ({e})") from e
        raw = dict(_strict(cls, raw, str(path)))
        raw.pop("folder", None)
        if raw.get("format") != FORMAT:
            raise ModelLoadError(f"{path}: format {raw.get('format')!r} is not supported; expected {FORMAT!r}")
        try:
            raw["input"] = InputContract.from_dict(raw["input"], f"{path}: input")
            raw["files"] = [ModelFile.from_dict(f, f"{path}: files") for f in raw["files"]]
            if raw.get("trusted_defocus_um") is not None:
                raw["trusted_defocus_um"] = tuple(raw["trusted_defocus_um"])
            if "classes_um" in raw:
                raw["classes_um"] = tuple(float(c) for c in raw["classes_um"])
            m = cls(**raw, folder=path.parent)
        except (KeyError, TypeError, ValueError) as e:
            raise ModelLoadError(f"{path}: incomplete manifest ({e})") from e
        m.check_task(str(path))
        for key in ("focus_gain", "focus_map_gain"):
            if getattr(m, key) is not None:
                try:
                    FocusGainCalibration.from_dict(getattr(m, key))
                except InputError as e:
                    raise ModelLoadError(f"{path}: {key}: {e}") from e
        if verify:
            m.verify()
        return m

    def check_task(self, where: str = "manifest") -> None:
        """Check ``task`` and ``classes_um`` (a defocus model needs ≥ 2 increasing class centres and a static size).

        Raises
        ------
        ModelLoadError
            Naming ``where`` and what is accepted.
        """
        if self.task not in TASKS:
            raise ModelLoadError(f"{where}: task={self.task!r}; expected one of {list(TASKS)}")
        c = list(self.classes_um)
        if self.task == "defocus":
            if len(c) < 2 or c != sorted(c) or len(set(c)) != len(c):
                raise ModelLoadError(f"{where}: classes_um={c}; a defocus model needs ≥ 2 increasing class centres (µm)")
            if self.input.static_size is None:
                raise ModelLoadError(f"{where}: a defocus model needs input.static_size (its crop, e.g. [128, 128])")
        elif c:
            raise ModelLoadError(f"{where}: classes_um is only meaningful for task 'defocus', not {self.task!r}")

    def path_of(self, f: ModelFile) -> Path:
        """Absolute path of a listed file, confined to the model folder."""
        assert self.folder is not None
        root = self.folder.resolve()
        target = (root / f.path).resolve()
        if root != target and root not in target.parents:
            raise ModelLoadError(f"{self.folder}: file {f.path!r} points outside the model folder; refused")
        return target

    def verify(self) -> None:
        """Check that every listed file exists, has the recorded size, and hashes to the recorded sha256."""
        for f in self.files:
            target = self.path_of(f)
            if not target.is_file():
                raise ModelLoadError(f"{target}: listed in the manifest but missing")
            size = target.stat().st_size
            if size != f.bytes:
                raise ModelTampered(f"{target}: {size} bytes, manifest says {f.bytes} (truncated or replaced)")
            digest = sha256_file(target)
            if digest != f.sha256:
                raise ModelTampered(f"{target}: sha256 {digest[:12]}… does not match the manifest ({f.sha256[:12]}…)")

    def select(self, backend: str, precision: str | None = None) -> ModelFile | None:
        """The file to run for ``backend`` (``precision`` None = the fastest shipped: int8, fp16, fp32)."""
        order = [precision] if precision else ["int8", "fp16", "fp32"]
        wanted_ext = ".xml" if backend == "openvino" else ".onnx"
        for prec in order:
            for f in self.files:
                if f.backend == backend and f.precision == prec and f.path.endswith(wanted_ext):
                    return f
        if backend == "openvino" and precision is None:
            # OpenVINO also reads ONNX directly.
            return self.select("onnxruntime")
        return None

    # -- writing -----------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("folder")
        d["input"] = asdict(self.input)
        return d

    def save(self, folder: str | os.PathLike[str] | None = None) -> Path:
        """Write ``manifest.json`` atomically into ``folder`` (default: the folder it was loaded from)."""
        target = Path(folder) if folder is not None else self.folder
        if target is None:
            raise ModelLoadError("Manifest.save: no folder given")
        write_json_atomic(target / "manifest.json", self.to_dict())
        return target / "manifest.json"

    @staticmethod
    def describe_file(folder: Path, rel: str, *, backend: str, precision: str, shape: str) -> ModelFile:
        """Build a :class:`ModelFile` entry by hashing ``folder/rel``."""
        p = folder / rel
        return ModelFile(path=rel, sha256=sha256_file(p), bytes=p.stat().st_size, backend=backend,
                         precision=precision, shape=shape)
