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

The measured sections are typed records, written and read through them (never by key strings): :class:`Quality`
(validation set, scores per path, and the :class:`QualityReport` of ``benchmarks/quality_report.py``),
:class:`Parity` (:class:`ParityCheck` per file, :class:`Int8Verdict` per backend), :class:`Compression`, and
``focus_gain`` as a :class:`~virtualfocus.edge.defocus.FocusGainCalibration`. Each ``from_dict`` rejects unknown
keys, naming the key and the manifest file; ``to_dict`` gives the JSON form (empty fields left out).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .defocus import FocusGainCalibration
from .errors import InputError, ModelLoadError, ModelTampered

__all__ = [
    "FORMAT",
    "TASKS",
    "Compression",
    "InputContract",
    "Int8Verdict",
    "Manifest",
    "ModelFile",
    "Parity",
    "ParityCheck",
    "Quality",
    "QualityReport",
    "sha256_file",
    "write_json_atomic",
]

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


def _strict(cls: type | frozenset[str], data: dict[str, Any], where: str, *, also: str = "") -> dict[str, Any]:
    """``data`` if every key is a field of ``cls`` (or in the set of names); else one line naming the unknown
    key(s) and ``where`` (the manifest file and section) and what is accepted (``also``: what else is)."""
    if not isinstance(data, dict):
        raise ModelLoadError(f"{where}: expected an object, got {type(data).__name__}")
    known = cls if isinstance(cls, frozenset) else {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ModelLoadError(f"{where}: unknown key(s) {unknown}; known keys are {sorted(known)}{also}")
    return data


def _compact(d: dict[str, Any]) -> dict[str, Any]:
    """``d`` without the fields that say nothing (None, empty string or container); False and 0 stay."""
    return {k: v for k, v in d.items() if v is not None and not (isinstance(v, str | dict | list | tuple) and not v)}


def _pair(v: Any) -> tuple[float, float] | None:
    return None if v is None else (float(v[0]), float(v[1]))


@dataclass(frozen=True)
class QualityReport:
    """The headline figures ``benchmarks/quality_report.py --cards`` measures on held-out simulated stacks.

    ``success_mse_08`` / ``success_fpw_08``: % of restored captures within −0.8…0.8 µm no worse than the worst
    sharp-band input (MSE / FPW); ``fr_range``: focus ratio over the levels; ``trusted_defocus_um``: where every
    level reaches the success target; ``deployed``: the same figures for the runtime as shipped (in-focus captures
    returned untouched), when measured; ``failures``: the worst cases shown on the model card.
    """

    trained: bool | None = None
    beats_rl_every_level: bool | None = None
    in_band_psnr_change_min_db: float | None = None
    fr_range: tuple[float, float] | None = None
    trusted_defocus_um: tuple[float, float] | None = None
    success_mse_08: float | None = None
    success_fpw_08: float | None = None
    deployed: QualityReport | None = None
    failures: tuple[dict[str, Any], ...] = ()

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "quality.report") -> QualityReport:
        d = dict(_strict(cls, d, where))
        d["fr_range"] = _pair(d.get("fr_range"))
        d["trusted_defocus_um"] = _pair(d.get("trusted_defocus_um"))
        if d.get("deployed") is not None:
            d["deployed"] = cls.from_dict(d["deployed"], f"{where}.deployed")
        d["failures"] = tuple(dict(f) for f in d.get("failures") or ())
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["fr_range"] = None if self.fr_range is None else list(self.fr_range)
        d["trusted_defocus_um"] = None if self.trusted_defocus_um is None else list(self.trusted_defocus_um)
        d["deployed"] = None if self.deployed is None else self.deployed.to_dict()
        d["failures"] = [dict(f) for f in self.failures]
        return _compact(d)

    @property
    def shown(self) -> QualityReport:
        """The figures a user receives: the runtime as shipped when the report measured it, else the model alone."""
        return self.deployed if self.deployed is not None and self.deployed.success_mse_08 is not None else self


#: Paths whose scores a :class:`Quality` holds besides ``"input"`` (the captures themselves): ``<backend>/<...>``.
MEASURED_BACKENDS = ("onnxruntime", "openvino")


