"""Gate: --eval-seed gives an evaluation set no earlier choice has read, and its default leaves every run as it was.

    python scripts/verify_eval_split.py                 the gate, for the pre-registered eval seed (EVAL_SEED)
    python scripts/verify_eval_split.py --eval-seed N   the same report for another eval seed

With the organism's default recipe (data seed 0, 2000 hard training problems, 48 eval problems per cell):

    default   --eval-seed -1 (the default) and --eval-seed 7 draw the eval split every earlier run was evaluated on
              (tasks.generate_split("eval", ..., data_seed + 7)), problem for problem
    fresh     the chosen eval seed's evaluated problems (grpo.eval_sets: the hinted and no-hint sets) share no problem
              with the current evaluated problems or with the training split: no identical prompt text and no
              identical (pipeline, method name, tests); the pipelines they share (the same list operations with
              another method name and other tests) are counted per difficulty and reported, not required to be 0
              (easy pipelines are few: about 50 exist)
    refusals  --eval-seed -2 and --eval-seed with a jsonl task are refused (ConfigError naming the flag)

Seen failing: with grpo.eval_split_seed ignoring --eval-seed, and with it ignoring the -1 default.
"""

from __future__ import annotations

import argparse
import time

from projected_grpo.loop import grpo
from projected_grpo.loop.config import ConfigError, RunConfig, check, with_fields
from projected_grpo.organism import tasks

EVAL_SEED = 2029
"""The eval seed the pre-registration (docs/prereg/2026-12-06.md) names for the decisive table."""


def evaluated(cfg: RunConfig, loaded: tuple[list[dict], list[dict]] | None = None) -> tuple[list[dict], list[dict]]:
    """(training problems, the problems an evaluation of this configuration samples: hinted and no-hint sets);
    `loaded`: grpo.load_tasks(cfg) when the caller has it already (each call deep-copies and hints 4300 problems)."""
    train, ev = loaded or grpo.load_tasks(cfg)
    sets = grpo.eval_sets(cfg, ev)
    return train, sets["hinted"] + sets["nohint"]


def key(p: dict) -> tuple:
    return tasks.signature([tuple(s) for s in p["prompt_metadata"]["steps"]]), p["func_name"], tuple(p["gt_answer"])


def question(p: dict) -> str:
    """The prompt text without the loophole hint (hinted and unhinted copies of one problem read the same)."""
    return p["prompt"][-1]["content"].replace(tasks.LOOPHOLE_HINTS.get(p.get("hint") or "", "\0"), "")


def pipelines(ps: list[dict], difficulty: str) -> set[str]:
    return {key(p)[0] for p in ps if p["difficulty"] == difficulty}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eval-seed", type=int, default=EVAL_SEED)
    a = ap.parse_args(argv)
    t0 = time.time()
    base = RunConfig()
    n = base.n_eval * 4 * 3 * 4
    today = [p["id"] for p in tasks.generate_split("eval", n, base.data_seed + 7)]
    loaded = {seed: grpo.load_tasks(with_fields(base, eval_seed=seed)) for seed in (-1, base.data_seed + 7)}
    for seed, (_, ev) in loaded.items():
        assert [p["id"] for p in ev] == today, f"--eval-seed {seed}: not the eval split earlier runs used"
    assert base.eval_seed == -1, base.eval_seed  # so the -1 load above is the default configuration's
    train, current = evaluated(base, loaded[-1])
    # n_train=1: only the fresh eval set is read here (load_tasks draws the eval split whatever n_train is)
    _, fresh = evaluated(with_fields(base, eval_seed=a.eval_seed, n_train=1))
    assert len(fresh) == len(current) == 7 * base.n_eval, (len(fresh), len(current))
    for name, other in (("the current eval set", current), ("the training split", train)):
        same_key = {key(p) for p in fresh} & {key(p) for p in other}
        same_text = {question(p) for p in fresh} & {question(p) for p in other}
        assert not same_key and not same_text, \
            f"--eval-seed {a.eval_seed}: {len(same_key)} problems ({len(same_text)} prompts) shared with {name}"
    shared = {d: (len(pipelines(fresh, d) & (pipelines(current, d) | pipelines(train, d))), len(pipelines(fresh, d)))
              for d in ("easy", "medium", "hard")}
    for bad, why in ((dict(eval_seed=-2), "--eval-seed"), (dict(eval_seed=a.eval_seed, task="data/leetcode_test_medhard.jsonl"),
                                                          "--eval-seed")):
        try:
            check(with_fields(base, **bad))
        except ConfigError as e:
            assert str(e).startswith(why), e
        else:
            raise AssertionError(f"{bad}: not refused")
    print(f"PASS eval_split: --eval-seed -1 and 7 give the eval split of every earlier run ({n} problems); --eval-seed "
          f"{a.eval_seed}'s {len(fresh)} evaluated problems share no problem and no prompt with the current "
          f"{len(current)} or the {len(train)} training problems; shared pipelines (other method name and tests) "
          + ", ".join(f"{d} {k}/{m}" for d, (k, m) in shared.items())
          + f"; -2 and a jsonl task refused; {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
