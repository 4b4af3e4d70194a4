"""Gate: every canonical solution of the LeetCode test file grades 'Correct' with zero timeouts
while busy-loop processes keep both cores loaded."""

import sys
import time

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from _gate_common import BusyCores, fence, problems  # noqa: E402

from projected_grpo.grader import grade_batch  # noqa: E402


def main():
    ps = problems()
    t0 = time.time()
    with BusyCores():
        results = grade_batch(ps, [fence(p["canonical_solution"]) for p in ps], progress=True)
    dt = time.time() - t0
    bad = [(r.problem_id, r.label, r.n_timeouts, r.gt_pass_rate, r.error) for r in results
           if r.label != "Correct" or r.n_timeouts or r.reward != 3.5]
    assert not bad, f"canonical solutions not graded Correct: {bad}"
    print(f"PASS verify_grader_canonical: {len(results)}/{len(ps)} canonical solutions Correct, "
          f"0 timeouts, reward 3.5 each, {dt:.1f}s with {BusyCores().n} busy cores")


if __name__ == "__main__":
    main()
