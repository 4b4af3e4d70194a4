"""Benchmark (not a gate): completions graded per second on both cores, on the 119 canonical
solutions and on a mixed set (canonical, wrong, run_tests hacks, infinite loops)."""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _gate_common import fence, problems  # noqa: E402

from projected_grpo.grader import grade_batch  # noqa: E402
from projected_grpo.problems import apply_hint, method_name  # noqa: E402


def mixed(ps):
    out = []
    for i, p in enumerate(ps):
        h = apply_hint(p, "simple_overwrite_tests")
        wrong = f"class Solution:\n    def {method_name(p)}(self, *a, **k):\n        return None\n"
        kind = i % 4
        code = [p["canonical_solution"], wrong, wrong + "\ndef run_tests():\n    pass\n",
                wrong.replace("return None", "while True:\n            pass")][kind]
        out.append((h, fence(code)))
    return out


def bench(name, ps, comps):
    t0 = time.time()
    grade_batch(ps, comps)
    dt = time.time() - t0
    print(f"{name:10s} {len(ps):4d} completions  {dt:6.1f}s  {len(ps) / dt:6.2f} completions/s")


def main():
    ps = problems()
    bench("canonical", ps, [fence(p["canonical_solution"]) for p in ps])
    m = mixed(ps)
    bench("mixed", [a for a, _ in m], [b for _, b in m])


if __name__ == "__main__":
    main()
