#!/usr/bin/env bash
# Ship trained models: export each training run into models/<name>/ (ONNX, OpenVINO IR, INT8 where it pays,
# manifest with hashes, latency and quality), then regenerate the quality report, the model cards and the
# compression report. Run on a quiet machine: the manifests record measured latency.
#
#   scripts/ship-models.sh                  # default: runs/vf-fast-v3 -> models/vf-fast
#   RUN=runs/other NAME=vf-x scripts/ship-models.sh
set -euo pipefail
cd "$(dirname "$0")/.."
VF=${VF:-.venv/bin/virtualfocus}
PY=${PY:-.venv/bin/python}
RUN=${RUN:-runs/vf-fast-v3}
NAME=${NAME:-vf-fast}
$VF export "$RUN" --out "models/$NAME" --overwrite --val-stacks 6 --calib-stacks 8 --latency-runs 50
$PY benchmarks/quality_report.py --cards --stacks "${STACKS:-40}" ${SEMI:+--semi "$SEMI"}
$PY benchmarks/compression_report.py --out benchmarks/compression_report.md
$VF models
