"""Generate ``benchmarks/compression_report.md`` from exported model folders (see
:mod:`virtualfocus.compression.report`).

    python benchmarks/compression_report.py                      # every folder under models/
    python benchmarks/compression_report.py models/vf-fast /tmp/models --out benchmarks/compression_report.md
"""

from __future__ import annotations

from virtualfocus.compression.report import main

if __name__ == "__main__":
    raise SystemExit(main())
