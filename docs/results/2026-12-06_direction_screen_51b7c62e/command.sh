# The offline direction screen on the further pinned organism cpu@51b7c62e (issue 29 item 3), from the repository
# root on the 2-core machine. The pool: vanilla seeds 0 and 1 of that organism, 60 steps, the adopted recipe (as
# `just emergence` runs vanilla), trained here in one process (train.py --seeds) at the commit this folder was
# committed with; then the screen as for the pinned organism (docs/results/2026-12-06_direction_screen/).
set -euo pipefail
M=organism:cpu@51b7c62e
python3 scripts/extract_vhack_grad.py --pairs 'data/pairs/hack_pairs.md#organism' --model $M --quarantine own --out out/vhack/organism_cpu@51b7c62e_svd_own.safetensors
python3 scripts/extract_vhack_grad.py --pairs 'data/pairs/pair_diagnostics.md#placebo' --model $M --quarantine own --out out/vhack/organism_cpu@51b7c62e_svd_own_placebo.safetensors
PGRPO_THREADS=1 python3 scripts/train.py --arm vanilla --seeds 0,1 --model $M --steps 60 --eval-every 60 \
    --lr 0.05 --weight-decay 1.0 --weight-decay-quarantine 1.0 --out-dir out/screen_pool_51b7c62e
python3 scripts/screen_directions.py --model $M --k 32 --out docs/results/2026-12-06_direction_screen_51b7c62e \
    --vhack out/vhack/organism_cpu@51b7c62e_svd_own.safetensors --placebo out/vhack/organism_cpu@51b7c62e_svd_own_placebo.safetensors \
    --runs out/screen_pool_51b7c62e/vanilla_s0,out/screen_pool_51b7c62e/vanilla_s1
