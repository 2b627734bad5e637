"""What :meth:`FocusRuntime.load <virtualfocus.edge.runtime.FocusRuntime.load>` loads: the ladder of restoring
engines, the defocus estimator and the in-focus band (each resolved from the caller's options and ``shipped.json``)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from .classifier import DefocusClassifier
from .defocus import DefocusEstimator
from .engine import ModelEngine, engine_from_source
from .errors import BackendError, InputError, ModelLoadError
from .manifest import InputContract
from .models import resolve_model, shipped

__all__ = ["in_focus_band", "load_estimator", "load_ladder"]

log = logging.getLogger("virtualfocus")


def load_ladder(model: str | os.PathLike[str] | None, *, ladder: bool | Sequence[str], fallback: bool,
                 contract: InputContract | None, backend: str | None, threads: int | None, precision: str,
                 max_tile: int) -> list[ModelEngine]:
    """The engines of ``FocusRuntime.load``'s ladder, best first (see there)."""
    names: list[str | os.PathLike[str] | None] = [model]
    if ladder is not False:
        try:
            ship = shipped()
            order = list(ship.ladder)
        except ModelLoadError:
            ship, order = None, []
        if isinstance(ladder, Sequence) and not isinstance(ladder, str):
            names += list(ladder)
        else:
            first = model if model is not None else (ship.default if ship else None)
            if isinstance(first, str) and first in order:
                names += order[order.index(first) + 1 :]
    engines: list[ModelEngine] = []
    for i, name in enumerate(names):
        try:
            src = resolve_model(name, contract=contract)
            engines.append(engine_from_source(src, backend=backend, threads=threads, precision=precision,
                                              max_tile=max_tile, overlap=32))
        except ModelLoadError as e:
            if i == 0 and not fallback:
                raise
            log.warning("virtualfocus: could not load %s (%s); %s", name, e,
                        "using the next variant" if i == 0 else "dropping this rung")
    if not engines:
        raise ModelLoadError(f"no variant of {names} could be loaded; see the warnings above")
    return engines


def in_focus_band(value: Any, estimator: DefocusEstimator | None, spec: Any) -> tuple[float, float] | None:
    """Resolve ``FocusRuntime.load(in_focus_band_um=...)``: "auto" takes shipped.json's band with the shipped
    estimator only."""
    if not isinstance(value, str):
        return value  # type: ignore[no-any-return]
    if value != "auto":
        raise InputError(f"in_focus_band_um={value!r}; expected 'auto', None or (low, high) in µm")
    if estimator is None or not (isinstance(spec, str) and spec == "auto"):
        return None
    try:
        return shipped().in_focus_band_um
    except ModelLoadError:
        return None


def load_estimator(spec: Any, *, backend: str | None, threads: int | None, precision: str) -> DefocusEstimator | None:
    """Resolve ``FocusRuntime.load(defocus_estimator=...)`` (see there)."""
    if spec is None or spec is False:
        return None
    # The estimator runs its own full-precision file; only an OpenVINO execution hint carries over.
    prec = precision if precision in ("f32", "bf16", "f16") else "default"
    if isinstance(spec, str) and spec == "auto":
        try:
            name = shipped().defocus_estimator
        except ModelLoadError:
            return None
        if name is None:
            return None
        try:
            return DefocusClassifier.load(name, backend=backend, threads=threads, precision=prec)
        except (ModelLoadError, BackendError) as e:
            log.warning("virtualfocus: could not load the shipped defocus estimator %s (%s); captures are not checked "
                        "against the trusted range", name, e)
            return None
    if isinstance(spec, (str, os.PathLike)):
        return DefocusClassifier.load(spec, backend=backend, threads=threads, precision=prec)
    if callable(getattr(spec, "estimate", None)):
        return spec  # type: ignore[no-any-return]
    raise InputError(f"defocus_estimator={spec!r}: expected 'auto', None, False, a defocus model folder, or an object "
                     "with estimate(image, key=...)")
