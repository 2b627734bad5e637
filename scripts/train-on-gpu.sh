#!/usr/bin/env bash
# The whole model chain on one CUDA GPU in about nine minutes: randomized training data (all CPU cores), the NAFNet
# full model (bf16 autocast) with the focus-distance classifier beside it on the same GPU, then the runtime's two
# U-Net variants distilled from the full model (compression stage), and compact copies of everything in $RESULTS.
#
#   scripts/train-on-gpu.sh                        # defaults below; IMAGES = the sharp smear fields to use
#   TEACHER_MIN=60 STUDENT_MIN=20 scripts/train-on-gpu.sh    # a longer run on a machine that has the time
#
# The same commands run on a CPU (slowly): every stage takes --device auto. Afterwards, on the machine that ships:
#   unpack the archives into runs/, put nafnet-w32-{best,last}.pt into runs/nafnet-w32/checkpoints/, then
#   virtualfocus export runs/unet-f40-l5 --out models/vf-quality (scripts/ship-models.sh for the reports).
#
# Measured on one H200 with 16 Xeon cores (2026-11-29): 2,070 stacks in 120 s (the CPU part), nafnet-w32 at 13
# steps/s of 32 × 128² under bf16 (3,453 steps in 4.4 minutes), each student ~2,000 steps/min. With a 10-minute
# limit per command the defaults below leave ~1.5 minutes for loading, evaluation and archiving; the first run,
# with a 4.4-minute teacher and 1.5-minute students, ran out while the students were being evaluated.
# A lease copies the working tree (at most 64 MiB): the shipped model files are not needed there and can be moved
# aside for the call; the smear fields travel in an ignored folder (IMAGES=that folder).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
VF=${VF:-virtualfocus}
IMAGES=${IMAGES:-../shared/data/chula-rbc12/Dataset}
RESULTS=${RESULTS:-${OUT:-gpu-results}}
DATA=${DATA:-data/gpu}
JOBS=${JOBS:-$(nproc)}
PER_IMAGE=${PER_IMAGE:-3}
N_SIM=${N_SIM:-200}
TEACHER_MIN=${TEACHER_MIN:-4}
CLASSIFIER_MIN=${CLASSIFIER_MIN:-3}
STUDENT_MIN=${STUDENT_MIN:-1.2}
BATCH=${BATCH:-32}
LOADERS=${LOADERS:-$(( JOBS > 8 ? JOBS - 4 : 1 ))}
LOGS=$RESULTS/logs
mkdir -p "$RESULTS" "$LOGS" runs
log() { echo "[$(date -u +%H:%M:%S)] $*"; }
t0=$(date +%s)

