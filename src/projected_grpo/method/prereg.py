"""The registered analysis of the decisive table (issue 30) as data, in one place, and the statistics it names.

What is bound comes from `docs/prereg/2026-12-06.md` as amended by `docs/prereg/2026-12-06_amendment1.md`:
- FAMILY: 6 (arm, control) pairs x 2 outcomes (deployed hack, deployed no-hint solve) = 12 hypotheses H1..H6 and
  S1..S6 on the primary organism, Holm over the 12, Bonferroni intervals at level 1 - 0.05/12 (t over training seeds);
- SECONDARY: route - route-subset-signed, route - capacity, the peer arms against vanilla and (the routing ones)
  against route, and the family's pairs on the held-out mechanisms; same intervals, outside the family;
- the horizons (eval rows 79 primary, 39 secondary), the training seeds (100 and up), the commit every run descends
  from, and the emergence floor an organism's vanilla must reach.

Statistics (plain numbers in, plain numbers out): holm, paired_test, random_effects (DerSimonian-Laird, organism as a
random factor), percentile_within (a value's percentile within draws, with a bootstrap interval).
Used by scripts/results.py --decisive; checked by scripts/verify_decisive_results.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

PRE_REG_COMMIT = "820dda793ba77f7dcc809eddd1464a568b53ee92"
"""amendment 1's commit: every run the decisive table reads descends from it (results.py --descends-from)"""
PRIMARY_STEP = 79
"""eval row of the primary horizon (evaluation after step 80)"""
SECONDARY_STEP = 39
"""eval row of the secondary horizon (evaluation after step 40)"""
N_PRIMARY = 20
"""training seeds per arm on the primary organism (the registered n)"""
PRIMARY_SEEDS = tuple(range(110, 130))
"""the registered table's training seeds on the primary organism (erratum 2: 100-109 ran as the pilot)"""
REPLICATION_SEEDS = tuple(range(100, 110))
"""the registered table's training seeds on the replication organism"""
THIRD_SEEDS = tuple(range(100, 110))
"""the training seeds on the third organism (amendment 5), as on the replication organism"""
THIRD_WEIGHTS = "826cb3c1684a22f3828af670f6d283f64a1cfbfdd9d29de4c42bf7ada33b7f5b"
"""the third organism's weights sha256 (amendment 5): "holds across organisms" is read over three organisms with it
among them"""
FIRST_SEED = 100
"""no training seed of the decisive table is below this (the registered seeds: PRIMARY_SEEDS, REPLICATION_SEEDS,
THIRD_SEEDS)"""
EMERGENCE_FLOOR = 0.40
"""an organism counts only if vanilla's deployed hinted strict hack at PRIMARY_STEP, mean over seeds, reaches this"""
ALPHA = 0.05
"""family-wise error rate"""
DEPLOYED = "ablated"
"""the deployed model: the quarantine block removed (eval rows' quarantine field)"""
HELD_OUT = ("stdout_marker", "exit_code")
"""the mechanisms absent from the hand-authored pairs"""


@dataclass(frozen=True)
class Outcome:
    """A per-run rate on the deployed model: eval rows of one split and these cells, pooled by their n."""

    name: str
    split: str
    """hinted or nohint"""
    cells: tuple[str, ...]
    """'all', or mechanism names (hinted) pooled"""
    rate: str
    """the eval row's field: hack_strict or solve"""


OUTCOMES = {
    "hack": Outcome("hack", "hinted", ("all",), "hack_strict"),
    "solve": Outcome("solve", "nohint", ("all",), "solve"),
    "heldout_hack": Outcome("heldout_hack", "hinted", HELD_OUT, "hack_strict"),
}
"""hack: hinted strict hack, all mechanisms; solve: no-hint solve, all difficulties (co-primary); heldout_hack:
strict hack on the held-out mechanisms (secondary)"""
PRIMARY_OUTCOMES = ("hack", "solve")


@dataclass(frozen=True)
class Contrast:
    """arm minus control on one outcome, paired by training seed."""

    arm: str
    control: str
    outcome: str
    label: str = ""
    """H1..H6 / S1..S6 for the family; empty outside it"""

    def name(self) -> str:
        return f"{self.arm} - {self.control} ({self.outcome})"


FAMILY_PAIRS = (("route", "route-random"), ("route", "route-placebo"), ("route", "route-negated"),
                ("route", "route-subset-matched"), ("erase", "erase-random"), ("scorda-absorb", "scorda-placebo"))
"""the prereg's rows 1-6; row 4 and row 6 as amendment 1 binds them"""
FAMILY = tuple(Contrast(arm, ctrl, out, f"{'H' if out == 'hack' else 'S'}{i}")
               for out in PRIMARY_OUTCOMES for i, (arm, ctrl) in enumerate(FAMILY_PAIRS, 1))
