"""Training reward a step of each run of the route-lora diagnosis (unpack runs.part*.tar.xz first):

    python3 scripts/pack_runs.py --unpack docs/results/2026-12-06_route_lora_collapse/runs.part0.tar.xz out/lora_diag
    python3 docs/results/2026-12-06_route_lora_collapse/read.py out/lora_diag/runs
"""

import sys
from pathlib import Path

from projected_grpo.loop import logs


def main(root: Path) -> None:
    for run in sorted(p for p in root.iterdir() if (p / "metrics.jsonl").exists()):
        rows = [r for r in logs.read_jsonl(run / "metrics.jsonl") if "reward" in r]
        rewards = " ".join(f"{r['reward']:.2f}" for r in rows)
        print(f"{run.name:34s} reward by step: {rewards}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
