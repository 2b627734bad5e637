"""The hot-path benchmarks run only on request, apart from the unit tests (a plain ``pytest -q`` skips them)::

    python benchmarks/hot.py                 # = pytest tests/benchmarks_hot --benchmark-only, saved as JSON
    python benchmarks/hot.py --compare       # ... and compared with the last saved run

Results go to ``benchmarks/results/hot/`` (pytest-benchmark's storage), so ``--benchmark-compare`` shows what a
change cost.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("benchmark_only", False) or config.getoption("benchmark_enable", False):
        return
    skip = pytest.mark.skip(reason="hot-path benchmark: run with --benchmark-only (python benchmarks/hot.py)")
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def capture_360() -> np.ndarray:
    import cv2

    rng = np.random.default_rng(0)
    return cv2.GaussianBlur(rng.integers(0, 255, (360, 360, 3), dtype=np.uint8), (0, 0), 3)


@pytest.fixture(scope="module")
def runtime():
    from virtualfocus.edge import FocusRuntime

    with FocusRuntime.load(budget_ms=1e9, ladder=False, warmup=5, warmup_shape=(360, 360)) as rt:
        yield rt
