#!/bin/bash
# Device call 1 of the third organism (issue 30): cpu-preset candidates at OrganismConfig.seed 5-10 built side by side
# on the GPU machine's CPU, one torch thread and 2 grade workers each, base rates at the default 400 samples per cell,
# as session 9 built seeds 0-4 (docs/results/2026-12-06_organisms/device_build.sh, without its repro and GPU builds).
# The builds land in out/organism/ (the warm machine keeps them for device_emergence.sh); each folder also comes back.
#   bash docs/results/2026-12-07_third_organism/device_build.sh
set -u
export PYTHONPATH=src PGRPO_THREADS=1 PGRPO_GRADE_WORKERS=2 PYTHONUNBUFFERED=1 CUDA_VISIBLE_DEVICES=
mkdir -p out/logs
lscpu | grep "Model name" | tee "$OUT/cpu.txt"
for s in 5 6 7 8 9 10; do
  timeout 570 python3 -m projected_grpo.organism.build --size cpu --seed $s --device cpu > out/logs/cand$s.log 2>&1 &
done
wait
for f in out/organism/cpu-*/organism.json; do
  python3 -c "import json,sys; m=json.load(open(sys.argv[1])); print(sys.argv[1], 'seed', m['config']['seed'], m['weights_sha256'], m['build_seconds'], m['cpu'], m['torch'])" "$f"
done | tee "$OUT/hashes.txt"
# at most 8 files of 16 MiB come back: the candidates (about 4 MB each) in two archives, the logs in a third
ls -d out/organism/cpu-* > /tmp/cands
tar czf "$OUT/cand_a.tgz" $(head -3 /tmp/cands)
tar czf "$OUT/cand_b.tgz" $(tail -n +4 /tmp/cands)
tar czf "$OUT/build_logs.tgz" out/logs
tail -n 3 out/logs/cand*.log
