"""Hot-path benchmarks of the runtime (pytest-benchmark), saved under benchmarks/results/hot/.

    python benchmarks/hot.py              # run and save
    python benchmarks/hot.py --compare    # run, save and compare with the last saved run (what a change cost)

Any further arguments go to pytest (e.g. ``-k restore``). Figures from a loaded machine: compare runs made
under the same conditions.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STORAGE = ROOT / "benchmarks" / "results" / "hot"


def main(argv: list[str]) -> int:
    args = [str(ROOT / "tests" / "benchmarks_hot"), "--benchmark-only", "--benchmark-autosave",
            f"--benchmark-storage=file://{STORAGE}", "--benchmark-columns=min,median,mean,iqr,rounds", "-q",
            "-p", "no:cacheprovider"]
    rest = list(argv)
    if "--compare" in rest:
        rest.remove("--compare")
        if any(STORAGE.rglob("*.json")):
            args.append("--benchmark-compare")
    return int(pytest.main(args + rest))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
