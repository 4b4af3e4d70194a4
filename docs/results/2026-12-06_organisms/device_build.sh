#!/bin/bash
# One device call: the five CPU-organism candidates (cpu preset, OrganismConfig.seed 0-4) built side by side on the
# GPU machine's CPU (one torch thread each, base rates 400 samples per cell), a seed-0 build under MKL's
# conditional numerical reproducibility and the generic ATen kernels (for the cross-machine comparison), and the
# GPU-size organism built twice on the GPU (deterministic kernels) to check that its hash repeats.
#   bash docs/results/2026-12-06_organisms/device_build.sh
set -u
export PYTHONPATH=src PGRPO_THREADS=1 PGRPO_GRADE_WORKERS=2 PYTHONUNBUFFERED=1
B="python3 -m projected_grpo.organism.build"
mkdir -p out/logs
for s in 0 1 2 3 4; do
  CUDA_VISIBLE_DEVICES= $B --size cpu --seed $s --device cpu --out out/cand > out/logs/cand$s.log 2>&1 &
done
CUDA_VISIBLE_DEVICES= MKL_CBWR=COMPATIBLE ATEN_CPU_CAPABILITY=default $B --size cpu --seed 0 --device cpu \
  --n-per-cell 0 --out out/repro > out/logs/repro.log 2>&1 &
$B --size gpu --device cuda --n-per-cell 0 --out out/gpuA > out/logs/gpuA.log 2>&1 &
$B --size gpu --device cuda --n-per-cell 0 --out out/gpuB > out/logs/gpuB.log 2>&1 &
wait
for f in out/cand/*/organism.json out/repro/*/organism.json out/gpuA/*/organism.json out/gpuB/*/organism.json; do
  python3 -c "import json,sys; m=json.load(open(sys.argv[1])); print(sys.argv[1], m['weights_sha256'], m['build_seconds'], m['cpu'], m['torch'])" "$f"
done | tee "$OUT/hashes.txt"
tar czf "$OUT/logs.tgz" out/logs out/gpuA/*/organism.json out/gpuB/*/organism.json
for d in out/cand/* out/repro/*; do tar czf "$OUT/$(basename $(dirname $d))_$(basename $d).tgz" "$d"; done
grep -h "| hinted\|| no-hint" out/logs/cand*.log
