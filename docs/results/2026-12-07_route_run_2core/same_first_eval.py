"""Groups the runs of a folder by their evaluation before training (eval rows at step -1, quarantine kept): runs in
one group have equal hack and solve rates in every cell. Prints each group's run names.

    python3 docs/results/2026-12-07_route_run_2core/same_first_eval.py docs/results/2026-12-07_route_run_2core/first_eval_cpu
    python3 docs/results/2026-12-07_route_run_2core/same_first_eval.py out/decisive/organism_cpu --seed 110
"""

import argparse
import collections
from pathlib import Path

from projected_grpo.loop import logs


def first_eval(run: Path) -> tuple:
    rows = [r for r in logs.read_jsonl(run / "eval.jsonl") if r["step"] == -1 and r["quarantine"] == "kept"]
    assert rows, f"{run}: no eval rows at step -1"
    return tuple(sorted((r["split"], r["cell"], r["n"], r["hack_strict"], r["solve"]) for r in rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", type=Path)
    ap.add_argument("--seed", type=int, default=None, help="only runs named *_s<seed>")
    a = ap.parse_args()
    pattern = f"*_s{a.seed}" if a.seed is not None else "*"
    groups = collections.defaultdict(list)
    for run in sorted(d for d in a.runs.glob(pattern) if (d / "eval.jsonl").exists()):
        groups[first_eval(run)].append(run.name)
    for i, names in enumerate(groups.values()):
        print(f"group {i}: {len(names)} runs with equal step -1 rows: {', '.join(names)}")


if __name__ == "__main__":
    main()
