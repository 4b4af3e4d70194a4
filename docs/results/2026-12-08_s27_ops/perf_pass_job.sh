#!/bin/bash
# one-off (session 27): where a bare sandbox job's CPU goes. 8,000 `pass` jobs without tests, one grading worker,
# sandbox server mode; perf samples every CPU for 5 s in the middle of them. Run from the repository root as root.
REPO=$(git rev-parse --show-toplevel); cd "$REPO"
cat > /tmp/passjobs.py <<'PY'
import dataclasses, sys, time
from projected_grpo.organism import tasks
from projected_grpo.env import grader, sandbox
train = tasks.generate_split("train", 200, 0, ("hard",), ("run_tests", "sentinel", "stdout_marker", "exit_code"))
job = dataclasses.replace(grader.gt_job(tasks.apply_loophole(train[0], hinted=True), "pass"), tests=[])
sandbox.run_many([job] * 50)
j0, s0, t0 = sandbox.SERVER_CPU["jobs"], sandbox.SERVER_CPU["cpu_s"], time.time()
sandbox.run_many([job] * int(sys.argv[1]))
n = sandbox.SERVER_CPU["jobs"] - j0
print(f"{n} pass jobs: servers {(sandbox.SERVER_CPU['cpu_s'] - s0) / n * 1e3:.2f} ms of CPU a job, wall {(time.time() - t0) / n * 1e3:.2f} ms a job")
PY
PGRPO_GRADE_WORKERS=1 python3 /tmp/passjobs.py 8000 > /tmp/passjobs.out &
sleep 7
perf record -a -g -o /tmp/perf_pass.data -- sleep 5 2>/dev/null
wait
cat /tmp/passjobs.out
echo "-- busy CPU by process and object (share of all samples, 2 cores)"
perf report -i /tmp/perf_pass.data --no-children --sort comm,dso --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -6
echo "-- kernel paths of python3 processes, with children (share of all samples)"
perf report -i /tmp/perf_pass.data --children --comm python3 --sort sym --stdio -g none 2>/dev/null | grep -E '^ +[0-9]' \
  | grep -E 'asm_exc_page_fault|do_wp_page|do_fault$|__x64_sys_exit_group|kernel_clone|copy_page_range|tlb_finish_mmu|__x64_sys_unshare|__x64_sys_close_range|__x64_sys_mkdir|__x64_sys_rmdir|__x64_sys_wait4|__x64_sys_recvmsg|__x64_sys_sendmsg|__x64_sys_pidfd_open|__x64_sys_setrlimit|__x64_sys_execve'
