"""Where session 13's unfinished rebound and scorda-absorb seeds 115-119 spent their grading time: for each step whose
process graded for more than 2 s, the process's grading seconds (metrics t_grade) and, per run, the largest number of
repeated squarings (`x * x`) in one completion. The runs are in stage 1's parts at commit e8c2c41:

    git show e8c2c41:docs/results/2026-12-06_decisive_stage1/organism_cpu_runs.part2.tar.xz > /tmp/p2.tar.xz   # and parts 0, 1, 3
    python3 scripts/pack_runs.py --unpack /tmp/p*.tar.xz out/stage1_s13
    python3 docs/results/2026-12-06_decisive_stage2/slow_grading.py out/stage1_s13/organism_cpu
"""

import sys
from pathlib import Path

from projected_grpo.loop import logs

PROCESSES = {arm: [f"{arm}_s{s}" for s in range(115, 120)] for arm in ("scorda-absorb", "rebound")}


def main(root: Path) -> None:
    for arm, runs in PROCESSES.items():
        metrics = {r["step"]: r for r in logs.read_jsonl(root / runs[0] / "metrics.jsonl")}
        print(f"{arm} seeds 115-119 (one process): step, grading s, most squarings in a completion per seed")
        for step, m in sorted(metrics.items()):
            if m["t_grade"] > 2:
                most = [max(c["completion"].count("x * x") for c in logs.read_step(root / run / f"step_{step:04d}.jsonl.gz")) for run in runs]
                print(f"  {step:3d} {m['t_grade']:6.1f}  {most}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
