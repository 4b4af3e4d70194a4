#!/usr/bin/env bash
# erratum 3's screen (docs/prereg/2026-12-06_erratum3.md): vanilla on the LoRA adapter, seeds 0-1, three scales
# (as run, the script sat in out/lora_screen/ and went up two folders; from here it goes up three)
cd "$(dirname "$0")/../../.."
mkdir -p out/lora_screen/runs
for A in 1 0.25 0.0625; do
  PGRPO_THREADS=1 python3 scripts/train.py --arm vanilla --seeds 0,1 --model organism:cpu --steps 80 --eval-every 0 \
    --n-eval 2 --eval-samples 1 --lr 0.05 --weight-decay 1 --weight-decay-quarantine 1 --device cpu --adapter lora \
    --rank 8 --quarantine own --lora-alpha $A --run vlora_a$A --out-dir out/lora_screen/runs > out/lora_screen/a$A.log 2>&1 &
done
wait
