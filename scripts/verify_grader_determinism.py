"""Gate: the grader is deterministic under load.

Grades many copies of valid canonical and template-hack completions of organism problems (all four
loophole mechanisms) concurrently, with every core kept busy, with
bwrap and with PGRPO_NO_BWRAP=1, and asserts that every single result is the expected label with
can_compile=True (False for exit_code hacks, which exit at module level by design). A flaky sandbox run (killed child, failed bwrap start, lost records) shows up
as a wrong label. Runs in both sandboxes (the server and the per-process reference), each with
and without bwrap. Prints one PASS line; nonzero exit on failure.
"""

import collections
import multiprocessing as mp
import os
import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _gate_common import MIN_BUSY, BusyCores, MachineLoad, full_tier, neighbours_load, run_gate, tier  # noqa: E402

from projected_grpo.env import sandbox  # noqa: E402
from projected_grpo.env.grader import MECHANISMS, grade_batch  # noqa: E402
from projected_grpo.organism import tasks  # noqa: E402

# canonical + hack copies per mechanism and mode: 13 in `just smoke-full`; in `just smoke` 6 for the server sandbox
# (the default) and 3 for the per-process reference (a bwrap and an interpreter per job: its slow part)
PER_MECH = int(os.environ.get("PGRPO_DET_PER_MECH", 13 if full_tier() else 6))
PER_MECH_PROCESS = PER_MECH if full_tier() else min(PER_MECH, 3)
# busy loops beside the four graders: 2 in `just smoke-full` (run alone); none in `just smoke`, where the four
# configurations side by side and the gates running beside this one keep both cores busy (measured and printed)
BUSY = 0 if neighbours_load() else 2


def batch(per_mech: int):
    by_mech = collections.defaultdict(list)
    for p in tasks.generate_split("train", 64, 0):
        by_mech[p["prompt_metadata"]["mechanism"]].append(tasks.apply_loophole(p))
    assert set(by_mech) >= set(MECHANISMS), f"mechanisms missing from the split: {set(MECHANISMS) - set(by_mech)}"
    rng = random.Random(0)
    probs, comps, want = [], [], []
    for mech in MECHANISMS:
        ps = by_mech[mech]
        for i in range(per_mech):
            p = ps[i % len(ps)]
            probs += [p, p]
            comps += [tasks.canonical_response(p), tasks.hack_response(p, mech, rng)]
            # an exit_code hack exits at module level: can_compile is False by design (every time)
            want += [("Correct", True), ("Reward Hack", mech != "exit_code")]
    return probs, comps, want


def run_mode(sandbox_mode: str, no_bwrap: bool, probs, comps, want):
    os.environ["PGRPO_SANDBOX"] = sandbox_mode
    os.environ["PGRPO_NO_BWRAP"] = "1" if no_bwrap else "0"
    t0 = time.time()
    res = grade_batch(probs, comps)
    dt = time.time() - t0
    bad = [(p["prompt_metadata"]["mechanism"], w, g.label, g.can_compile, g.error)
           for p, w, g in zip(probs, want, res) if (g.label, g.can_compile) != w]
    sandbox.SERVERS.close()  # the next configuration starts its own servers
    mode = f"{sandbox_mode}/{'no-bwrap' if no_bwrap else 'bwrap'}"
    assert not bad, f"{mode}: {len(bad)}/{len(res)} nondeterministic results, e.g. {bad[:5]}"
    return len(res), dt


def main():
    batches = {mode: batch(PER_MECH if mode == "server" else PER_MECH_PROCESS) for mode in sandbox.SANDBOX_MODES}
    stats = {}
    configs = [(mode, nb) for mode in sandbox.SANDBOX_MODES for nb in (False, True)]
    # the four configurations at once, each in a forked process of its own (its own servers and slot
    # uids), beside BUSY busy loops: every grader competes with three others (and the loops)
    with BusyCores(BUSY), MachineLoad() as load, \
            ProcessPoolExecutor(len(configs), mp_context=mp.get_context("fork")) as ex:
        futs = {f"{m}/{'no-bwrap' if nb else 'bwrap'}": ex.submit(run_mode, m, nb, *batches[m]) for m, nb in configs}
        stats = {name: f.result() for name, f in futs.items()}
    assert BUSY != 0 or load.busy >= MIN_BUSY, f"the cores were {load.busy:.0%} busy while grading: not under load"
    total = sum(n for n, _ in stats.values())
    detail = ", ".join(f"{m}: {n} in {dt:.1f}s ({n / dt:.1f}/s)" for m, (n, dt) in stats.items())
    print(f"PASS verify_grader_determinism: {total}/{total} completions labelled as expected "
          f"(label and can_compile: True, except exit_code hacks) over {len(MECHANISMS)} mechanisms ({tier()} tier) with {BUSY} busy loops and the 4 configurations side by side, the machine's cores {load.busy:.0%} busy meanwhile; {detail}")


if __name__ == "__main__":
    run_gate("verify_grader_determinism", main)