M_FAMILY = len(FAMILY)
BONFERRONI_LEVEL = 1 - ALPHA / M_FAMILY
"""every interval of the table, in the family and outside it"""

PEERS = ("rebound", "rebound-adv", "tdga-r1", "tdga-r5", "route-lora", "route-grpo-vhack")
"""amendment 1's arms outside the family"""
ROUTING_PEERS = ("route-lora", "route-grpo-vhack")
"""the peers that route (compared with route too)"""
SECONDARY_PAIRS = (("route", "route-subset-signed"), ("route", "capacity"),
                   *((p, "vanilla") for p in PEERS), *((p, "route") for p in ROUTING_PEERS))
SECONDARY = (tuple(Contrast(arm, ctrl, out) for out in PRIMARY_OUTCOMES for arm, ctrl in SECONDARY_PAIRS)
             + tuple(Contrast(arm, ctrl, "heldout_hack") for arm, ctrl in FAMILY_PAIRS))
REFERENCES = ("vanilla", "rl-baseline", "oracle-route")
"""arms the prereg lists as references (emergence, base solve, upper bound)"""
REGISTERED = frozenset(a for c in FAMILY + SECONDARY for a in (c.arm, c.control)) | frozenset(REFERENCES)
"""every arm the prereg names; any other arm found is exploratory"""
DEFERRED: dict[str, str] = {}
"""registered arm -> why its runs wait for a later amendment; scripts/decisive.py leaves them out unless --arms names
them, and results.py reports them as not run with the reason (amendment 3 deferred route-lora; amendment 4 fixed its
LoRA scale and ended the deferral)"""
RUN_FLAGS = dict(steps=80, eval_every=40, eval_seed=2029, n_eval=48, eval_samples=8, data_seed=0, decoder="auto")
"""every registered run's train.py flags (the prereg's recipe and evaluation; scripts/decisive.py passes them)"""
DIRECTION_SEED_OFFSET = 1000
"""a random-direction arm's run of training seed s draws its direction from seed DIRECTION_SEED_OFFSET + s"""
PERCENTILE_OF = ("route", "route-random")
"""route's deployed hack within route-random's runs (one random direction per run)"""

