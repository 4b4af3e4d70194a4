"""What a sandbox job costs with and without bubblewrap, and without it beside many other processes (issue 28,
session 24): the GPU machine has no bubblewrap, so its servers run in plain mode, where a server checks for a job's
leftover processes by scanning /proc. Per job: the forked job process's CPU, its server's CPU and this grading
process's CPU, for 200 jobs of `pass`, four passes (the accounting of session 23's trivial_jobs.py). A one-off
script kept beside its output; run it from the repository's root, once per setting:

    PYTHONPATH=src python3 docs/results/2026-12-07_grading_bound_s24/plain_jobs.py                  # bubblewrap
    PGRPO_NO_BWRAP=1 PYTHONPATH=src python3 docs/results/2026-12-07_grading_bound_s24/plain_jobs.py # plain
    PGRPO_NO_BWRAP=1 PYTHONPATH=src python3 docs/results/2026-12-07_grading_bound_s24/plain_jobs.py --others 300
"""

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
os.environ["PGRPO_SANDBOX"] = "server"
from bench_grader import proc_stat, server_pids  # noqa: E402

from projected_grpo.env.sandbox import Job, run_many  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--others", type=int, default=0, help="idle processes started beside the servers (sleep)")
ap.add_argument("--jobs", type=int, default=200)
a = ap.parse_args()
others = [subprocess.Popen(["sleep", "600"]) for _ in range(a.others)]
try:
    jobs = [Job("", "pass")] * a.jobs
    run_many(jobs[:4])  # the servers start
    pids = server_pids()
    n_proc = sum(1 for x in os.listdir("/proc") if x.isdigit())
    x0, r0, t0 = [proc_stat(p) for p in pids], resource.getrusage(resource.RUSAGE_SELF), time.time()
    reps = 4
    for _ in range(reps):
        run_many(jobs)
    dt, r1, x1 = time.time() - t0, resource.getrusage(resource.RUSAGE_SELF), [proc_stat(p) for p in pids]
    n = reps * len(jobs)
    d = [sum(y[i] - x[i] for x, y in zip(x0, x1)) for i in range(6)]
    mine = r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime
    mode = "plain" if os.environ.get("PGRPO_NO_BWRAP") == "1" else "bubblewrap"
    print(f"{mode}, {n_proc} processes in /proc: {n / dt:.0f} jobs/s; per job: job process {1e3 * (d[2] + d[3]) / n:.2f} ms "
          f"({d[5] / n:.0f} page faults), server {1e3 * (d[0] + d[1]) / n:.2f} ms, grading process {1e3 * mine / n:.2f} ms")
finally:
    for p in others:
        p.kill()
        p.wait()
