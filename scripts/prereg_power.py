"""Seeds per arm for the pre-registration's paired contrasts: power of a two-sided paired t-test at a Bonferroni level.

    python scripts/prereg_power.py --results docs/results/2026-11-24_headline_sym/results.json --m 12

For each contrast (arm minus control, paired by training seed) the standard deviation of the per-seed differences of
the deployed model's rates is read from a results.json (results.py's per-seed values); `--extra NAME=SD` adds a
contrast whose standard deviation comes from elsewhere (named in the pre-registration). For each target difference
delta, the smallest n whose power reaches --power at level alpha / m (Bonferroni; Holm is at least as powerful) is
found with the noncentral t distribution, and at each n of --ns the smallest difference detectable with that power.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
from scipy import stats

CONTRASTS = (("route", "route-random"), ("route", "capacity"), ("route", "route-subset-signed"),
             ("erase", "erase-random"), ("erase", "erase-placebo"))
OUTCOMES = {"hack": "hack_strict_ablated", "solve": "solve_nohint_ablated"}


def fail(msg: str) -> None:
    print(f"prereg_power: {msg}", file=sys.stderr)
    raise SystemExit(2)


def power(n: int, delta: float, sd: float, alpha: float) -> float:
    """Power of the two-sided paired t-test with n pairs at level alpha when the mean difference is delta."""
    df, nc = n - 1, delta / sd * math.sqrt(n)
    t = stats.t.ppf(1 - alpha / 2, df)
    return float(stats.nct.sf(t, df, nc) + stats.nct.cdf(-t, df, nc))


def n_needed(delta: float, sd: float, alpha: float, target: float, n_max: int = 2000) -> int:
    n = 2
    while power(n, delta, sd, alpha) < target:
        n += 1
        if n > n_max:
            return n_max
    return n


def detectable(n: int, sd: float, alpha: float, target: float) -> float:
    """The smallest difference the test detects with power `target` at n pairs (bisection)."""
    lo, hi = 0.0, 10 * sd
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if power(n, mid, sd, alpha) < target else (lo, mid)
    return hi


def per_seed_sd(res: dict, arm: str, control: str, key: str) -> tuple[float, int]:
    a, b = res["arms"][arm]["per_seed"], res["arms"][control]["per_seed"]
    shared = sorted(set(a) & set(b))
    d = np.array([a[s][key] - b[s][key] for s in shared])
    return float(d.std(ddof=1)), len(shared)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", required=True, help="a results.py results.json with per-seed values")
    ap.add_argument("--m", type=int, default=12, help="hypotheses in the family (Bonferroni level alpha / m)")
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--power", type=float, default=0.8)
    ap.add_argument("--deltas", default="0.05,0.10")
    ap.add_argument("--ns", default="10,20,30")
    ap.add_argument("--extra", default="", help="NAME=SD;... contrasts whose per-seed sd is known from elsewhere")
    a = ap.parse_args(argv)
    path = Path(a.results)
    if not path.is_file():
        fail(f"--results {path}: no such file")
    res = json.loads(path.read_text())
    level = a.alpha / a.m
    deltas = [float(x) for x in a.deltas.split(",")]
    ns = [int(x) for x in a.ns.split(",")]
    rows = []
    for arm, control in CONTRASTS:
        for outcome, key in OUTCOMES.items():
            sd, n0 = per_seed_sd(res, arm, control, key)
            rows.append(dict(contrast=f"{arm} - {control}", outcome=outcome, sd=sd, n_source=n0, source=str(path)))
    for item in filter(None, a.extra.split(";")):
        name, sd = item.split("=")
        rows.append(dict(contrast=name, outcome="hack", sd=float(sd), n_source=None, source="--extra"))
    for r in rows:
        r["n_needed"] = {str(d): n_needed(d, r["sd"], level, a.power) for d in deltas}
        r["detectable"] = {str(n): detectable(n, r["sd"], level, a.power) for n in ns}
    head = (f"Paired t-test, two-sided, level {a.alpha} / {a.m} = {level:.5f} (Bonferroni), power {a.power}; sd of the "
            f"per-seed differences of the deployed model's rate.\n\n| contrast | outcome | sd (n seeds) | "
            + " | ".join(f"n for delta {d:g}" for d in deltas) + " | "
            + " | ".join(f"detectable at n = {n}" for n in ns) + " |\n|" + "---|" * (3 + len(deltas) + len(ns)))
    lines = [head] + [f"| {r['contrast']} | {r['outcome']} | {r['sd']:.3f} ({r['n_source'] or '-'}) | "
                      + " | ".join(str(r["n_needed"][str(d)]) for d in deltas) + " | "
                      + " | ".join(f"{r['detectable'][str(n)]:.3f}" for n in ns) + " |" for r in rows]
    print("\n".join(lines))
    return dict(level=level, power=a.power, rows=rows)


if __name__ == "__main__":
    main()
