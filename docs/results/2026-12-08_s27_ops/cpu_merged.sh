#!/bin/bash
# one-off (session 27): CPU by phase of route in one process of R runs (opcount.py cpu, 3 steps), before and after the
# packed decoder's per-run merged weights; twice each, alternating, on the idle machine.
# before = c413ae2 (git worktree add /tmp/p27/mid c413ae2), after = $REPO (4a... this commit's tree)
REPO=$(git rev-parse --show-toplevel); cd "$REPO"
for rep in 1 2; do for R in 1 4; do for code in before after; do
  src=$([ $code = before ] && echo /tmp/p27/mid/src || echo $REPO/src)
  echo "== $code R=$R rep $rep"
  PYTHONPATH=$src PGRPO_THREADS=1 PGRPO_GRADE_CACHE= python3 docs/results/2026-12-08_s27_ops/opcount.py $R 3 cpu 2>&1 | grep "^R="
done; done; done