@dataclass(frozen=True)
class Quality:
    """The manifest's ``quality`` section: scores on the fixed validation set, per path, and the quality report.

    ``measured`` maps ``"input"`` (the captures, no model) and every measured path ``"<backend>/<precision>"``
    (e.g. ``"openvino/int8"``) to the scores of :attr:`metrics` (for a restoring model ``psnr``, ``ssim``, ``fr``,
    ``fpw``, ``success_mse``, ``success_fpw``, ``images``; for a defocus model ``accuracy``, ``mae_um`` …); in the
    JSON they sit beside ``validation`` and ``metrics``, as before.
    """

    validation: dict[str, Any] = field(default_factory=dict)
    metrics: str = ""
    measured: dict[str, dict[str, Any]] = field(default_factory=dict)
    report: QualityReport | None = None

    @staticmethod
    def is_path(key: str) -> bool:
        return key == "input" or ("/" in key and key.split("/", 1)[0] in MEASURED_BACKENDS)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "quality") -> Quality:
        if not isinstance(d, dict):
            raise ModelLoadError(f"{where}: expected an object, got {type(d).__name__}")
        own = {k: v for k, v in d.items() if not cls.is_path(k)}
        _strict(frozenset({"validation", "metrics", "report"}), own, where,
                also=f" and the measured paths 'input' and '<backend>/<precision>' for {list(MEASURED_BACKENDS)}")
        measured = {k: dict(v) for k, v in d.items() if cls.is_path(k)}
        report = own.get("report")
        return cls(validation=dict(own.get("validation") or {}), metrics=str(own.get("metrics") or ""),
                   measured=measured, report=None if report is None else QualityReport.from_dict(report, f"{where}.report"))

    def to_dict(self) -> dict[str, Any]:
        return _compact({"validation": dict(self.validation), "metrics": self.metrics, **self.measured,
                         "report": None if self.report is None else self.report.to_dict()})

    def scores(self, path: str) -> dict[str, Any] | None:
        """Scores of ``path`` (``"input"`` or ``"<backend>/<precision>"``), None when not measured."""
        return self.measured.get(path)

    def with_scores(self, path: str, scores: dict[str, Any]) -> Quality:
        if not self.is_path(path):
            raise InputError(f"quality: {path!r} is not a measured path ('input' or '<backend>/<precision>')")
        return replace(self, measured={**self.measured, path: dict(scores)})



@dataclass(frozen=True)
class ParityCheck:
    """One exported file against torch: worst relative error over the parity inputs (``tolerance`` None: reported,
    not judged)."""

    candidate: str
    rel_error: float
    per_input: dict[str, float] = field(default_factory=dict)
    tolerance: float | None = None
    passed: bool | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "parity") -> ParityCheck:
        return cls(**_strict(cls, d, where))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Int8Verdict:
    """An INT8 file against its float sibling on the validation set, and the limits it was judged by."""

    psnr_drop_db: float
    fr_change: float
    max_psnr_drop_db: float
    max_fr_change: float
    passed: bool

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "parity.int8") -> Int8Verdict:
        return cls(**_strict(cls, d, where))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_PARITY_KEYS = frozenset({"method", "inputs", "float", "dynamic_shape", "note", "passed", "failed", "int8"})


@dataclass(frozen=True)
class Parity:
    """The manifest's ``parity`` section: the exported files against torch (``float``: the float files at the
    export size, ``dynamic_shape``: the dynamic files at a second size) and the INT8 verdicts per backend.
    ``passed``: every judged check passed; ``failed`` names those that did not."""

    method: str = ""
    inputs: dict[str, tuple[int, ...]] = field(default_factory=dict)
    float_checks: dict[str, ParityCheck] = field(default_factory=dict)  # "float" in the JSON
    dynamic_shape: dict[str, ParityCheck] = field(default_factory=dict)
    note: str = ""
    passed: bool | None = None
    failed: tuple[str, ...] = ()
    int8: dict[str, Int8Verdict] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "parity") -> Parity:
        d = dict(_strict(_PARITY_KEYS, d, where))
        checks = {}
        for key in ("float", "dynamic_shape"):
            section = d.get(key) or {}
            if not isinstance(section, dict):
                raise ModelLoadError(f"{where}.{key}: expected an object, got {type(section).__name__}")
            checks[key] = {k: ParityCheck.from_dict(v, f"{where}.{key}.{k}") for k, v in section.items()}
        return cls(method=str(d.get("method") or ""),
                   inputs={k: tuple(int(n) for n in v) for k, v in (d.get("inputs") or {}).items()},
                   float_checks=checks["float"], dynamic_shape=checks["dynamic_shape"], note=str(d.get("note") or ""),
                   passed=d.get("passed"), failed=tuple(d.get("failed") or ()),
                   int8={k: Int8Verdict.from_dict(v, f"{where}.int8.{k}") for k, v in (d.get("int8") or {}).items()})

    def to_dict(self) -> dict[str, Any]:
        return _compact({
            "method": self.method, "inputs": {k: list(v) for k, v in self.inputs.items()},
            "float": {k: c.to_dict() for k, c in self.float_checks.items()},
            "dynamic_shape": {k: c.to_dict() for k, c in self.dynamic_shape.items()},
            "note": self.note, "passed": self.passed, "failed": list(self.failed),
            "int8": {k: v.to_dict() for k, v in self.int8.items()},
        })



