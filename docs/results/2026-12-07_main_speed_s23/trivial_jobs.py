"""What a sandbox job costs when it does nothing (issue 28, session 23): per job, the forked job process's CPU and page
faults, its server's CPU and this grading process's CPU, for 200 jobs of `pass` and 200 that evaluate five trivial
tests, four passes each (the accounting of scripts/bench_grader.py --account, which runs organism completions). A
one-off script kept beside its output; run it from the repository's root:

    PYTHONPATH=src python3 docs/results/2026-12-07_main_speed_s23/trivial_jobs.py
"""

import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
os.environ["PGRPO_SANDBOX"] = "server"
from bench_grader import proc_stat, server_pids  # noqa: E402

from projected_grpo.env.sandbox import Job, run_many  # noqa: E402


def account(jobs: list, label: str, reps: int = 4) -> None:
    run_many(jobs[:4])  # the servers start
    pids = server_pids()
    a, r0, t0 = [proc_stat(p) for p in pids], resource.getrusage(resource.RUSAGE_SELF), time.time()
    for _ in range(reps):
        run_many(jobs)
    dt, r1, b = time.time() - t0, resource.getrusage(resource.RUSAGE_SELF), [proc_stat(p) for p in pids]
    n = reps * len(jobs)
    d = [sum(y[i] - x[i] for x, y in zip(a, b)) for i in range(6)]
    mine = r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime
    print(f"{label}: {n / dt:.0f} jobs/s; per job: job process {1e3 * (d[2] + d[3]) / n:.2f} ms ({d[5] / n:.0f} page "
          f"faults), server {1e3 * (d[0] + d[1]) / n:.2f} ms, grading process {1e3 * mine / n:.2f} ms")


account([Job("", "pass")] * 200, "pass")
account([Job("", "x = 1", [("value", "x")] * 5)] * 200, "five trivial tests")
