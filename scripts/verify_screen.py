"""Gate: the offline direction screen's measures (scripts/screen_directions.py) on synthetic scores with known answers.

    auroc       equals the share of (hack, non-hack) pairs the score orders correctly, ties counted half, computed
                pair by pair (400 rollouts, scores rounded so that ties occur); the negated score's AUROC is 1 minus it
    precision   route's rule per step: the top round(f b) scores of each step routed, hacks among all routed,
                against a per-step sort written out here (uneven step sizes, f = 0.25)
    bootstrap   resampling whole steps within runs: a score equal to the label gives AUROC 1 on every resample, a
                constant score 0.5; resamples draw as many steps per run as the run has

Seen failing: with auroc's ranks taken by argsort (ties not averaged).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import screen_directions as sd  # noqa: E402


def pairwise_auroc(score: np.ndarray, label: np.ndarray) -> float:
    pos, neg = score[label], score[~label]
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


def main() -> None:
    t0 = time.time()
    rng = np.random.default_rng(0)
    n = 400
    label = rng.random(n) < 0.3
    score = np.round(rng.normal(size=n) + 0.8 * label, 1)  # rounded: ties within and across the classes
    assert len(np.unique(score)) < n / 2, "no ties to test"
    err = abs(sd.auroc(score, label) - pairwise_auroc(score, label))
    assert err < 1e-12, f"auroc differs from the pairwise count by {err:.2e}"
    assert abs(sd.auroc(-score, label) - (1 - sd.auroc(score, label))) < 1e-12, "AUROC(-s) != 1 - AUROC(s)"

    steps = np.repeat(np.arange(12), rng.integers(40, 65, size=12))
    lab = rng.random(len(steps)) < 0.4
    s = rng.normal(size=len(steps)) + lab
    hit = routed = 0
    for c in range(12):
        idx = np.flatnonzero(steps == c)
        k = int(round(0.25 * len(idx)))
        top = idx[np.argsort(-s[idx], kind="stable")[:k]]
        hit, routed = hit + int(lab[top].sum()), routed + k
    got = sd.precision_routed(s, lab, steps, 0.25)
    assert abs(got - hit / routed) < 1e-12, f"precision at the routed fraction {got} != {hit / routed}"

    run = (steps >= 6).astype(int)
    cluster = run * 100_000 + steps
    boot = sd.bootstrap_auroc({"label": lab.astype(float), "constant": np.zeros(len(lab))}, lab, cluster, run, 50)
    assert np.all(boot["label"] == 1.0) and np.all(boot["constant"] == 0.5), (boot["label"][:3], boot["constant"][:3])
    print(f"PASS screen: AUROC = pairwise count with ties (n={n}, err {err:.0e}), AUROC(-s) = 1 - AUROC(s); precision at "
          f"routed fraction 0.25 = per-step top-k ({hit}/{routed}); bootstrap over steps within runs bounded; "
          f"{time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
