"""A run's training, step by step (written for scorda-absorb seed 115, whose steps 0-39 erratum 7 promises): the
batch's mean reward, strict hack and ground-truth pass rates, and the step's grading seconds (its process's, shared by
the runs of that process), then the mean grading seconds over steps 24-39 and over steps 40-79 where the run has them.

    python3 docs/results/2026-12-07_decisive_n19/s115_trajectory.py out/decisive/organism_cpu/scorda-absorb_s115
    python3 docs/results/2026-12-07_decisive_n19/s115_trajectory.py out/decisive/organism_cpu/scorda-absorb_s116
"""

import sys
from pathlib import Path

from projected_grpo.loop import logs


def main(run: Path) -> None:
    grade_s = {r["step"]: r["t_grade"] for r in logs.read_jsonl(run / "metrics.jsonl")}
    print("step  reward  hack_strict  gt_pass  grade_s")
    for f in logs.step_files(run):
        rows = logs.read_step(f)
        n, step = len(rows), rows[0]["step"]
        mean = lambda k: sum(r[k] for r in rows) / n  # noqa: E731
        print(f"{step:4d}  {mean('reward'):6.3f}  {mean('hack_strict'):11.3f}  {mean('gt_pass'):7.3f}  {grade_s[step]:7.1f}")
    for lo, hi in ((24, 39), (40, 79)):
        s = [v for k, v in grade_s.items() if lo <= k <= hi]
        if s:
            print(f"grading s a step over steps {lo}-{hi}: mean {sum(s) / len(s):.2f}, min {min(s):.1f}, max {max(s):.1f} (n {len(s)})")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
