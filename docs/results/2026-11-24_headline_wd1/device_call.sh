#!/bin/bash
# One device call of the weight-decay-1 headline (H100 machine, 16 cores; every run on its CPU in fp32, one torch
# thread, 2 grade workers). The organism cpu-7623d17e23 arrives as .carry/orgZ, the v_hack files of the first
# headline as .carry/vhack (extracted before training; independent of the recipe), and the runs of earlier calls
# as .carry/runs_hwd1 or .carry/runs_hsym (headline.py skips finished runs). Everything comes back in one tarball, made even when
# headline.py is cut off by the time limit (its finished runs are kept).
# QDECAY is the quarantine block's weight decay: 0 for the 18-arm table (the deployed block alone decayed; runs in
# out/runs_hwd1), 1 for the symmetric-decay table (both blocks decay; runs in out/runs_hsym).
#   [QDECAY=1] [SEEDS=0,1,2,3,4] bash docs/results/2026-11-24_headline_wd1/device_call.sh ARMS TAG [BUDGET_MIN] [PARALLEL]
set -u
ARMS=$1; TAG=$2; BUDGET=${3:-8.6}; PAR=${4:-25}; QDECAY=${QDECAY:-0}
R=out/runs_hwd1; [ "$QDECAY" = 0 ] || R=out/runs_hsym
export PGRPO_LEETCODE=$PWD/.carry/data/leetcode_test_medhard.jsonl PYTHONPATH=src PGRPO_THREADS=1 PGRPO_GRADE_WORKERS=2 PYTHONUNBUFFERED=1 CUDA_VISIBLE_DEVICES=
mkdir -p $R
[ -d .carry/${R#out/} ] && cp -r .carry/${R#out/}/. $R/   # earlier calls' runs (finished ones are skipped)
[ -d .carry/vhack ] && cp -r .carry/vhack out/
timeout "${LIMIT:-545}" python3 scripts/headline.py --model .carry/orgZ --arms "$ARMS" --seeds "${SEEDS:-0,1,2,3,4}" --steps 40 --eval-every 0 \
    --parallel "$PAR" --budget-min "$BUDGET" --runs $R --out "out/h_$TAG" --lr 0.05 --weight-decay 1.0 --weight-decay-quarantine "$QDECAY" \
    > "$OUT/$TAG.log" 2>&1
echo "headline.py exit $?" >> "$OUT/$TAG.log"
# only this call's arms come back (a file may be at most 16 MiB; the carried runs are already here)
RUNS=$(for a in ${ARMS//,/ }; do ls -d $R/${a}_s*; done)
tar czf "$OUT/$TAG.tgz" $RUNS $R/_logs "out/h_$TAG"
tail -5 "$OUT/$TAG.log"
