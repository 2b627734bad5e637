"""The latency guard: a rolling p95 held to the per-frame budget (see :class:`~virtualfocus.edge.runtime.FocusRuntime`)."""

from __future__ import annotations

from collections import deque

import numpy as np

from .errors import InputError

__all__ = ["LatencyGuard"]


class LatencyGuard:
    """Rolling p95 over the last ``window`` frames against ``budget_ms``.

    :meth:`record` returns True when the running rung should step down. After ``probe_after`` frames on a lower
    rung :meth:`should_probe` asks to try the rung above again; each failed probe doubles that wait.
    """

    def __init__(self, budget_ms: float, *, window: int = 50, min_samples: int = 10, probe_after: int = 300) -> None:
        if not budget_ms > 0:
            raise InputError(f"budget_ms={budget_ms}: must be a positive number of milliseconds")
        self.budget_ms = float(budget_ms)
        self.window = window
        self.min_samples = min_samples
        self._samples: deque[float] = deque(maxlen=window)
        self._probe_after = probe_after
        self._since_step = 0
        self._next_probe = probe_after

    def p95(self) -> float:
        return float(np.percentile(np.fromiter(self._samples, float), 95)) if self._samples else 0.0

    def p50(self) -> float:
        return float(np.percentile(np.fromiter(self._samples, float), 50)) if self._samples else 0.0

    @property
    def full(self) -> bool:
        """Whether a whole window has been recorded since the last reset."""
        return len(self._samples) >= self.window

    def record(self, ms: float) -> bool:
        self._samples.append(ms)
        self._since_step += 1
        return len(self._samples) >= self.min_samples and self.p95() > self.budget_ms

    def reset(self) -> None:
        self._samples.clear()
        self._since_step = 0

    def should_probe(self) -> bool:
        return self._since_step >= self._next_probe

    def probe_failed(self) -> None:
        self._next_probe = min(self._next_probe * 2, 100_000)

    def probe_succeeded(self) -> None:
        self._next_probe = self._probe_after