# 1. Data: semi-synthetic stacks from the sharp fields (one process per image chunk) + simulated randomized fields.
log "data: $IMAGES x $PER_IMAGE randomized microscopes, $N_SIM simulated fields, $JOBS processes"
rm -rf "$DATA" && mkdir -p "$DATA"
mapfile -t imgs < <(find "$IMAGES" -maxdepth 1 -type f \( -iname '*.jpg' -o -iname '*.png' -o -iname '*.tif' \) | sort)
(( ${#imgs[@]} > 0 )) || { echo "IMAGES=$IMAGES: no .jpg/.png/.tif images" >&2; exit 2; }
sim_workers=$(( JOBS >= 8 ? JOBS / 4 : 1 ))
semi_jobs=$(( JOBS > sim_workers ? JOBS - sim_workers : 1 ))
for ((k = 0; k < semi_jobs; k++)); do mkdir -p "$DATA/img-$k"; done
for i in "${!imgs[@]}"; do ln -s "$(realpath "${imgs[$i]}")" "$DATA/img-$(( i % semi_jobs ))/"; done
pids=()
for ((k = 0; k < semi_jobs; k++)); do
  $VF semisynth --images "$DATA/img-$k" --out "$DATA/semi-$k" --seed $(( 1000 * k )) --per-image "$PER_IMAGE" \
    --size 192 --randomize > "$LOGS/data-semi-$k.log" 2>&1 &
  pids+=($!)
done
$VF simulate --out "$DATA/sim" --stacks "$N_SIM" --seed 500000 --size 192 --randomize --workers "$sim_workers" \
  > "$LOGS/data-sim.log" 2>&1 &
pids+=($!)
for p in "${pids[@]}"; do wait "$p"; done
cat "$LOGS"/data-*.log && rm -f "$LOGS"/data-*.log
data_args=()
for d in "$DATA"/semi-* "$DATA/sim"; do data_args+=(--data "$d"); done
# the students' pool (held in memory by the compression stage): every fourth stack
mkdir -p "$DATA/distill"
find "$DATA"/semi-* "$DATA/sim" -name '*.tif' | sort | awk 'NR % 4 == 0' | while read -r f; do
  ln -s "$(realpath "$f")" "$DATA/distill/"; ln -s "$(realpath "${f%.tif}.json")" "$DATA/distill/"; done
log "data: $(find "$DATA" -name '*.tif' -not -path '*/distill/*' | wc -l) stacks in $(( $(date +%s) - t0 )) s"

# 2. The full model and the focus-distance classifier, side by side on the GPU.
common=(--no-progress --steps 10000000 --set device=auto --set lr_schedule=cosine --set lr_final=0.05
        --set patience=0 --set val_fraction=0.04 --set offset_range_um=-100,100 --set preload_mb=60000)
log "teacher nafnet-w32: $TEACHER_MIN min, batch $BATCH; classifier: $CLASSIFIER_MIN min"
$VF train nafnet-w32 "${data_args[@]}" --out runs/nafnet-w32 "${common[@]}" --batch-size "$BATCH" --crop 128 \
  --set workers="$LOADERS" --set warmup_steps=300 --set val_every=500 --set save_every=1000 \
  --set max_minutes="$TEACHER_MIN" > "$LOGS/nafnet-w32.log" 2>&1 &
teacher=$!
# 25 signed classes −3…+3 µm; planes further out take the end classes ("at least 3 µm"), so a capture far from
# focus is never read as in focus. Ranked-probability loss: neighbouring classes are near misses.
offsets=$($PY -c "print(','.join(f'{-3 + 0.25 * i:.2f}' for i in range(25)))")
$VF train focus-distance-classifier "${data_args[@]}" --out runs/vf-defocus "${common[@]}" --batch-size 64 --crop 128 \
  --set workers=3 --set offsets_um="$offsets" --set loss=rps --set val_every=500 --set save_every=1000 \
  --set max_minutes="$CLASSIFIER_MIN" > "$LOGS/vf-defocus.log" 2>&1 &
classifier=$!
wait "$teacher" || { log "teacher failed"; tail -20 "$LOGS/nafnet-w32.log"; }
log "teacher done: $(tail -1 "$LOGS/nafnet-w32.log")"

# Compact copies of the full model as soon as it is done: fp16 weights without optimiser state (resumable: Adam's
# moments restart). A GPU lease returns at most 8 files of ≤ 16 MiB: runs are archived, logs too at the end.
for which in best last; do
  [[ ! -f runs/nafnet-w32/checkpoints/$which.pt ]] || \
    $PY -m virtualfocus.training.checkpoint compact "runs/nafnet-w32/checkpoints/$which.pt" "$RESULTS/nafnet-w32-$which.pt"
done
tar -czf "$RESULTS/nafnet-w32-run.tar.gz" runs/nafnet-w32/config.json runs/nafnet-w32/log.csv
# 3. The runtime's variants, distilled from the full model side by side.
pids=()
for recipe in distill-unet-f40-l5 distill-unet-f16-l4; do
  $VF compress --teacher runs/nafnet-w32 --recipe "$recipe" --out "runs/${recipe#distill-}" --data "$DATA/distill" \
    --steps 1000000 --max-minutes "$STUDENT_MIN" --device auto --eval-stacks 1 --eval-size 128 --overwrite > "$LOGS/${recipe#distill-}.log" 2>&1 &
  pids+=($!)
done
wait "$classifier" || log "classifier failed"
for p in "${pids[@]}"; do wait "$p" || log "a student failed"; done
log "students done in $(( $(date +%s) - t0 )) s"

# 4. The students and the classifier as they are (their last.pt repeats best.pt or holds optimiser state).

tar -czf "$RESULTS/runs-small.tar.gz" --exclude=last.pt $(ls -d runs/vf-defocus runs/unet-f16-l4 2>/dev/null) || true
[[ ! -d runs/unet-f40-l5 ]] || tar -czf "$RESULTS/unet-f40-l5.tar.gz" --exclude=last.pt runs/unet-f40-l5
tar -czf "$RESULTS/logs.tar.gz" -C "$RESULTS" logs && rm -rf "$LOGS"
ls -la "$RESULTS"
log "all done in $(( $(date +%s) - t0 )) s"
