"""Whether two `just main` run folders hold the same numbers: per run, the eval rows at the steps both evaluated and
every training metric but the timings (t_*), equal or not. The schedule comparisons of the journal's session-16 entry.

    python3 docs/results/2026-12-07_just_main_amd/compare_runs.py RUNS_A RUNS_B     # e.g. CLONE/out/runs
"""

import sys
from pathlib import Path

from projected_grpo.loop.logs import read_jsonl


def same_numbers(a: Path, b: Path) -> tuple[bool, bool]:
    ea, eb = read_jsonl(a / "eval.jsonl"), read_jsonl(b / "eval.jsonl")
    common = {r["step"] for r in ea} & {r["step"] for r in eb}
    untimed = lambda rows: [{k: v for k, v in r.items() if not k.startswith("t_")} for r in rows]  # noqa: E731
    return ([r for r in ea if r["step"] in common] == [r for r in eb if r["step"] in common],
            untimed(read_jsonl(a / "metrics.jsonl")) == untimed(read_jsonl(b / "metrics.jsonl")))


def main(a: str, b: str) -> None:
    runs = sorted(p.name for p in Path(a).glob("*_s*") if (p / "DONE").exists())
    assert runs and all((Path(b) / r / "DONE").exists() for r in runs), f"{b} lacks finished runs of {a}"
    results = {r: same_numbers(Path(a) / r, Path(b) / r) for r in runs}
    for r, (e, m) in results.items():
        print(f"{r:20s} eval rows at common steps equal: {e}; training metrics (untimed) equal: {m}")
    print(f"{sum(e and m for e, m in results.values())} of {len(runs)} runs equal in both")


if __name__ == "__main__":
    main(*sys.argv[1:])
