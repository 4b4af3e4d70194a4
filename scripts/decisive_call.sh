#!/usr/bin/env bash
# One GPU-machine call of the decisive table (scripts/decisive.py), resuming from what earlier calls brought back.
#
#   bash scripts/decisive_call.sh MODEL SEEDS BUDGET_MIN [more scripts/decisive.py flags]
#
# Before: out/decisive_parts/ (carried; ignored by git) holds the latest call's packed runs (<ftag>_runs.partN.tar.xz,
# nothing older) and direction files (vhack_<ftag>.tar; ftag: the model's tag with @ as -); .git_commit.json (scripts/stamp_commit.py, written right
# before the call on a clean tree) is carried so that every run records its commit; the call refuses to run
# otherwise (exit 3). Runs finished earlier are unpacked and skipped; carried direction files are reused. A run folder
# the machine already holds (a warm machine keeps out/ between calls) is never rewritten from a part
# (pack_runs --keep-existing): its own copy is at least as new.
# After: $OUT holds this call's log, every run of the organism packed again (pack_runs.py --xz), with the last
# checkpoint of each unfinished run (--checkpoints: a call on a fresh machine resumes it), and the direction files.
# Here: python scripts/pack_runs.py --unpack PART... out/decisive, then keep the parts in docs/results/.
set -euo pipefail
model=$1; seeds=$2; budget=$3; shift 3
export PYTHONPATH=src PYTHONUNBUFFERED=1
tag=$(python3 -c 'import sys; from projected_grpo.method.arms import model_tag; print(model_tag(sys.argv[1]))' "$model")
# the runs' folder keeps the tag (organism_cpu@51b7c62e); file names that travel may hold only letters, digits, . _ -
ftag=${tag//@/-}
# every run must record the commit it runs at: the carried stamp, and the tree clean against it (models.git_state)
python3 -c 'from projected_grpo.loop.models import git_state as g; s = g(); print("commit", s)
assert s["git_commit_source"] in ("stamp", "git") and s["git_dirty"] is False, "not a clean stamped tree"' || exit 3
mkdir -p out/decisive out/vhack
# the parts of the latest call only (out/decisive_parts holds nothing else), all in one command: what the machine
# holds is read once, before any part (a run is never split between parts, and one part's files never hide another's)
parts=$(ls -v out/decisive_parts/"${ftag}"_runs.part*.tar.xz 2>/dev/null || true)
if [ -n "$parts" ]; then python3 scripts/pack_runs.py --unpack $parts out/decisive --keep-existing; fi
if [ -e "out/decisive_parts/vhack_${ftag}.tar" ]; then tar xf "out/decisive_parts/vhack_${ftag}.tar" -C out; fi
# the call's log names the GPU first (run_meta has no GPU-model field; amendment 5 pools only calls whose log names an H100)
{ echo "gpu: $(nvidia-smi --query-gpu=name --format=csv,noheader || echo none)"; lscpu | grep "Model name" || true; } \
  | tee "$OUT/decisive_${ftag}.log"
rc=0
python3 scripts/decisive.py --model "$model" --seeds "$seeds" --budget-min "$budget" "$@" 2>&1 \
  | tee -a "$OUT/decisive_${ftag}.log" || rc=$?
if [ ! -d "out/decisive/${tag}" ]; then echo "decisive.py made no run folder (exit $rc)" >&2; exit "$((rc ? rc : 1))"; fi
python3 scripts/pack_runs.py "out/decisive/${tag}" "$OUT/${ftag}_runs" --xz --max-mb 14 --checkpoints
(cd out && tar cf "$OUT/vhack_${ftag}.tar" vhack/"${tag}"_*.safetensors)
# a call brings back at most 8 files of 16 MiB: say so loudly rather than lose parts
n=$(ls "$OUT/${ftag}"_runs.part*.tar.xz | wc -l)
big=$(find "$OUT" -name "${ftag}_runs.part*" -size +15M | wc -l)
if [ "$n" -gt 6 ] || [ "$big" -gt 0 ]; then echo "PACKING TOO LARGE: $n parts, $big over 15 MiB" >&2; exit 4; fi
exit $rc
