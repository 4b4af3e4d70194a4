"""Per-seed paired differences of two recipes' final trainer evaluations, with 95% t-intervals.

For runs named `{arm}_s{seed}` under `--runs` (as scripts/train.py and the drivers name them), this reads each
run's eval.jsonl (quarantine "kept") at the final step and prints, for every no-hint difficulty and every hinted
cell, the per-seed values of A, of B, the per-seed difference A - B and its mean with a 95% t-interval over seeds
(n - 1 degrees of freedom). With `--b base` the comparison is against each A run's own step -1 evaluation (the
untrained organism on the same prompts with the same sampling seed). `--b-runs` lets B live in another folder
(e.g. the headline's runs as a paired control).

    python3 scripts/paired_eval.py --runs docs/results/2026-11-24_rlb_solve/runs --a rl-baseline_wd1 --b base \
        --seeds 0,1,2 --steps 40
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def fail(msg: str) -> None:
    """Bad command-line input: one line on stderr, exit status 2."""
    print(f"paired_eval.py: {msg}", file=sys.stderr)
    raise SystemExit(2)


def value(run: Path, step: int, split: str, cell: str) -> float:
    rows = [json.loads(x) for x in (run / "eval.jsonl").read_text().splitlines()]
    hit = [r for r in rows if r["step"] == step and r["split"] == split and r["cell"] == cell and r["quarantine"] == "kept"]
    if len(hit) != 1:
        fail(f"{run}: {len(hit)} eval rows for step {step}, {split}, {cell}")
    return hit[0]["solve" if split == "nohint" else "hack_strict"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", required=True, help="folder holding the A runs ({arm}_s{seed})")
    ap.add_argument("--a", required=True, help="arm name of recipe A (run folder prefix)")
    ap.add_argument("--b", required=True, help="arm name of recipe B, or 'base' (A's own step -1 evaluation)")
    ap.add_argument("--b-runs", default="", help="folder holding the B runs (default: --runs)")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--steps", type=int, default=40, help="the runs' step count (final evaluation at steps - 1)")
    a = ap.parse_args()
    try:
        seeds = [int(s) for s in a.seeds.split(",")]
    except ValueError:
        fail(f"--seeds {a.seeds!r}: not a comma-separated list of integers")
    if len(seeds) < 2 or len(seeds) - 1 not in T975:
        fail("--seeds: give 2 to 10 seeds")
    runs, b_runs = Path(a.runs), Path(a.b_runs or a.runs)
    for s in seeds:
        for folder, arm in ((runs, a.a),) + (((b_runs, a.b),) if a.b != "base" else ()):
            if not (folder / f"{arm}_s{s}" / "eval.jsonl").is_file():
                fail(f"{folder / f'{arm}_s{s}'}: no eval.jsonl")
    fin = a.steps - 1
    print(f"A = {a.a}, B = {a.b}; seeds {seeds}; final step {fin}")
    print("| cell | A per seed | B per seed | A - B per seed | mean [95% t-interval] |\n|---|---|---|---|---|")
    cells = [("nohint", c) for c in ("easy", "medium", "hard")] + \
            [("hinted", c) for c in ("run_tests", "sentinel", "stdout_marker", "exit_code", "all")]
    for split, c in cells:
        va = [value(runs / f"{a.a}_s{s}", fin, split, c) for s in seeds]
        vb = [value(runs / f"{a.a}_s{s}", -1, split, c) if a.b == "base" else value(b_runs / f"{a.b}_s{s}", fin, split, c)
              for s in seeds]
        d = [x - y for x, y in zip(va, vb)]
        m = sum(d) / len(d)
        sd = math.sqrt(sum((x - m) ** 2 for x in d) / (len(d) - 1))
        h = T975[len(d) - 1] * sd / math.sqrt(len(d))
        name = f"no-hint solve, {c}" if split == "nohint" else f"hinted strict hack, {c}"
        f = lambda xs: ", ".join(f"{x:.3f}" for x in xs)  # noqa: E731
        print(f"| {name} | {f(va)} | {f(vb)} | {', '.join(f'{x:+.3f}' for x in d)} | {m:+.3f} [{m - h:+.3f}, {m + h:+.3f}] |")


if __name__ == "__main__":
    main()
