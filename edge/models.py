"""Finding models: shipped variants by name, model folders and bare ``.xml``/``.onnx`` files.

Shipped variants live in ``models/<name>/`` of the repository (installed as ``virtualfocus.models``), each with a
``manifest.json``. ``models/shipped.json`` names the default, the order of the latency-guard ladder (best quality
first), the two-shot variant and the defocus estimator (a focus-distance classifier the runtime uses to flag
captures outside a model's trusted range; ``null`` when none is shipped)::

    {"format": "virtualfocus-shipped/1", "default": "vf-fast", "ladder": ["vf-quality", "vf-fast"],
     "two_shot": "vf-2shot", "defocus_estimator": "vf-focus-distance", "in_focus_band_um": [-0.2, 0.4]}

``in_focus_band_um`` (optional, with a defocus estimator): captures estimated inside this band are already in focus
and are returned untouched instead of restored (a model can only lose there; see ``FocusRuntime``).

Unknown keys are refused, like in manifests.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ModelLoadError, ModelTampered
from .manifest import InputContract, Manifest, ModelFile, sha256_file

__all__ = ["ModelSource", "Shipped", "models_root", "resolve_model", "shipped"]

SHIPPED_FORMAT = "virtualfocus-shipped/1"


def models_root() -> Path:
    """Folder holding the shipped model folders (``VIRTUALFOCUS_MODELS`` overrides it)."""
    env = os.environ.get("VIRTUALFOCUS_MODELS")
    if env:
        return Path(env)
    import virtualfocus.models as pkg

    return Path(pkg.__file__).resolve().parent


@dataclass(frozen=True)
class Shipped:
    """The contents of ``shipped.json``."""

    default: str
    ladder: tuple[str, ...] = ()
    two_shot: str | None = None
    variants: tuple[str, ...] = field(default_factory=tuple)
    defocus_estimator: str | None = None
    in_focus_band_um: tuple[float, float] | None = None


_SHIPPED_KEYS = ("format", "default", "ladder", "two_shot", "defocus_estimator", "in_focus_band_um")


def _band(index: Path, value: object) -> tuple[float, float] | None:
    if value is None:
        return None
    ok = (isinstance(value, list) and len(value) == 2 and all(isinstance(v, int | float) for v in value)
          and value[0] <= value[1])
    if not ok:
        raise ModelLoadError(f"{index}: in_focus_band_um={value!r}; expected [low, high] in µm with low ≤ high, "
                             "or null")
    return float(value[0]), float(value[1])  # type: ignore[index]


def _folder_name(index: Path, key: str, value: object, *, optional: bool) -> str | None:
    """A model folder name from ``shipped.json`` (``null`` allowed when ``optional``)."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value or "/" in value or "\\" in value or value.startswith("."):
        what = "a model folder name under models/" + (" or null" if optional else "")
        raise ModelLoadError(f"{index}: {key}={value!r}; expected {what}")
    return value


def shipped(root: Path | None = None) -> Shipped:
    """Read ``shipped.json``; every folder with a manifest is listed in ``variants``.

    Raises
    ------
    ModelLoadError
        Missing file, invalid JSON, wrong format, unknown keys, or a value that is not a folder name.
    """
    root = root or models_root()
    index = root / "shipped.json"
    try:
        raw = json.loads(index.read_text())
    except FileNotFoundError as e:
        raise ModelLoadError(f"{index}: missing; no shipped models are installed") from e
    except ValueError as e:
        raise ModelLoadError(f"{index}: not valid JSON ({e})") from e
    if not isinstance(raw, dict):
        raise ModelLoadError(f"{index}: expected a JSON object with keys {list(_SHIPPED_KEYS)}")
    if raw.get("format") != SHIPPED_FORMAT:
        raise ModelLoadError(f"{index}: format {raw.get('format')!r}; expected {SHIPPED_FORMAT!r}")
    unknown = sorted(set(raw) - set(_SHIPPED_KEYS))
    if unknown:
        raise ModelLoadError(f"{index}: unknown key(s) {unknown}; known keys are {list(_SHIPPED_KEYS)}")
    ladder = raw.get("ladder", [])
    if not isinstance(ladder, list):
        raise ModelLoadError(f"{index}: ladder={ladder!r}; expected a list of model folder names")
    variants = tuple(sorted(p.parent.name for p in root.glob("*/manifest.json")))
    return Shipped(
        default=str(_folder_name(index, "default", raw.get("default"), optional=False)),
        ladder=tuple(str(_folder_name(index, "ladder", v, optional=False)) for v in ladder),
        two_shot=_folder_name(index, "two_shot", raw.get("two_shot"), optional=True),
        variants=variants,
        defocus_estimator=_folder_name(index, "defocus_estimator", raw.get("defocus_estimator"), optional=True),
        in_focus_band_um=_band(index, raw.get("in_focus_band_um")),
    )


