#!/bin/bash
# one-off (session 27): operations a run as a CUDA process would dispatch them outside its CUDA graphs, on the CPU:
# one pass a step (--micro-batch 0), the branch forward (no folding: the organism is bf16 on CUDA), AdamW and clipping
# with foreach. old = 88b8ea6 (git worktree add /tmp/p27/old 88b8ea6), new = this tree.
REPO=$(git rev-parse --show-toplevel); cd "$REPO"
for R in 1 4; do for code in old new; do
  src=$([ $code = old ] && echo /tmp/p27/old/src || echo $REPO/src)
  echo "== $code R=$R"
  PYTHONPATH=$src OPCOUNT_NOFOLD=1 OPCOUNT_FOREACH=1 PGRPO_THREADS=1 PGRPO_GRADE_CACHE= \
    python3 docs/results/2026-12-08_s27_ops/opcount.py $R 2 count --micro-batch 0 2>&1 | grep "^R="
done; done
