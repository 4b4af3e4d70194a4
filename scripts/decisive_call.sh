#!/usr/bin/env bash
# One GPU-machine call of the decisive table (scripts/decisive.py), resuming from what earlier calls brought back.
#
#   bash scripts/decisive_call.sh MODEL SEEDS BUDGET_MIN [more scripts/decisive.py flags]
#
# Before: out/decisive_parts/ (carried; ignored by git) holds the earlier calls' packed runs
# (<tag>_runs.partN.tar.xz) and direction files (vhack_<tag>.tar); .git_commit.json (scripts/stamp_commit.py) is
# carried so that every run records its commit. Runs finished earlier are unpacked and skipped; the direction files
# extracted by the first call are reused, so every run of an arm reads the same file.
# After: $OUT holds this call's log, every run of the organism packed again (pack_runs.py --xz) and the direction
# files. Here: python scripts/pack_runs.py --unpack PART out/decisive, then keep the parts in docs/results/.
set -euo pipefail
model=$1; seeds=$2; budget=$3; shift 3
export PYTHONPATH=src PYTHONUNBUFFERED=1
tag=$(python3 -c 'import sys; from projected_grpo.method.arms import model_tag; print(model_tag(sys.argv[1]))' "$model")
mkdir -p out/decisive out/vhack
for part in out/decisive_parts/"${tag}"_runs.part*.tar.xz; do
  if [ -e "$part" ]; then python3 scripts/pack_runs.py --unpack "$part" out/decisive; fi
done
if [ -e "out/decisive_parts/vhack_${tag}.tar" ]; then tar xf "out/decisive_parts/vhack_${tag}.tar" -C out; fi
nvidia-smi --query-gpu=name --format=csv,noheader || true
rc=0
python3 scripts/decisive.py --model "$model" --seeds "$seeds" --budget-min "$budget" "$@" 2>&1 \
  | tee "$OUT/decisive_${tag}.log" || rc=$?
python3 scripts/pack_runs.py "out/decisive/${tag}" "$OUT/${tag}_runs" --xz --max-mb 14
(cd out && tar cf "$OUT/vhack_${tag}.tar" vhack/"${tag}"_*.safetensors)
exit $rc