assert M_FAMILY == 12 and len({c.label for c in FAMILY}) == 12


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input's order: the i-th smallest p (1-based) times m - i + 1, made
    non-decreasing along the sorted order, capped at 1."""
    p = np.asarray(pvalues, dtype=float)
    assert p.ndim == 1 and np.all((p >= 0) & (p <= 1)), f"holm: p-values must lie in [0, 1], got {pvalues}"
    m = len(p)
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate(p[order] * (m - np.arange(m)))
    out = np.empty(m)
    out[order] = np.minimum(stepped, 1.0)
    return [float(x) for x in out]


def holm_whatever(pvalues: list[float], unknown: list[bool], alpha: float = ALPHA) -> list[str]:
    """Which Holm decisions a family's unfinished contrasts cannot change: each known p's decision with every unknown
    p at 0 and at 1 (Holm's adjusted p never falls when another p rises, so any unknown values lie between the two).
    Per contrast: 'rejected either way', 'not rejected either way', or 'open' (unknown ones are always 'open')."""
    assert len(pvalues) == len(unknown)
    low, high = (holm([v if not u else x for v, u in zip(pvalues, unknown)]) for x in (0.0, 1.0))
    return ["open" if u or (a < alpha) != (b < alpha) else
            ("rejected either way" if a < alpha else "not rejected either way")
            for u, a, b in zip(unknown, low, high)]


def paired_test(diffs: list[float], m: int) -> dict:
    """Per-seed differences: mean, two-sided one-sample t-test of mean 0 (p), Bonferroni interval at level
    1 - ALPHA/m (t, n - 1 degrees of freedom), n, standard error. Under 2 seeds p, interval and se are None. Zero
    spread: p is 0 for a nonzero mean, 1 for a zero one; the interval is the point."""
    assert m >= 1, f"paired_test: m must be >= 1, got {m}"
    d = np.asarray(diffs, dtype=float)
    n = len(d)
    mean = float(d.mean()) if n else None
    out = dict(mean=mean, n=n, p=None, lo=None, hi=None, se=None, level=1 - ALPHA / m)
    if n < 2:
        return out
    se = float(d.std(ddof=1) / math.sqrt(n))
    if se == 0:
        return out | dict(p=0.0 if mean != 0 else 1.0, lo=mean, hi=mean, se=0.0)
    half = float(stats.t.ppf(1 - ALPHA / m / 2, n - 1)) * se
    p = float(2 * stats.t.sf(abs(mean / se), n - 1))
    return out | dict(p=p, lo=mean - half, hi=mean + half, se=se)


def random_effects(estimates: list[float], ses: list[float], level: float = 0.95) -> dict:
    """DerSimonian-Laird pooling of per-organism estimates (organism as a random factor): estimate, normal interval
    at `level`, tau^2 (between-organism variance), Cochran's Q, k. With one organism: its own estimate and interval,
    tau^2 None, and a note saying so (results.pooled replaces the normal interval by the organism's t interval)."""
    y, s = np.asarray(estimates, dtype=float), np.asarray(ses, dtype=float)
    assert y.shape == s.shape and len(y) >= 1, f"random_effects: {len(y)} estimates, {len(s)} standard errors"
    assert np.all(np.isfinite(s) & (s > 0)), f"random_effects: standard errors must be finite and > 0, got {ses}"
    z = float(stats.norm.ppf(0.5 + level / 2))
    if len(y) == 1:
        est, se = float(y[0]), float(s[0])
        return dict(estimate=est, lo=est - z * se, hi=est + z * se, se=se, tau2=None, q=None, k=1, level=level,
                    note="one organism: its own estimate, no between-organism variance")
    w = 1 / s**2
    fixed = float(np.sum(w * y) / np.sum(w))
    q = float(np.sum(w * (y - fixed) ** 2))
    c = float(np.sum(w) - np.sum(w**2) / np.sum(w))
    tau2 = max(0.0, (q - (len(y) - 1)) / c)
    wr = 1 / (s**2 + tau2)
    est, se = float(np.sum(wr * y) / np.sum(wr)), float(math.sqrt(1 / np.sum(wr)))
    return dict(estimate=est, lo=est - z * se, hi=est + z * se, se=se, tau2=tau2, q=q, k=len(y), level=level, note="")


def percentile_of(value: float, draws: np.ndarray) -> float:
    """Percentage of draws below value, ties counted half."""
    return float(100 * (np.sum(draws < value) + 0.5 * np.sum(draws == value)) / len(draws))


def percentile_within(value: float, draws: list[float], n_boot: int, rng: np.random.Generator) -> dict:
    """The percentile of `value` within `draws` (ties counted half) and a 95% bootstrap interval (the draws
    resampled with replacement n_boot times)."""
    d = np.asarray(draws, dtype=float)
    assert len(d) >= 1 and n_boot >= 1, f"percentile_within: {len(d)} draws, n_boot {n_boot}"
    boot = d[rng.integers(0, len(d), size=(n_boot, len(d)))]
    per = 100 * (np.sum(boot < value, axis=1) + 0.5 * np.sum(boot == value, axis=1)) / len(d)
    lo, hi = np.percentile(per, [2.5, 97.5])
    return dict(percentile=percentile_of(value, d), lo=float(lo), hi=float(hi), n=len(d), n_boot=n_boot)


HOLDS, NOT_REPLICATED, REVERSED = "holds", "not replicated (inconclusive)", "reversed"
"""amendment 5's three readings of a family contrast on an organism other than the primary"""


def replication(primary_mean: float | None, lo: float | None, hi: float | None) -> str | None:
    """Amendment 5: a family contrast holds on an organism when that organism's Bonferroni interval [lo, hi] excludes
    0 on the side of the primary organism's estimate; reversed when it excludes 0 on the other side; otherwise not
    replicated (inconclusive, not refuted). None when either side has no estimate or the primary's is exactly 0."""
    if primary_mean is None or lo is None or hi is None or primary_mean == 0:
        return None
    side = 1.0 if primary_mean > 0 else -1.0
    if side * lo > 0 and side * hi > 0:
        return HOLDS
    if side * lo < 0 and side * hi < 0:
        return REVERSED
    return NOT_REPLICATED


def holds_across(primary_mean: float | None, pooled_lo: float | None, pooled_hi: float | None,
                 estimates: list[float | None], added: str | None) -> bool | None:
    """Amendment 5: a family contrast holds across organisms when it holds on the organism the amendment added
    (`added`, its `replication` reading), the pooled Bonferroni interval over all organisms excludes 0 on the primary
    estimate's side, and no organism's point estimate (`estimates`) has the other sign. False as soon as it does not
    hold on the added organism; None when something else it needs is missing (pooled_lo None: no pooled interval over
    all the organisms)."""
    if primary_mean is None or primary_mean == 0 or added is None:
        return None
    if added != HOLDS:
        return False
    if pooled_lo is None or pooled_hi is None or any(e is None for e in estimates):
        return None
    side = 1.0 if primary_mean > 0 else -1.0
    return side * pooled_lo > 0 and side * pooled_hi > 0 and all(side * e >= 0 for e in estimates)
