#!/usr/bin/env bash
# Commit a training run's resumable state to the repository (training-runs/NAME/): config.json, log.csv and the
# last and best checkpoints, overwriting the previous save, so a lost machine loses at most the time since the
# last save. Run it from a loop while training (every hour or less); it commits only that folder.
#
#   scripts/save-training.sh runs/nafnet-w16 nafnet-w16
#
# Resume on any machine with:
#   mkdir -p runs/NAME/checkpoints && cp training-runs/NAME/{config.json,log.csv} runs/NAME/ \
#     && cp training-runs/NAME/*.pt runs/NAME/checkpoints/ && virtualfocus train --out runs/NAME --resume
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:?usage: save-training.sh RUN_DIR NAME}
name=${2:?usage: save-training.sh RUN_DIR NAME}
[[ -f $run/config.json && -f $run/checkpoints/last.pt ]] || { echo "$run: no config.json or checkpoints/last.pt yet" >&2; exit 1; }
dst=training-runs/$name
mkdir -p "$dst"
for f in config.json log.csv; do cp "$run/$f" "$dst/$f.tmp" && mv "$dst/$f.tmp" "$dst/$f"; done
PY=${PY:-.venv/bin/python}
for f in last best; do
  [[ -f $run/checkpoints/$f.pt ]] || continue
  if (( $(du -m "$run/checkpoints/$f.pt" | cut -f1) > 20 )); then
    # too large for the repository with its optimiser state: fp16 weights alone (a resume restarts Adam's moments)
    "$PY" -m virtualfocus.training.checkpoint compact "$run/checkpoints/$f.pt" "$dst/$f.pt.tmp"
    echo "$f.pt: fp16 weights without optimiser state (the full file is over 20 MB)"
  else
    cp "$run/checkpoints/$f.pt" "$dst/$f.pt.tmp"
  fi
  mv "$dst/$f.pt.tmp" "$dst/$f.pt"
done
size=$(du -m "$dst/last.pt" | cut -f1)
(( size <= 20 )) || { echo "$dst/last.pt is ${size} MB; the repository takes files up to 20 MB" >&2; exit 1; }
steps=$(tail -1 "$dst/log.csv" | cut -d, -f1)
git add "$dst"
git commit -q -m "Training state of $name at step $steps (resumable: training-runs/$name)" -- "$dst" && echo "saved $name at step $steps"
