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
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from projected_grpo.loop.stats import t_interval  # noqa: E402


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
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        fail(f"--seeds {a.seeds!r}: give at least 2 distinct seeds")
    if a.steps < 1:
        fail(f"--steps {a.steps}: the runs' step count must be at least 1")
    runs, b_runs = Path(a.runs), Path(a.b_runs or a.runs)
    cells = [("nohint", c) for c in ("easy", "medium", "hard")] + \
            [("hinted", c) for c in ("run_tests", "sentinel", "stdout_marker", "exit_code", "all")]
    fin = a.steps - 1
    for s in seeds:
        for folder, arm in ((runs, a.a),) + (((b_runs, a.b),) if a.b != "base" else ()):
            run = folder / f"{arm}_s{s}"
            if not (run / "eval.jsonl").is_file():
                fail(f"{run}: no eval.jsonl")
            if not (run / "args.json").is_file():
                fail(f"{run}: no args.json (needed to check --steps {a.steps} against the run)")
            if json.loads((run / "args.json").read_text())["steps"] != a.steps:
                fail(f"--steps {a.steps}: {run}/args.json says the run has {json.loads((run / 'args.json').read_text())['steps']} steps")
            for split, c in cells:  # every row present before anything is printed
                value(run, fin, split, c)
                if a.b == "base":
                    value(run, -1, split, c)
    print(f"A = {a.a}, B = {a.b}; seeds {seeds}; final step {fin}")
    print("| cell | A per seed | B per seed | A - B per seed | mean [95% t-interval] |\n|---|---|---|---|---|")
    for split, c in cells:
        va = [value(runs / f"{a.a}_s{s}", fin, split, c) for s in seeds]
        vb = [value(runs / f"{a.a}_s{s}", -1, split, c) if a.b == "base" else value(b_runs / f"{a.b}_s{s}", fin, split, c)
              for s in seeds]
        d = [x - y for x, y in zip(va, vb)]
        m, lo, hi = t_interval(d)
        name = f"no-hint solve, {c}" if split == "nohint" else f"hinted strict hack, {c}"
        f = lambda xs: ", ".join(f"{x:.3f}" for x in xs)  # noqa: E731
        print(f"| {name} | {f(va)} | {f(vb)} | {', '.join(f'{x:+.3f}' for x in d)} | {m:+.3f} [{lo:+.3f}, {hi:+.3f}] |")


if __name__ == "__main__":
    main()
