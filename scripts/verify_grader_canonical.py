"""Gate: every canonical solution of the LeetCode test file grades 'Correct' with zero timeouts
while busy-loop processes keep both cores loaded; and two problems that share an id but not their
tests are each graded against their own tests (the expected-value cache is keyed by content), in
one batch and in two batches of one process. In `just smoke` the load comes from the gates running beside it (no
busy loops of its own; it is started first) and every third problem is graded (40 of 119); in `just smoke-full` all
119, the load from busy loops while it runs alone."""

import sys
import time

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from _gate_common import MIN_BUSY, BusyCores, MachineLoad, fence, full_tier, neighbours_load, problems, tier  # noqa: E402

# busy loops, one per core, in `just smoke-full` (where this gate runs alone) and when run by itself; none in `just
# smoke`, where it starts first beside the other gates, which keep the cores busy (measured, asserted >= MIN_BUSY)
BUSY = 0 if neighbours_load() else None

from projected_grpo.env.grader import grade_batch  # noqa: E402


def shared_id_check() -> int:
    """Canonical solutions of two different organism problems given the same id grade Correct."""
    from projected_grpo.organism import tasks

    a, b = tasks.generate_split("eval", 40, seed=5)[:2]
    b = dict(b, id=a["id"])
    assert a["gt_answer"] != b["gt_answer"], "the two problems must differ in their tests"
    sols = [fence(a["canonical_solution"]), fence(b["canonical_solution"])]
    labels = [r.label for r in grade_batch([a], sols[:1]) + grade_batch([b], sols[1:]) + grade_batch([a, b], sols)]
    assert labels == ["Correct"] * 4, f"problems sharing an id graded {labels} (expected values shared by id?)"
    return len(labels)


def main():
    n_shared = shared_id_check()
    ps = problems() if full_tier() else problems()[::3]  # fast tier: every third problem (40 of 119)
    t0 = time.time()
    with BusyCores(BUSY), MachineLoad() as load:
        results = grade_batch(ps, [fence(p["canonical_solution"]) for p in ps], progress=True)
    dt = time.time() - t0
    assert BUSY != 0 or load.busy >= MIN_BUSY, f"the cores were {load.busy:.0%} busy while grading: not under load"
    bad = [(r.problem_id, r.label, r.n_timeouts, r.gt_pass_rate, r.error) for r in results
           if r.label != "Correct" or r.n_timeouts or r.reward != 3.5]
    assert not bad, f"canonical solutions not graded Correct: {bad}"
    print(f"PASS verify_grader_canonical ({tier()} tier): {len(results)}/{len(ps)} canonical solutions Correct, "
          f"0 timeouts, reward 3.5 each, {dt:.1f}s with {BusyCores(BUSY).n} busy loops ({tier()} tier), the machine's cores "
          f"{load.busy:.0%} busy meanwhile; {n_shared} gradings of two problems "
          f"sharing an id each Correct against their own tests")


if __name__ == "__main__":
    main()
