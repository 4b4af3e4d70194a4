#!/bin/bash
# One device call after device_build.sh (its out/cand folders are still on the warm machine): the emergence screen
# of the five candidates on the GPU machine's CPU (vanilla seeds 0,1 and rl-baseline seed 0, 60 steps, evaluated at
# step -1 and 60, one torch thread and 2 grade workers each, all side by side), plus a 10-step vanilla run (seed 0,
# no evaluation) on each candidate for the cross-machine drift check. Returns the candidates' folders, every run's
# step logs and eval files, and the logs.
#   bash docs/results/2026-12-06_organisms/device_emergence.sh
set -u
export PYTHONPATH=src PGRPO_THREADS=1 PGRPO_GRADE_WORKERS=2 PYTHONUNBUFFERED=1 CUDA_VISIBLE_DEVICES=
mkdir -p out/logs out/em
for d in out/cand/cpu-*; do
  k=$(basename $d)
  timeout 520 python3 scripts/emergence.py --model $d --arms vanilla --seeds 0,1 --runs out/em/$k > out/logs/em_v_$k.log 2>&1 &
  timeout 520 python3 scripts/emergence.py --model $d --arms rl-baseline --seeds 0 --runs out/em/$k > out/logs/em_r_$k.log 2>&1 &
  timeout 520 python3 scripts/train.py --arm vanilla --seed 0 --run drift10 --out-dir out/em/$k --model $d --steps 10 \
    --eval-every 0 --lr 0.05 --weight-decay 1 --weight-decay-quarantine 1 > out/logs/drift_$k.log 2>&1 &
done
wait
tar czf "$OUT/runs.tgz" out/em out/logs
tar czf "$OUT/cand_a.tgz" $(ls -d out/cand/cpu-* | head -3)
tar czf "$OUT/cand_b.tgz" $(ls -d out/cand/cpu-* | tail -n +4)
for f in out/logs/em_*.log; do echo "== $f"; grep -E "^\| (vanilla|rl-baseline)|wall time" $f; done
