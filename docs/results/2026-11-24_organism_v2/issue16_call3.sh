#!/bin/bash
# The third device call of issue 16 (H100 machine, 16 cores): candidates X and Y (built on the 2-core
# machine, carried in out/organism), vanilla 3 seeds each, rl-baseline seed 0 on X, X's base rates at
# 400 samples per cell. Every process is inside this script; `timeout` kills each group at the deadline.
export PGRPO_THREADS=1 PGRPO_GRADE_WORKERS=2 PYTHONUNBUFFERED=1
X=$1; Y=$2; T=${3:-470}
timeout $T python3 scripts/emergence.py --model $X --arms vanilla --seeds 0,1,2 --runs out/emX > $OUT/emX.txt 2>&1 &
timeout $T python3 scripts/emergence.py --model $X --arms rl-baseline --seeds 0 --runs out/emXb > $OUT/emXb.txt 2>&1 &
timeout $T python3 scripts/emergence.py --model $Y --arms vanilla --seeds 0,1,2 --runs out/emY > $OUT/emY.txt 2>&1 &
timeout $T python3 -c "import sys; from pathlib import Path; from projected_grpo.organism.build import remeasure_base_rates as r; r(Path(sys.argv[1]), 400, 0)" $X > $OUT/baseX.txt 2>&1 &
wait
tar czf $OUT/runs.tgz out/em*/*/eval.jsonl out/em*/*/metrics.jsonl out/em*/*/step_*.jsonl.gz out/em*/_logs $X/base_rates.json 2>/dev/null
