#!/usr/bin/env bash
# Ship trained models: export each training run into models/<name>/ (ONNX, OpenVINO IR, INT8 where it pays,
# manifest with hashes, latency and quality), then regenerate the quality report, the model cards and the
# compression report. Run on a quiet machine: the manifests record measured latency.
#
#   scripts/ship-models.sh                                   # every shipped model from its run (train-models.sh)
#   MODELS="runs/other:vf-x" scripts/ship-models.sh          # one run -> models/vf-x
#   REPORTS=0 scripts/ship-models.sh                         # export only
set -euo pipefail
cd "$(dirname "$0")/.."
VF=${VF:-.venv/bin/virtualfocus}
PY=${PY:-.venv/bin/python}
MODELS=${MODELS:-"runs/vf-fast:vf-fast runs/vf-quality:vf-quality runs/vf-twoshot:vf-twoshot runs/vf-focus-distance:vf-focus-distance"}
for pair in $MODELS; do
  run=${pair%%:*}
  name=${pair##*:}
  if [[ ! -f $run/config.json ]]; then
    echo "== $name: no training run at $run (scripts/train-models.sh makes it); skipped" >&2
    continue
  fi
  echo "== export $run -> models/$name"
  $VF export "$run" --out "models/$name" --overwrite --val-stacks 6 --calib-stacks 8 --latency-runs 50
done
if [[ ${REPORTS:-1} != 0 ]]; then
  $PY benchmarks/quality_report.py --cards --stacks "${STACKS:-30}" --semi "${SEMI:-data/semi-bccd}"
  $PY benchmarks/compression_report.py --out benchmarks/compression_report.md
fi
$VF models
