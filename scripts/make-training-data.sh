#!/usr/bin/env bash
# Training data for the shipped models: simulated z-stacks plus semi-synthetic stacks from real sharp smear
# fields (../shared/data, MIT-licensed; not needed by the product or its tests). Deterministic by seed.
set -euo pipefail
cd "$(dirname "$0")/.."
VF=${VF:-.venv/bin/virtualfocus}
SHARED=${SHARED:-../shared/data}
OUT=${OUT:-data}
N_SIM=${N_SIM:-400}
N_SEMI=${N_SEMI:-240}
$VF simulate --out "$OUT/sim-train" --stacks "$N_SIM" --seed 0 --workers 2
$VF simulate --out "$OUT/sim-test" --stacks 60 --seed 900000 --workers 2
$VF semisynth --images "$SHARED/chula-rbc12/Dataset" --out "$OUT/semi-chula" --seed 0 --limit "$N_SEMI"
$VF semisynth --images "$SHARED/bccd/BCCD/JPEGImages" --out "$OUT/semi-bccd" --seed 1 --limit 60
# Randomized microscopes (objective, pixel size, condenser, aberrations, specimen phase, stain, camera, noise, JPEG
# per stack; virtualfocus.simulation.randomize): the data of the NAFNet full model. Chula fields only (BCCD stays
# held out for the evaluation suite); two stacks per field with different microscopes, plus simulated fields.
$VF semisynth --images "$SHARED/chula-rbc12/Dataset" --out "$OUT/rand-train" --seed 0 --per-image 2 --size 192 --randomize
$VF simulate --out "$OUT/rand-train" --stacks 150 --seed 500000 --size 192 --randomize --workers 2
echo "training data ready in $OUT/"
