"""How far two runs of the same configuration drift apart: step by step, the share of identical completions
and the relative difference of the step's loss and gradient norm.

    python scripts/diff_runs.py RUN_A RUN_B                      # a table, one row per step
    python scripts/diff_runs.py RUN_A RUN_B --require-identical  # exit 1 unless every step log is identical

Used for the same seed run twice on one machine (identical step logs expected) and for one run on two machine
kinds (floating point differs, so sampled tokens part once a probability lands on the other side of a draw).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from projected_grpo.loop import logs

FIELDS = ("loss", "grad_norm")


def fail(msg: str) -> None:
    print(f"diff_runs.py: {msg}", file=sys.stderr)
    raise SystemExit(2)


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), abs(b), 1e-30)


def step_rows(a: Path, b: Path) -> list[dict]:
    """One row per step both runs logged: identical completions, identical step log (every rollout row equal; the
    gzip header's time stamp is not compared), relative differences of the step's metrics."""
    ma = {m["step"]: m for m in logs.read_jsonl(a / "metrics.jsonl")}
    mb = {m["step"]: m for m in logs.read_jsonl(b / "metrics.jsonl")}
    out = []
    for fa, fb in zip(logs.step_files(a), logs.step_files(b)):
        ra, rb = logs.read_step(fa), logs.read_step(fb)
        step = ra[0]["step"]
        same = sum(x["completion"] == y["completion"] for x, y in zip(ra, rb))
        out.append(dict(step=step, n=len(ra), same_completions=same, identical_log=ra == rb,
                        **{f"rel_{k}": rel(ma[step][k], mb[step][k]) for k in FIELDS if step in ma and step in mb}))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_a")
    ap.add_argument("run_b")
    ap.add_argument("--require-identical", action="store_true", help="exit 1 unless every step log is identical")
    a = ap.parse_args(argv)
    ra, rb = Path(a.run_a), Path(a.run_b)
    for r in (ra, rb):
        if not logs.step_files(r):
            fail(f"{r}: no step_*.jsonl.gz files")
    rows = step_rows(ra, rb)
    print("| step | identical completions | step log identical | rel. diff loss | rel. diff grad norm |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['step']} | {r['same_completions']}/{r['n']} | {'yes' if r['identical_log'] else 'no'} | "
              f"{r.get('rel_loss', float('nan')):.1e} | {r.get('rel_grad_norm', float('nan')):.1e} |")
    n_same = sum(r["identical_log"] for r in rows)
    first = next((r["step"] for r in rows if r["same_completions"] < r["n"]), None)
    print(f"{n_same}/{len(rows)} step logs identical; first step with a different completion: {first}")
    return 1 if a.require_identical and n_same < len(rows) else 0


if __name__ == "__main__":
    sys.exit(main())
