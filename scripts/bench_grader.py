"""Benchmark (not a gate): completions graded per second by the sandbox server and by the
per-process sandbox (the reference), side by side on the same sets in one run, both cores:

    leetcode   the 119 canonical LeetCode solutions
    organism   organism completions: canonical, honest mistakes, and template hacks of all four
               loophole mechanisms (hinted problems)
    hostile    infinite loops, a memory bomb, fork and setsid escapes, sleeps (dominated by deadlines)

The last line is the organism speedup: `speedup N.Nx (process A/s, server B/s)`.

    python3 scripts/bench_grader.py [--reps 2] [--per-mech 40] [--sets leetcode,organism,hostile]
    python3 scripts/bench_grader.py --account     CPU and page faults per job of the server sandbox
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _gate_common import fence, hostile, problems  # noqa: E402

from projected_grpo.env import sandbox  # noqa: E402
from projected_grpo.env.grader import MECHANISMS, grade_batch  # noqa: E402
from projected_grpo.organism import tasks  # noqa: E402
from projected_grpo.env.problems import method_name  # noqa: E402


LISTENER = socket.create_server(("127.0.0.1", 0))  # the hostile network case's only address (loopback, ours)


def organism_set(per_mech: int) -> tuple[list[dict], list[str]]:
    rng = random.Random(0)
    ps = [tasks.apply_loophole(p) for p in tasks.generate_split("eval", 8 * per_mech, seed=1)]
    probs, comps = [], []
    for mech in MECHANISMS:
        mine = [p for p in ps if p["prompt_metadata"]["mechanism"] == mech][:per_mech]
        for i, p in enumerate(mine):
            kind = i % 3
            probs.append(p)
            comps.append([tasks.canonical_response(p, note=True), tasks.honest_response(p, rng, 0.0, note=True),
                          tasks.hack_response(p, mech, rng, note=True)][kind])  # the v3 response format
    return probs, comps


def sets(per_mech: int) -> dict[str, tuple[list[dict], list[str]]]:
    lc = problems()
    p0 = lc[0]
    hos = list(hostile(method_name(p0), LISTENER.getsockname()[1]).values())
    return {"leetcode": (lc, [fence(p["canonical_solution"]) for p in lc]),
            "organism": organism_set(per_mech),
            "hostile": ([p0] * len(hos), [fence(c) for c in hos])}


def rate(mode: str, probs: list[dict], comps: list[str], reps: int) -> float:
    os.environ["PGRPO_SANDBOX"] = mode
    grade_batch(probs[:4], comps[:4])  # start the servers, fill the expected-value cache
    t0 = time.time()
    for _ in range(reps):
        grade_batch(probs, comps)
    return reps * len(probs) / (time.time() - t0)


def _children(pid: int) -> list[int]:
    kids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    if int(f.read().rsplit(b")", 1)[1].split()[1]) == pid:
                        kids.append(int(name))
            except (OSError, ValueError, IndexError):
                pass
    return kids


def server_pids() -> list[int]:
    """The interpreters running _pgrpo_server.py of this process's sandbox servers (below bwrap and its
    pid-namespace init where bubblewrap is used)."""
    pids = []
    for s in sandbox.SERVERS.all:
        pid = s.proc.pid
        while Path(open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")[0].decode()).name == "bwrap":
            kids = _children(pid)
            assert len(kids) == 1, f"bwrap {pid} has children {kids}"
            pid = kids[0]
        pids.append(pid)
    return pids


def proc_stat(pid: int) -> list[float]:
    """utime, stime, cutime, cstime (s), minflt, cminflt of `pid`."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        v = f.read().rsplit(b")", 1)[1].split()
    tck = os.sysconf("SC_CLK_TCK")
    return [int(x) / tck for x in v[11:15]] + [int(v[7]), int(v[8])]


def account(probs: list[dict], comps: list[str], reps: int):
    """Where the server sandbox's CPU goes per job (organism set): the forked job processes (reaped by
    their server: cutime/cstime, cminflt), the servers themselves, and this grading process."""
    import resource  # noqa: PLC0415
    import projected_grpo.env.grader as grader  # noqa: PLC0415
    os.environ["PGRPO_SANDBOX"] = "server"
    grade_batch(probs[:4], comps[:4])
    n_jobs = [0]
    run_many = grader.run_many

    def counting(jobs, **kw):
        n_jobs[0] += len(jobs)
        return run_many(jobs, **kw)

    grader.run_many = counting
    pids = server_pids()
    a, r0, t0 = [proc_stat(p) for p in pids], resource.getrusage(resource.RUSAGE_SELF), time.time()
    try:
        for _ in range(reps):
            grade_batch(probs, comps)
    finally:
        grader.run_many = run_many
    dt, r1, b = time.time() - t0, resource.getrusage(resource.RUSAGE_SELF), [proc_stat(p) for p in pids]
    n = n_jobs[0]
    d = [sum(y[i] - x[i] for x, y in zip(a, b)) for i in range(6)]
    mine = r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime
    print(f"account: {n} jobs for {reps * len(probs)} organism completions in {dt:.2f}s ({reps * len(probs) / dt:.1f}/s); "
          f"per job: job processes {1e3 * (d[2] + d[3]) / n:.2f} ms CPU ({d[5] / n:.0f} page faults), "
          f"servers {1e3 * (d[0] + d[1]) / n:.2f} ms ({d[4] / n:.0f} page faults), grading process {1e3 * mine / n:.2f} ms")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=2, help="timed passes over each set")
    ap.add_argument("--per-mech", type=int, default=40, help="organism completions per loophole mechanism")
    ap.add_argument("--sets", default="leetcode,organism,hostile", help="comma-separated sets to time")
    ap.add_argument("--account", action="store_true",
                    help="only: CPU and page faults per job of the server sandbox on the organism set")
    a = ap.parse_args()
    if a.account:
        probs, comps = organism_set(a.per_mech)
        account(probs, comps, 2 * a.reps)
        return
    print(f"bwrap: {sandbox.use_bwrap()}, workers: {sandbox.n_workers()}, cores: {os.cpu_count()}")
    rates = {}
    for name, (probs, comps) in sets(a.per_mech).items():
        if name not in a.sets.split(","):
            continue
        reps = 1 if name == "hostile" else a.reps
        r = {mode: rate(mode, probs, comps, reps) for mode in ("process", "server")}
        rates[name] = r
        print(f"{name:9s} {len(probs):4d} completions x {reps}: process {r['process']:7.2f}/s  "
              f"server {r['server']:7.2f}/s  speedup {r['server'] / r['process']:5.1f}x", flush=True)
    o = rates.get("organism")
    if o is None:
        return
    print(f"speedup {o['server'] / o['process']:.1f}x (process {o['process']:.2f}/s, server {o['server']:.2f}/s)")


if __name__ == "__main__":
    main()
