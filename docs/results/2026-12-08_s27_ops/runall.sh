#!/bin/bash
# old = HEAD 88b8ea6 (worktree /tmp/p27/old), new = the working tree; one after another on the idle machine
REPO=$(git rev-parse --show-toplevel); # old: git worktree add /tmp/p27/old 88b8ea6
cd "$REPO"
for mode in count cpu; do for R in 1 4; do for mb in "" "--micro-batch 0"; do
  [ $mode = cpu ] && [ -n "$mb" ] && continue
  for code in old new; do
    src=$([ $code = old ] && echo /tmp/p27/old/src || echo $REPO/src)
    echo "== $code $mode R=$R ${mb:-default micro-batch}"
    PYTHONPATH=$src PGRPO_THREADS=1 PGRPO_GRADE_CACHE= python3 docs/results/2026-12-08_s27_ops/opcount.py $R 2 $mode $mb 2>&1 | grep "^R="
  done
done; done; done
