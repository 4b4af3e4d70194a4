#!/bin/bash
# Issue 16 item 3, grid: GPU-built organisms that generalise less to hard prompts (fewer pretraining steps,
# or a narrower model), each screened (base rates 400 per cell) and run with vanilla GRPO (3 seeds, 60 steps,
# on the GPU), all three pipelines side by side. One tarball comes back.
#   bash docs/results/2026-11-24_gpu_organism/device_grid.sh
set -u
export PYTHONPATH=src PGRPO_THREADS=1 PGRPO_GRADE_WORKERS=2 PYTHONUNBUFFERED=1
mkdir -p out/grid
pipeline() {  # NAME SETJSON
    python3 scripts/screen_organism.py --size gpu --device cuda --n-per-cell 400 --set "$2" > "out/grid/$1.screen.log" 2>&1
    folder=$(python3 -c "import json; print([json.loads(l) for l in open('out/grid/$1.screen.log') if l.startswith('{\"folder')][-1]['folder'])")
    python3 scripts/emergence.py --model "$folder" --arms vanilla --seeds 0,1,2 --steps 60 --runs "out/grid/runs_$1" \
        -- --device cuda > "out/grid/$1.emergence.log" 2>&1
    echo "$1 done ($folder)"
}
export -f pipeline
pkill -f 'screen_organism|emergence.py|train.py' ; sleep 1  # nothing left from an earlier call
rm -rf out/grid/* out/organism/gpu-*
timeout 550 bash -c 'pipeline s800 "{\"steps\": 800}"' &
timeout 550 bash -c 'pipeline s1500 "{\"steps\": 1500}"' &
timeout 550 bash -c 'pipeline w256 "{\"hidden\": 256, \"layers\": 6, \"heads\": 4, \"intermediate\": 768}"' &
wait
tar czf "$OUT/grid.tgz" --exclude='*.safetensors' --exclude='ckpt' --exclude='step_*.jsonl.gz' out/grid out/organism/gpu-*
for n in s800 s1500 w256; do echo "== $n"; grep -A9 "^| cell" out/grid/$n.screen.log | head -10; tail -14 out/grid/$n.emergence.log | grep "hinted strict\|no-hint\|wall"; done
