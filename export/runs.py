"""Loading a training or compression run for export: the one run loader is
:func:`virtualfocus.training.checkpoint.load_run`; these names import it (and torch) only when called, so that
``import virtualfocus.export`` stays torch-free.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from virtualfocus.training.checkpoint import LoadedRun

__all__ = ["fit_to_state_dict", "load_run_model"]


def fit_to_state_dict(module: Any, state: dict[str, Any]) -> Any:
    """See :func:`virtualfocus.training.checkpoint.fit_to_state_dict` (pruned weights into a spec's network)."""
    from virtualfocus.training.checkpoint import fit_to_state_dict as fit

    return fit(module, state)


def load_run_model(run_dir: str | os.PathLike[str], *, which: str = "best") -> LoadedRun:
    """See :func:`virtualfocus.training.checkpoint.load_run`."""
    from virtualfocus.training.checkpoint import load_run

    return load_run(run_dir, which=which)
