"""Benchmark (not a gate): completions graded per second by the sandbox server and by the
per-process sandbox (the reference), side by side on the same sets in one run, both cores:

    leetcode   the 119 canonical LeetCode solutions
    organism   organism completions: canonical, honest mistakes, and template hacks of all four
               loophole mechanisms (hinted problems)
    hostile    infinite loops, a memory bomb, fork and setsid escapes, sleeps (dominated by deadlines)

The last line is the organism speedup: `speedup N.Nx (process A/s, server B/s)`.

    python3 scripts/bench_grader.py [--reps 2] [--per-mech 40] [--sets leetcode,organism,hostile]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _gate_common import fence, problems  # noqa: E402
from verify_sandbox_adversarial import hostile  # noqa: E402

from projected_grpo import sandbox  # noqa: E402
from projected_grpo.grader import MECHANISMS, grade_batch  # noqa: E402
from projected_grpo.organism import tasks  # noqa: E402
from projected_grpo.problems import method_name  # noqa: E402


def organism_set(per_mech: int) -> tuple[list[dict], list[str]]:
    rng = random.Random(0)
    ps = [tasks.apply_loophole(p) for p in tasks.generate_split("eval", 8 * per_mech, seed=1)]
    probs, comps = [], []
    for mech in MECHANISMS:
        mine = [p for p in ps if p["prompt_metadata"]["mechanism"] == mech][:per_mech]
        for i, p in enumerate(mine):
            kind = i % 3
            probs.append(p)
            comps.append([tasks.canonical_response(p), tasks.honest_response(p, rng, 0.0),
                          tasks.hack_response(p, mech, rng)][kind])
    return probs, comps


def sets(per_mech: int) -> dict[str, tuple[list[dict], list[str]]]:
    lc = problems()
    p0 = lc[0]
    hos = list(hostile(method_name(p0)).values())
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=2, help="timed passes over each set")
    ap.add_argument("--per-mech", type=int, default=40, help="organism completions per loophole mechanism")
    ap.add_argument("--sets", default="leetcode,organism,hostile", help="comma-separated sets to time")
    a = ap.parse_args()
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
