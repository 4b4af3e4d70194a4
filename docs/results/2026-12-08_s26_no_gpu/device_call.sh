#!/bin/bash
# the device call session 26 prepared (issue 28): the PGRPO_CUDA_SYNC check (and its deliberate break), then the
# same-command bench with route-random following and blocking sync; run from the repository root on the GPU machine
set -u
: "${OUT:?the device tool sets OUT}"
T0=$SECONDS
nproc; lscpu | grep "Model name"; nvidia-smi --query-gpu=name --format=csv,noheader
mkdir -p /tmp/bwx && dpkg -x .whl/bubblewrap_*.deb /tmp/bwx && /tmp/bwx/usr/bin/bwrap --ro-bind / / --dev /dev --proc /proc --unshare-pid true && export PATH=/tmp/bwx/usr/bin:$PATH
echo "bwrap: $(command -v bwrap)"
export PYTHONPATH=$PWD/src
python3 scripts/smoke_gpu.py --sync-only 2>&1 | tail -3 | tee $OUT/sync_check.log
rm -rf /tmp/brk && mkdir -p /tmp/brk && cp -r scripts src data /tmp/brk/ && sed -i 's/set_flags(dev.value, 0x04)/set_flags(dev.value, 0x01)/' /tmp/brk/src/projected_grpo/loop/models.py && grep -q "set_flags(dev.value, 0x01)" /tmp/brk/src/projected_grpo/loop/models.py || echo "BREAK NOT APPLIED"
(cd /tmp/brk && PYTHONPATH=/tmp/brk/src python3 scripts/smoke_gpu.py --sync-only 2>&1 | tail -4 | tee $OUT/sync_check_broken_spin_flag.log)
SYNC=blocking
grep -q '^1 passed, 0 failed' $OUT/sync_check.log || SYNC=spin
echo "bench sync: $SYNC  (t=$((SECONDS-T0)) s)"
timeout 480 python3 scripts/bench_runs.py --seeds 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15 --runs-per-process 4 --follow --batched-cuda-sync $SYNC 2>&1 | tee $OUT/bench_rpp4.log | grep -v "it/s\|s/it" | tail -60
cp out/bench_runs/bench.json $OUT/bench_rpp4.json 2>/dev/null
echo "t=$((SECONDS-T0)) s"
# where one batched process's own CPU goes: route, 4 runs, alone on the machine, under cProfile (inflates Python-heavy
# parts, main thread only; read it for proportions)
if [ $((SECONDS-T0)) -lt 470 ]; then
  PGRPO_THREADS=1 PGRPO_GRADE_WORKERS=4 PGRPO_GRADE_CACHE= PGRPO_CUDA_SYNC=$SYNC timeout $((560-(SECONDS-T0))) \
    python3 -m cProfile -o $OUT/batched_route_s0-3.prof scripts/train.py --arm route --seeds 0,1,2,3 --out-dir out/prof \
    --vhack out/bench_runs/vhack_own_cuda.safetensors --device cuda --model organism:cpu --steps 40 --n-eval 12 \
    --eval-every 0 2>&1 | grep -v "it/s\|s/it" | tail -4
  python3 -c "import pstats; s = pstats.Stats('$OUT/batched_route_s0-3.prof'); s.sort_stats('tottime').print_stats(40); s.sort_stats('cumulative').print_stats(40)" > $OUT/batched_route_prof.txt 2>&1
fi
echo "t=$((SECONDS-T0)) s"