@dataclass
class ModelSource:
    """A model ready for a backend: its manifest (possibly synthesised for a bare file) and where it came from."""

    label: str
    manifest: Manifest
    origin: Path

    def read(self, f: ModelFile) -> bytes:
        """The bytes of ``f``, checked against the manifest's sha256 (what is verified is what runs)."""
        import hashlib

        path = self.manifest.path_of(f)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise ModelLoadError(f"{path}: cannot read ({e})") from e
        if f.sha256 and hashlib.sha256(data).hexdigest() != f.sha256:
            raise ModelTampered(f"{path}: sha256 does not match the manifest (tampered or truncated); refused")
        if f.bytes and len(data) != f.bytes:
            raise ModelTampered(f"{path}: {len(data)} bytes, manifest says {f.bytes}; refused")
        return data


def _bare_file(path: Path, contract: InputContract | None) -> ModelSource:
    """A model file without a manifest beside it: trust-on-first-use hash, contract from the caller or defaults."""
    if path.suffix == ".xml":
        bin_path = path.with_suffix(".bin")
        if not bin_path.is_file():
            raise ModelLoadError(f"{path}: OpenVINO IR needs its weights file {bin_path.name} beside it")
        files = [
            ModelFile(path.name, sha256_file(path), path.stat().st_size, "openvino", "fp32"),
            ModelFile(bin_path.name, sha256_file(bin_path), bin_path.stat().st_size, "weights", "fp32"),
        ]
    elif path.suffix == ".onnx":
        files = [ModelFile(path.name, sha256_file(path), path.stat().st_size, "onnxruntime", "fp32")]
    else:
        raise ModelLoadError(f"{path}: unsupported model file; expected .xml (OpenVINO IR), .onnx or a model folder")
    # 256 is safe for any U-Net up to 8 levels; pass a contract to pad less.
    contract = contract or InputContract(pad_multiple=256)
    m = Manifest(name=path.stem, architecture="unknown", input=contract, files=files, folder=path.parent)
    return ModelSource(path.stem, m, path)


def resolve_model(model: str | os.PathLike[str] | None, *, contract: InputContract | None = None) -> ModelSource:
    """Find ``model``: None (the shipped default), a shipped variant name, a model folder, or a model file.

    Raises
    ------
    ModelLoadError
        Unknown name (the message lists the shipped ones), missing file, invalid or tampered manifest.
    """
    root = models_root()
    if model is None:
        model = shipped(root).default
    text = os.fspath(model)
    path = Path(text)
    if not path.exists() and "/" not in text and not path.suffix:
        folder = root / text
        if not (folder / "manifest.json").is_file():
            try:
                names = list(shipped(root).variants)
            except ModelLoadError:
                names = []
            raise ModelLoadError(f"model {text!r} is not a shipped variant (shipped: {names}) nor an existing path")
        return ModelSource(text, Manifest.load(folder), folder)
    if path.is_dir():
        return ModelSource(path.name, Manifest.load(path), path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such model file or folder")
    beside = path.parent / "manifest.json"
    if beside.is_file():
        m = Manifest.load(beside)
        listed = [f for f in m.files if f.path == path.name]
        if not listed:
            raise ModelLoadError(f"{path}: not listed in {beside}; refusing to run an unverified file")
        # Keep only the requested file (and its weights) so the runtime runs exactly what was asked for.
        keep = {path.name, path.with_suffix(".bin").name}
        m.files = [f for f in m.files if f.path in keep]
        return ModelSource(m.name, m, path)
    return _bare_file(path, contract)
