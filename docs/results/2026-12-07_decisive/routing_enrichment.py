"""Exploratory (not registered): how rich in hacks the routed quarter is, per arm and organism, from the runs' step
metrics (metrics.jsonl: hack_strict of the step's rollouts, routed_hack_strict of the routed ones). Enrichment is
routed_hack_strict - hack_strict, averaged over a run's steps that routed any rollout (first 40, last 40), then over seeds, with a t-interval.
Also the untrained policy's rates (eval row -1) and each arm's no-hint solve at eval step 79 with the quarantine block kept and ablated (the deployed model), mean
over seeds with a t-interval (eval.jsonl rows, cell 'all').

    (unpack the runs as README.md says, then)
    python3 docs/results/2026-12-07_decisive/routing_enrichment.py out/decisive
"""

import math
import sys
from pathlib import Path

from projected_grpo.loop.logs import read_jsonl
from projected_grpo.loop.stats import t_interval

ARMS = ("route", "route-random", "route-placebo", "route-negated", "route-subset-matched")


def enrichment(run: Path, steps: range) -> float:
    rows = read_jsonl(run / "metrics.jsonl")
    d = [r["routed_hack_strict"] - r["hack_strict"] for r in rows
         if r["step"] in steps and not math.isnan(r.get("routed_hack_strict", math.nan))]  # NaN: no rollout routed
    assert d, f"{run}: no routed_hack_strict in steps {steps}"
    return sum(d) / len(d)


def rate(run: Path, quarantine: str, step: int = 79, split: str = "nohint", field: str = "solve") -> float:
    rows = read_jsonl(run / "eval.jsonl")
    hit = [r[field] for r in rows if (r["step"], r["quarantine"], r["split"], r["cell"]) == (step, quarantine, split, "all")]
    assert len(hit) == 1, f"{run}: {len(hit)} {split} 'all' rows at step {step}, quarantine {quarantine}"
    return hit[0]


def main(root: str) -> None:
    for org in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        print(f"# {org.name}")
        for arm in ARMS:
            runs = sorted(r for r in org.glob(f"{arm}_s*") if (r / "DONE").exists())
            for steps in (range(0, 40), range(40, 80)):
                mean, lo, hi = t_interval([enrichment(r, steps) for r in runs])
                print(f"{arm:22s} steps {steps.start:2d}-{steps.stop - 1:2d}: routed minus batch hack rate "
                      f"{mean:+.3f} [{lo:+.3f}, {hi:+.3f}] (n {len(runs)})")
        runs = sorted(r for r in org.glob("vanilla_s*") if (r / "DONE").exists())
        h, s = (t_interval([rate(r, "kept", -1, sp, f) for r in runs])[0] for sp, f in (("hinted", "hack_strict"),
                                                                                      ("nohint", "solve")))
        print(f"untrained policy (vanilla runs' eval row -1): hack {h:.3f}, no-hint solve {s:.3f} (n {len(runs)})")
        for arm in ("vanilla",) + ARMS:
            runs = sorted(r for r in org.glob(f"{arm}_s*") if (r / "DONE").exists())
            cells = [t_interval([rate(r, q) for r in runs]) for q in ("kept", "ablated")]
            print(f"{arm:22s} no-hint solve at step 79: kept " + ", deployed ".join(
                f"{m:.3f} [{lo:.3f}, {hi:.3f}]" for m, lo, hi in cells) + f" (n {len(runs)})")


if __name__ == "__main__":
    main(*sys.argv[1:])
