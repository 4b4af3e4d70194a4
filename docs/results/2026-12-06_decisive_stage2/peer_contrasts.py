"""Exploratory (not registered): route against the peer arms, capacity and vanilla, paired by seed, at the family's Bonferroni
level, from this folder's analysis/results.json (eval step 79, deployed model).

    python3 docs/results/2026-12-06_decisive_stage2/peer_contrasts.py
    python3 docs/results/2026-12-06_decisive_stage2/peer_contrasts.py RESULTS_JSON ORGANISM   # another table's
"""

import json
import sys
from pathlib import Path

from projected_grpo.method import prereg

HERE = Path(__file__).resolve().parent
OTHERS = ("tdga-r1", "tdga-r5", "rebound", "rebound-adv", "rl-baseline", "capacity", "oracle-route", "route-grpo-vhack",
          "vanilla")


def main(results_json: str = str(HERE / "analysis" / "results.json"), organism: str = "cpu") -> None:
    per_seed = json.loads(Path(results_json).read_text())["organisms"][organism]["per_seed"]["79"]
    for outcome in ("hack", "solve"):
        route = per_seed["route"][outcome]["values"]
        for arm in OTHERS:
            other = per_seed[arm][outcome]["values"]
            seeds = sorted(set(route) & set(other))
            t = prereg.paired_test([route[s] - other[s] for s in seeds], m=12)
            print(f"route - {arm:16s} {outcome:5s} {t['mean']:+.3f} [{t['lo']:+.3f}, {t['hi']:+.3f}] (n {t['n']}, p {t['p']:.3g})")


if __name__ == "__main__":
    main(*sys.argv[1:])
