# The offline direction screen of 2026-12-06 (RESEARCH_JOURNAL.md), from the repository root; ~14 CPU-minutes on the
# 2-core machine (30 min wall beside other work). The pool: vanilla seeds 0 and 1 of the pinned organism's emergence
# runs (journal 2026-12-06, session 9), shipped in docs/results/2026-12-06_organisms/emergence_2core/.
set -euo pipefail
python3 scripts/extract_vhack_grad.py --pairs 'data/pairs/hack_pairs.md#organism' --model organism:cpu --quarantine own --out out/vhack/organism_cpu_svd_own.safetensors
python3 scripts/extract_vhack_grad.py --pairs 'data/pairs/pair_diagnostics.md#placebo' --model organism:cpu --quarantine own --out out/vhack/organism_cpu_svd_own_placebo.safetensors
mkdir -p out/screen_pool && tar xzf docs/results/2026-12-06_organisms/emergence_2core/runs.part0.tgz -C out/screen_pool
python3 scripts/screen_directions.py --model organism:cpu --k 32 --out docs/results/2026-12-06_direction_screen \
    --runs out/screen_pool/emergence_pinned/vanilla_s0,out/screen_pool/emergence_pinned/vanilla_s1
