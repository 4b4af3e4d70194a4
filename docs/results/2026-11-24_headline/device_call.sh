#!/bin/bash
# One device call of the headline (H100 machine, 16 cores; every run on its CPU in fp32, one torch thread,
# 2 grade workers). Runs and v_hack files of earlier calls arrive in .carry/ and are skipped by
# headline.py; everything comes back in one tarball ($OUT holds at most 8 files).
#   bash docs/results/2026-11-24_headline/device_call.sh ARMS TAG [BUDGET_MIN] [PARALLEL]
# Ran before the organism recipe had weight decay (session 4 made 1 the drivers' default); to reproduce it
# today pass --weight-decay 0 --weight-decay-quarantine 0 to headline.py as well.
set -u
ARMS=$1; TAG=$2; BUDGET=${3:-8.3}; PAR=${4:-16}
export PGRPO_LEETCODE=$PWD/.carry/data/leetcode_test_medhard.jsonl PYTHONPATH=src PGRPO_THREADS=1 PGRPO_GRADE_WORKERS=2 PYTHONUNBUFFERED=1 CUDA_VISIBLE_DEVICES=
mkdir -p out
[ -d .carry/runs_headline ] && cp -r .carry/runs_headline out/
[ -d .carry/vhack ] && cp -r .carry/vhack out/
python3 scripts/headline.py --model .carry/orgZ --arms "$ARMS" --seeds 0,1,2,3,4 --steps 40 --eval-every 0 \
    --parallel "$PAR" --budget-min "$BUDGET" --runs out/runs_headline --out "out/h_$TAG" --lr 0.05 \
    > "$OUT/$TAG.log" 2>&1
echo "headline.py exit $?" >> "$OUT/$TAG.log"
tar czf "$OUT/$TAG.tgz" out/runs_headline out/vhack "out/h_$TAG"
tail -5 "$OUT/$TAG.log"
