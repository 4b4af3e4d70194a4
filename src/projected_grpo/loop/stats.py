"""Interval estimates over seeds, shared by scripts/results.py and scripts/paired_eval.py."""

from __future__ import annotations

import numpy as np
from scipy import stats


def t_interval(d: list[float]) -> tuple[float, float, float] | None:
    """(mean, 2.5%, 97.5%) t-interval (n-1 degrees of freedom) of per-seed values; None under 2 seeds."""
    d = np.asarray(d, dtype=float)
    if len(d) < 2:
        return None
    h = float(stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)))
    return float(d.mean()), float(d.mean() - h), float(d.mean() + h)
