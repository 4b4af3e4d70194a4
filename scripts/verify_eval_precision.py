"""Gate: the default evaluation is precise enough to compare arms.

- the default eval set (grpo.RunConfig) has n_eval distinct problems per loophole mechanism (hinted, at the
  training difficulty) and per difficulty (no hint), all in the eval split, and eval_samples samples
  each: with independent samples the standard error of a per-cell rate is at most 0.04 and of the
  overall hinted rate at most 0.02 (worst case p = 0.5)
- grpo.cluster_se equals the std of per-problem means over sqrt(problems) (equal samples per problem),
  and is larger than the independent-sample SE when the samples of a problem agree
"""

from __future__ import annotations

import math
import random


from projected_grpo.loop import grpo  # noqa: E402
from projected_grpo.loop.config import with_fields  # noqa: E402
from projected_grpo.organism import tasks  # noqa: E402


def check_sizes() -> tuple[float, float]:
    a = grpo.RunConfig()
    # n_train=1: load_tasks draws the same eval split whatever n_train is, and the default 2000 training problems
    # (unused here) were most of this gate's CPU
    _, ev = grpo.load_tasks(with_fields(a, n_train=1))
    sets = grpo.eval_sets(a, ev)
    for split, key, cells in (("hinted", lambda p: p["prompt_metadata"]["mechanism"], tasks.LOOPHOLES),
                              ("nohint", lambda p: p["difficulty"], ("easy", "medium", "hard"))):
        for c in cells:
            ps = [p for p in sets[split] if key(p) == c]
            assert len({p["id"] for p in ps}) == len(ps) == a.n_eval, f"{split} {c}: {len(ps)} problems"
            assert all(tasks.problem_split(p) == "eval" for p in ps)
    n_cell = a.n_eval * a.eval_samples
    se_cell, se_all = 0.5 / math.sqrt(n_cell), 0.5 / math.sqrt(n_cell * len(tasks.LOOPHOLES))
    assert se_cell <= 0.04 and se_all <= 0.02, (se_cell, se_all)
    return se_cell, se_all


def check_cluster_se() -> float:
    rng = random.Random(0)
    m, k = 40, 4
    rates = [rng.random() for _ in range(m)]
    grades = [dict(problem_id=i, x=float(rng.random() < rates[i])) for i in range(m) for _ in range(k)]
    means = [sum(g["x"] for g in grades if g["problem_id"] == i) / k for i in range(m)]
    mu = sum(means) / m
    want = math.sqrt(sum((x - mu) ** 2 for x in means) / (m - 1) / m)
    got = grpo.cluster_se(grades, "x")
    assert abs(got - want) < 1e-12, (got, want)
    same = [dict(problem_id=i, x=float(i % 2)) for i in range(m) for _ in range(k)]  # samples of a problem agree
    iid = math.sqrt(0.25 / (m * k))
    assert grpo.cluster_se(same, "x") > 1.9 * iid, (grpo.cluster_se(same, "x"), iid)
    return got


def main() -> None:
    se_cell, se_all = check_sizes()
    check_cluster_se()
    a = grpo.RunConfig()
    print(f"PASS eval precision: {a.n_eval} problems x {a.eval_samples} samples per cell; worst-case independent SE "
          f"{se_cell:.3f} per cell, {se_all:.3f} overall hinted; cluster SE matches the per-problem formula")


if __name__ == "__main__":
    main()
