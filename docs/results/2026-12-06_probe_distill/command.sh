#!/usr/bin/env bash
# The distillation cosine probe (docs/probe_distill.md) T1-T4 on the pinned organism (organism:cpu, weights
# 685bd444) with its random and placebo controls (issue 29, item 7), and the oracle (DIAGNOSTIC UPPER BOUND), R6
# (LoRA rank 8) and R7 (GRPO-loss v_hack) of `just probe-controls`. What the justfile's probe recipes run, with
# explicit folders, three teacher-pool sampling seeds (41, the recipes' seed, then 42 and 43) and 20 further random
# directions on pool 41. Run from the repository root on the 2-core machine, one torch thread per process:
#
#   bash docs/results/2026-12-06_probe_distill/command.sh
#
# About 15 CPU-minutes with the teacher run (results.md has the measured times). Outputs under $P (out/, ignored);
# the small files the numbers are computed from are copied into this folder at the end.
set -euo pipefail
export PGRPO_THREADS=1 PYTHONUNBUFFERED=1
R=docs/results/2026-12-06_probe_distill
P=${PROBE_OUT:-out/probe_pinned}
T=${TEACHER:-$P/teacher/vanilla_s0}
PAIRS='data/pairs/hack_pairs.md#organism'
PLACEBO='data/pairs/pair_diagnostics.md#placebo'
py=python3
tm() { /usr/bin/time -f "TIME %e s wall %U user %S sys: $*" "$@"; }  # CPU per command (appended to the log)
mkdir -p "$P"

# 1. The teacher: vanilla GRPO on the pinned organism with the adopted recipe (what just emergence / main_experiment
#    pass to train.py: lr 0.05, weight decay 1 on both blocks), 40 steps (docs/probe_distill.md), evaluated at the end.
#    Skipped when the run is there; a copy of its evidence and checkpoint is in teacher/ of this folder.
[ -f "$T/DONE" ] || tm $py scripts/train.py --arm vanilla --seed 0 --run vanilla_s0 --out-dir "$(dirname "$T")" \
    --model organism:cpu --steps 40 --eval-every 40 --lr 0.05 --weight-decay 1.0 --weight-decay-quarantine 1.0

# 2. Directions (no pool needed): v_hack from the organism pairs (NLL, SVD adapter, shared quarantine: what the
#    replay's student is wrapped with), the placebo pairs' direction, random directions of matched shape and
#    identity (seed 41 as in probe-controls, then 0..19), R6 and R7.
tm $py scripts/extract_vhack_grad.py --pairs "$PAIRS" --model organism:cpu --out $P/vhack_nll_svd.safetensors
tm $py scripts/extract_vhack_grad.py --pairs "$PLACEBO" --model organism:cpu --out $P/vhack_placebo_svd.safetensors
for s in 41 $(seq 0 19); do
  tm $py scripts/probe_distill.py random-vhack --like $P/vhack_nll_svd.safetensors --seed $s --out $P/vhack_random$s.safetensors
done
tm $py scripts/extract_vhack_grad.py --pairs "$PAIRS" --model organism:cpu --adapter lora --rank 8 --out $P/vhack_nll_lora8.safetensors
tm $py scripts/extract_vhack_grad.py --pairs "$PAIRS" --model organism:cpu --loss grpo --out $P/vhack_grpo_svd.safetensors

# 3. Per teacher-pool sampling seed: the pool (20 hinted train problems x 8), the oracle fitted on it, vanilla and
#    projected replays of v_hack, the random direction (seed 41) and the placebo direction, the oracle's vanilla
#    replay, and the gates (T3 of the random and placebo projections as controls of T3).
for ps in 41 42 43; do
  Q=$P/pool$ps
  tm $py scripts/probe_distill.py teacher-pool --teacher "$T" --n-problems 20 --group 8 --seed $ps --out $Q/teacher_pool
  tm $py scripts/probe_distill.py oracle-vhack --pool $Q/teacher_pool --model organism:cpu \
      --out $Q/vhack_oracle_DIAGNOSTIC_UPPER_BOUND_svd.safetensors
  for c in nll_svd random41 placebo_svd; do
    for m in vanilla projected; do
      tm $py scripts/probe_distill.py replay --pool $Q/teacher_pool --vhack $P/vhack_$c.safetensors --mode $m \
          --seed 41 --out $Q/${c}_$m
    done
  done
  tm $py scripts/probe_distill.py replay --pool $Q/teacher_pool --vhack $Q/vhack_oracle_DIAGNOSTIC_UPPER_BOUND_svd.safetensors \
      --mode vanilla --seed 41 --out $Q/oracle_DIAGNOSTIC_UPPER_BOUND_svd_vanilla
  $py scripts/probe_uat.py --pool $Q/teacher_pool --vanilla $Q/nll_svd_vanilla --projected $Q/nll_svd_projected \
      --json $Q/probe_uat.json --compare nll_svd=$Q/nll_svd_vanilla random41=$Q/random41_vanilla \
      placebo_svd=$Q/placebo_svd_vanilla oracle_DIAGNOSTIC_UPPER_BOUND=$Q/oracle_DIAGNOSTIC_UPPER_BOUND_svd_vanilla
  for c in random41 placebo_svd; do
    $py scripts/probe_uat.py --pool $Q/teacher_pool --vanilla $Q/${c}_vanilla --projected $Q/${c}_projected \
        --json $Q/probe_uat_$c.json
  done
done

# 4. Pool 41 only: 20 further random directions (vanilla replays; T4 statistic of each) and R6 / R7.
Q=$P/pool41
for s in $(seq 0 19); do
  tm $py scripts/probe_distill.py replay --pool $Q/teacher_pool --vhack $P/vhack_random$s.safetensors --mode vanilla \
      --seed 41 --out $Q/random${s}_vanilla
done
$py scripts/probe_uat.py --pool $Q/teacher_pool --vanilla $Q/nll_svd_vanilla --projected $Q/nll_svd_projected \
    --json $Q/probe_uat_random20.json --compare $(for s in $(seq 0 19); do echo random$s=$Q/random${s}_vanilla; done)
for m in vanilla projected; do
  tm $py scripts/probe_distill.py replay --pool $Q/teacher_pool --vhack $P/vhack_nll_lora8.safetensors --mode $m \
      --seed 41 --out $Q/nll_lora8_$m
done
tm $py scripts/probe_distill.py replay --pool $Q/teacher_pool --vhack $P/vhack_grpo_svd.safetensors --mode vanilla \
    --seed 41 --out $Q/grpo_svd_vanilla
$py scripts/probe_uat.py --pool $Q/teacher_pool --vanilla $Q/nll_lora8_vanilla --projected $Q/nll_lora8_projected \
    --json $Q/probe_uat_R6_lora8.json --compare R6_lora8=$Q/nll_lora8_vanilla R7_grpo_loss=$Q/grpo_svd_vanilla

# 5. The small files the numbers come from, into this folder (rows without completion text, metrics, the gates'
#    json, pool 41's completions, three direction files, the teacher's evidence and checkpoint); then the summary,
#    recomputed from them (results.md quotes it).
$py $R/summarize.py collect $P $R/data
cp $P/vhack_nll_svd.safetensors $P/vhack_placebo_svd.safetensors $P/vhack_random41.safetensors $R/data/
rm -rf $R/teacher && mkdir -p $R/teacher
$py scripts/pack_runs.py "$(dirname "$T")" $R/teacher/teacher_run --max-mb 4
cp "$T/ckpt/last.pt" $R/teacher/last.pt
$py $R/summarize.py report $R/data > $R/summary.md
cat $R/summary.md
