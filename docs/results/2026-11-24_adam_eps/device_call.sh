#!/bin/bash
# Adam-epsilon screen on the CPU organism v3 (cpu-7623d17e23, carried as .carry/orgZ): vanilla and the RL baseline,
# seeds 0-2, 40 steps at the headline's recipe except the named change, evaluation at step -1 and at the end.
# Every run on the H100 machine's CPU, fp32, one torch thread, side by side.
#   bash docs/results/2026-11-24_adam_eps/device_call.sh "TAG:FLAGS;TAG:FLAGS..." [SEEDS] [PARALLEL]
set -u
VARIANTS=$1; SEEDS=${2:-0,1,2}; PAR=${3:-18}
export PYTHONPATH=src PGRPO_THREADS=1 PGRPO_GRADE_WORKERS=2 PYTHONUNBUFFERED=1 CUDA_VISIBLE_DEVICES=
mkdir -p out/screen "$OUT"
jobs=()
IFS=';' read -ra VS <<< "$VARIANTS"
for v in "${VS[@]}"; do
  tag=${v%%:*}; flags=${v#*:}
  for arm in vanilla rl-baseline; do
    for s in ${SEEDS//,/ }; do
      jobs+=("--arm $arm --seed $s --run ${arm}_${tag}_s$s --lr 0.05 $flags")
    done
  done
done
printf '%s\n' "${jobs[@]}" > "$OUT/jobs.txt"
t0=$(date +%s)
printf '%s\n' "${jobs[@]}" | xargs -P "$PAR" -I{} bash -c \
  'timeout 560 python3 scripts/train.py {} --out-dir out/screen --model .carry/orgZ --steps ${STEPS:-40} --eval-every ${STEPS:-40} > out/screen/$(echo {} | awk "{print \$6}").log 2>&1; echo "$(echo {} | awk "{print \$6}") exit $?"' \
  > "$OUT/exits.txt" 2>&1
echo "wall $(( $(date +%s) - t0 )) s" >> "$OUT/exits.txt"
tar czf "$OUT/screen.tgz" --exclude='step_*.jsonl.gz' out/screen
cat "$OUT/exits.txt"
