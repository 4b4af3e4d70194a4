# The offline direction screen on the third pinned organism cpu@826cb3c1 (exploratory; session 18), from the repository
# root on the 2-core machine, as docs/results/2026-12-06_direction_screen_51b7c62e/command.sh did for the second: the
# pool is vanilla seeds 0 and 1 of that organism, 60 steps, the adopted recipe, trained here in one process; then the
# screen of v_grad, the placebo, 32 random directions, v_act and the advantage. Made before any decisive run on this
# organism; amendment 5 does not depend on it.
set -euo pipefail
M=organism:cpu@826cb3c1
python3 scripts/extract_vhack_grad.py --pairs 'data/pairs/hack_pairs.md#organism' --model $M --quarantine own --out out/vhack/organism_cpu@826cb3c1_svd_own.safetensors
python3 scripts/extract_vhack_grad.py --pairs 'data/pairs/pair_diagnostics.md#placebo' --model $M --quarantine own --out out/vhack/organism_cpu@826cb3c1_svd_own_placebo.safetensors
PGRPO_THREADS=1 python3 scripts/train.py --arm vanilla --seeds 0,1 --model $M --steps 60 --eval-every 60 \
    --lr 0.05 --weight-decay 1.0 --weight-decay-quarantine 1.0 --out-dir out/screen_pool_826cb3c1
python3 scripts/screen_directions.py --model $M --k 32 --out docs/results/2026-12-07_direction_screen_826cb3c1 \
    --vhack out/vhack/organism_cpu@826cb3c1_svd_own.safetensors --placebo out/vhack/organism_cpu@826cb3c1_svd_own_placebo.safetensors \
    --runs out/screen_pool_826cb3c1/vanilla_s0,out/screen_pool_826cb3c1/vanilla_s1
