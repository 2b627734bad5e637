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
# A focus-distance classifier run exports the same way (runs/vf-focus-distance:vf-focus-distance) and is named in
# shipped.json's "defocus_estimator"; the one trained so far is too weak to ship (see its export's accuracy).
MODELS=${MODELS:-"runs/vf-fast:vf-fast runs/vf-quality:vf-quality runs/vf-twoshot:vf-twoshot"}
for pair in $MODELS; do
  run=${pair%%:*}
  name=${pair##*:}
  if [[ ! -f $run/config.json ]]; then
    echo "== $name: no training run at $run (scripts/train-models.sh makes it); skipped" >&2
    continue
  fi
  echo "== export $run -> models/$name"
  # fp32 and INT8 only: the FP16-weight IR never ran faster than both here (OpenVINO computes it as bf16 or f32
  # like the fp32 IR) and would add a third copy of the weights to the repository.
  $VF export "$run" --out "models/$name" --overwrite --val-stacks 6 --calib-stacks 8 --latency-runs 50 \
    --precisions fp32,int8
done
# shipped.json: the default, the latency-guard ladder (best quality first) and the two-shot model, for those present.
$PY - <<'PY'
from pathlib import Path
from virtualfocus.edge.manifest import write_json_atomic

root = Path("models")
have = {p.parent.name for p in root.glob("*/manifest.json")}
write_json_atomic(root / "shipped.json", {
    "format": "virtualfocus-shipped/1",
    # vf-quality's INT8 file runs as fast as vf-fast here (benchmarks/latency.py), so the better model is the default.
    "default": "vf-quality" if "vf-quality" in have else "vf-fast",
    "ladder": [n for n in ("vf-quality", "vf-fast") if n in have],
    "two_shot": "vf-twoshot" if "vf-twoshot" in have else None,
    "defocus_estimator": "vf-focus-distance" if "vf-focus-distance" in have else None,
})
PY
if [[ ${REPORTS:-1} != 0 ]]; then
  $PY benchmarks/quality_report.py --cards --stacks "${STACKS:-30}" --semi "${SEMI:-data/semi-bccd}"
  $PY benchmarks/compression_report.py --out benchmarks/compression_report.md
fi
$VF models