@dataclass(frozen=True)
class Compression:
    """The manifest's ``compression`` section: size and cost (``params``, ``gflops``/``gmacs`` at ``stats_size``),
    the static file, the execution precision of each timed path, the latency measurement's size and threads, the
    INT8 calibration set, one record per INT8 backend (tool, settings, ignored scope, attempts, verdict), and the
    files measured but not shipped with the reason. A defocus model adds ``crops_per_estimate_360`` and
    ``estimate_size``."""

    params: int = 0
    gflops: float = 0.0
    gmacs: float = 0.0
    stats_size: int | None = None
    static_file: dict[str, Any] = field(default_factory=dict)
    execution_precision: dict[str, str] = field(default_factory=dict)
    latency_size: tuple[int, int] | None = None
    latency_threads: int | None = None
    calibration: dict[str, Any] = field(default_factory=dict)
    int8: dict[str, dict[str, Any]] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)
    crops_per_estimate_360: int | None = None
    estimate_size: tuple[int, int] | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "compression") -> Compression:
        d = dict(_strict(cls, d, where))
        for key in ("latency_size", "estimate_size"):
            if d.get(key) is not None:
                d[key] = (int(d[key][0]), int(d[key][1]))
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        for key in ("latency_size", "estimate_size"):
            d[key] = None if d[key] is None else list(d[key])
        return _compact(d)


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
    quality: Quality = field(default_factory=Quality)
    trusted_defocus_um: tuple[float, float] | None = None
    training: dict[str, Any] = field(default_factory=dict)
    compression: Compression = field(default_factory=Compression)
    parity: Parity = field(default_factory=Parity)  # exported files vs torch (virtualfocus.export.parity)
    created: str = ""
    description: str = ""
    task: str = "restore"
    classes_um: tuple[float, ...] = ()  # task "defocus": the signed class centres (µm) the logits stand for
    # Restoration gain F(restored)/F(capture) per focus level, and the in-focus pass-through threshold
    focus_gain: FocusGainCalibration | None = None
    # The same per tile of a focus map (virtualfocus.edge.focusmap; written by benchmarks/focus_map.py --calibrate)
    focus_map_gain: FocusGainCalibration | None = None
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
            for key, record in (("quality", Quality), ("parity", Parity), ("compression", Compression)):
                if key in raw:
                    raw[key] = record.from_dict(raw[key], f"{path}: {key}")
            for key in ("focus_gain", "focus_map_gain"):
                if raw.get(key) is not None:
                    try:
                        raw[key] = FocusGainCalibration.from_dict(raw[key])
                    except InputError as e:
                        raise ModelLoadError(f"{path}: {key}: {e}") from e
            m = cls(**raw, folder=path.parent)
        except (KeyError, TypeError, ValueError) as e:
            raise ModelLoadError(f"{path}: incomplete manifest ({e})") from e
        m.check_task(str(path))
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
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "folder"}
        d["input"] = asdict(self.input)
        d["files"] = [asdict(f) for f in self.files]
        d["spec"], d["training"] = dict(self.spec), dict(self.training)
        d["latency_ms"] = {k: dict(v) for k, v in self.latency_ms.items()}
        d["quality"], d["parity"] = self.quality.to_dict(), self.parity.to_dict()
        d["compression"] = self.compression.to_dict()
        d["focus_gain"] = None if self.focus_gain is None else self.focus_gain.to_dict()
        if self.focus_map_gain is None:
            d.pop("focus_map_gain")
        else:
            d["focus_map_gain"] = self.focus_map_gain.to_dict()
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
