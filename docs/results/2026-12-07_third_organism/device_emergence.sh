#!/bin/bash
# Device call 2 of the third organism, after device_build.sh on the same warm machine (its out/organism/ builds are
# still there): session 9's emergence screen of every candidate on the GPU machine's CPU, vanilla seeds 0 and 1 and
# rl-baseline seed 0, 60 steps, evaluated at step -1 and at the end, one torch thread and 2 grade workers each, all
# side by side. Returns every run's step logs, eval files and logs, and each candidate's table.
#   bash docs/results/2026-12-07_third_organism/device_emergence.sh
set -u
export PYTHONPATH=src PGRPO_THREADS=1 PGRPO_GRADE_WORKERS=2 PYTHONUNBUFFERED=1 CUDA_VISIBLE_DEVICES=
mkdir -p out/logs out/em
for d in out/organism/cpu-*; do
  k=$(basename $d)
  h=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['weights_sha256'][:16])" $d/organism.json)
  timeout 560 python3 scripts/emergence.py --model organism:cpu@$h --arms vanilla --seeds 0,1 --runs out/em/$k > out/logs/em_v_$k.log 2>&1 &
  timeout 560 python3 scripts/emergence.py --model organism:cpu@$h --arms rl-baseline --seeds 0 --runs out/em/$k > out/logs/em_r_$k.log 2>&1 &
done
wait
tar czf "$OUT/runs.tgz" out/em out/logs
for f in out/logs/em_*.log; do echo "== $f"; grep -E "^organism|^\| (vanilla|rl-baseline)|wall time" $f; done
