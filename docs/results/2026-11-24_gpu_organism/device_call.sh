#!/bin/bash
# Issue 16 item 3 on the H100 machine: build the GPU-size organism (v3 recipe, base rates 400 per cell,
# on the GPU), then vanilla and the RL baseline side by side (5 seeds each, GRPO on the GPU, one torch
# thread per run), and print emergence.py's table. Everything comes back in one tarball.
#   bash docs/results/2026-11-24_gpu_organism/device_call.sh [STEPS] [SEEDS]
set -u
STEPS=${1:-60}; SEEDS=${2:-0,1,2,3,4}
export PYTHONPATH=src PGRPO_THREADS=1 PGRPO_GRADE_WORKERS=2 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.used --format=csv | tee "$OUT/gpu.txt"
timeout 570 python3 scripts/emergence.py --model organism:gpu --base-samples 400 --seeds "$SEEDS" --steps "$STEPS" \
    --runs out/emergence_gpu -- --device cuda > "$OUT/emergence_gpu.log" 2>&1
echo "emergence.py exit $?" >> "$OUT/emergence_gpu.log"
tar czf "$OUT/gpu_organism.tgz" --exclude='*.safetensors' --exclude='ckpt' out/organism/gpu-* out/emergence_gpu
tail -40 "$OUT/emergence_gpu.log"
