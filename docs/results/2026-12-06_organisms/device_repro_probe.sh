#!/bin/bash
# One device call: scripts/probe_build_repro.py (first 10 pretraining steps of the cpu preset at seed 1) on the GPU
# machine's CPU under three numerics settings, side by side, one thread each. The same commands run on the 2-core
# machine; equal hashes mean bitwise-equal weights.
set -u
export PYTHONPATH=src PGRPO_THREADS=1 PYTHONUNBUFFERED=1 CUDA_VISIBLE_DEVICES=
P="python3 scripts/probe_build_repro.py --seed 1 --steps 10"
$P > $OUT/default.json 2> $OUT/default.err &
MKL_CBWR=COMPATIBLE ATEN_CPU_CAPABILITY=default $P > $OUT/cbwr.json 2> $OUT/cbwr.err &
$P --dtype float64 > $OUT/f64.json 2> $OUT/f64.err &
wait
cat $OUT/*.json
