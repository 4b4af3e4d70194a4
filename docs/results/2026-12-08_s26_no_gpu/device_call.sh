#!/bin/bash
# the device call session 26 prepared (issue 28): the PGRPO_CUDA_SYNC check (and its deliberate break), then the
# same-command bench with route-random following and blocking sync; run from the repository root on the GPU machine
set -u
T0=$SECONDS
nproc; lscpu | grep "Model name"; nvidia-smi --query-gpu=name --format=csv,noheader
mkdir -p /tmp/bwx && dpkg -x .whl/bubblewrap_*.deb /tmp/bwx && /tmp/bwx/usr/bin/bwrap --ro-bind / / --dev /dev --proc /proc --unshare-pid true && export PATH=/tmp/bwx/usr/bin:$PATH
echo "bwrap: $(command -v bwrap)"
export PYTHONPATH=$PWD/src
python3 scripts/smoke_gpu.py --sync-only 2>&1 | tail -3 | tee $OUT/sync_check.log
rm -rf /tmp/brk && mkdir -p /tmp/brk && cp -r scripts src data /tmp/brk/ && sed -i 's/set_flags(dev.value, 0x04)/set_flags(dev.value, 0x01)/' /tmp/brk/src/projected_grpo/loop/models.py && grep -c "0x01)" /tmp/brk/src/projected_grpo/loop/models.py
(cd /tmp/brk && PYTHONPATH=/tmp/brk/src python3 scripts/smoke_gpu.py --sync-only 2>&1 | tail -4 | tee $OUT/sync_check_broken_spin_flag.log)
SYNC=blocking
grep -q '^1 passed, 0 failed' $OUT/sync_check.log || SYNC=spin
echo "bench sync: $SYNC  (t=$((SECONDS-T0)) s)"
python3 scripts/bench_runs.py --seeds 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15 --runs-per-process 4 --follow --batched-cuda-sync $SYNC 2>&1 | tee $OUT/bench_rpp4.log | grep -v "it/s\|s/it" | tail -60
cp out/bench_runs/bench.json $OUT/bench_rpp4.json 2>/dev/null
echo "t=$((SECONDS-T0)) s"
LEFT=$((575-(SECONDS-T0)))
if [ $LEFT -gt 100 ]; then
  timeout $LEFT python3 scripts/bench_runs.py --seeds 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15 --runs-per-process 8 --follow --batched-cuda-sync $SYNC --skip-separate --out out/bench_rpp8 2>&1 | tee $OUT/bench_rpp8.log | grep -v "it/s\|s/it" | tail -40
  cp out/bench_rpp8/bench.json $OUT/bench_rpp8.json 2>/dev/null
fi
echo "t=$((SECONDS-T0)) s"
