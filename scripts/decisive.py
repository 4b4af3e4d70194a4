"""The decisive table (issue 30) as pre-registered (docs/prereg/2026-12-06.md and its amendments): every registered
arm (but any that prereg.DEFERRED holds back; route-lora's LoRA scale: amendment 4) x the registered training seeds (prereg.PRIMARY_SEEDS, REPLICATION_SEEDS; erratum 2; THIRD_SEEDS: amendment 5) on one organism, 80 steps, evaluated after steps 40 and 80 on eval seed 2029
(48 problems a cell, 8 samples), the runs of one arm packed into processes, many processes side by side.

    python scripts/decisive.py --model organism:cpu --seeds 110-129 --budget-min 9            # on the GPU machine
    python scripts/decisive.py --model organism:cpu@51b7c62e --seeds 100-109 --budget-min 9   # replication
    python scripts/decisive.py --model organism:cpu@826cb3c1 --seeds 100-109 --budget-min 9   # third organism
    python scripts/decisive.py --model organism:tiny --seeds 100,101 --steps 2 --eval-every 1 \
        --runs out/decisive_tiny --registered-off -- --prompts-per-step 4 --group 4 --n-eval 2 --eval-samples 2

1. extracts the direction files the arms need (arms.vhack_extract_args), all at once, where missing
2. runs the arms' (arm, seed) runs through scripts/train.py --seeds (--runs-per-process seeds of one arm in a
   process, --parallel processes side by side, one torch thread each); route first, since route-random and the
   matched subsets read route's run of their seed; random-direction arms get --direction-seed 1000 + seed
3. resumes: a finished run (DONE) is skipped and its configuration checked against this call's
   (_runner.refuse_other_config); a process still going at the deadline is stopped, and a later call resumes its
   runs from their last checkpoint (every 5 steps; _runner.resumable) where the checkpoints are still on the machine;
   without --late-starts a process that would not finish before --budget-min (the longest finished process of this
   call as the estimate) is not started
4. writes decisive.json into the runs folder: the command, what finished, failed, was stopped or skipped, wall time,
   runs per hour

The registered flags (steps, evaluation, eval seed, samples, direction seeds, recipe) are this script's defaults;
changing any of them needs --registered-off, and such runs are not the registered table. The analysis is
`python scripts/results.py --decisive ...` (docs/prereg: Holm over the 12 family hypotheses).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import _runner  # noqa: E402
from projected_grpo.method import arms, prereg  # noqa: E402

ARMS = ("route", *(a.name for a in arms.ARMS
                   if a.name in prereg.REGISTERED - set(prereg.DEFERRED) and a.name != "route"))
"""Every arm the prereg names (prereg.REGISTERED) but the deferred ones (prereg.DEFERRED, amendment 3), route first
(the matched arms wait for its runs)."""
REGISTERED = dict(steps=prereg.RUN_FLAGS["steps"], eval_every=prereg.RUN_FLAGS["eval_every"],
                  direction_seed_offset=prereg.DIRECTION_SEED_OFFSET, lr=arms.ORGANISM_LR,
                  weight_decay=arms.ORGANISM_WEIGHT_DECAY, weight_decay_quarantine=arms.ORGANISM_WEIGHT_DECAY)
"""The prereg's values of this script's own flags."""
REGISTERED_EXTRA = tuple(x for k, v in prereg.RUN_FLAGS.items() if k not in REGISTERED
                         for x in (f"--{k.replace('_', '-')}", str(v)))
"""The prereg's train.py flags every run gets (eval seed, eval size and samples, data seed, decoder)."""
REGISTERED_SEEDS = {"organism:cpu": prereg.PRIMARY_SEEDS, "organism:cpu@51b7c62e": prereg.REPLICATION_SEEDS,
                    "organism:cpu@826cb3c1": prereg.THIRD_SEEDS}
"""The registered training seeds of each organism (erratum 2, amendment 5); other seeds or organisms need
--registered-off."""


def fail(msg: str) -> None:
    """Bad command-line input: one line on stderr, exit status 2, nothing written."""
    print(f"decisive.py: {msg}", file=sys.stderr)
    raise SystemExit(2)


def seed_list(text: str) -> str:
    """'100-109' or '100,101' -> '100,101,...' (bad input: exit 2)."""
    try:
        if "-" in text and "," not in text:
            lo, hi = (int(x) for x in text.split("-"))
            return ",".join(map(str, range(lo, hi + 1)))
        return ",".join(str(int(x)) for x in text.split(","))
    except ValueError:
        fail(f"--seeds {text!r}: not 'A-B' or a comma-separated list of integers")


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, _runner.Plan]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cores = os.cpu_count() or 2
    seeds = prereg.PRIMARY_SEEDS
    _runner.add_plan_args(ap, ARMS, seeds=f"{seeds[0]}-{seeds[-1]}", eval_every=REGISTERED["eval_every"],
                          device="cuda", runs="", parallel=max(1, cores // 2), budget_min=9.0, runs_per_process=5)
    ap.set_defaults(steps=REGISTERED["steps"], direction_seed_offset=REGISTERED["direction_seed_offset"])
    ap.add_argument("--grade-workers", type=int, default=0,
                    help="sandbox workers per process (0: 2 x cores / --parallel, at least 2)")
    ap.add_argument("--late-starts", action="store_true",
                    help="start processes that will not finish before the deadline (stopped there, they resume from "
                         "their last checkpoint in the next call on the same machine)")
    ap.add_argument("--ckpt-every", type=int, default=0,
                    help="checkpoint every N steps (0: train.py's default, 5); not part of a run's configuration "
                         "(logs.CONFIG_EXCLUDED): slow runs stopped at a deadline lose fewer steps")
    ap.add_argument("--keep-grades", action="store_true",
                    help="each process keeps every grade it receives, deadline-hit ones included, in its first run's "
                         "folder (grades_kept.jsonl, packed with the run), and reads them first when it resumes: a "
                         "stopped evaluation restarts where it stopped (erratum 8; not part of a run's configuration)")
    ap.add_argument("--registered-off", action="store_true",
                    help="allow flags other than the prereg's (the runs are then not the registered table)")
    a = ap.parse_args(argv)
    a.seeds = seed_list(a.seeds)
    if not a.runs:
        a.runs = f"out/decisive/{arms.model_tag(a.model)}"
    changed = [k for k, v in REGISTERED.items() if getattr(a, k) != v]
    registered_seeds = REGISTERED_SEEDS.get(a.model, ())
    if not set(int(s) for s in a.seeds.split(",")) <= set(registered_seeds):
        changed.append("seeds")
    if a.device != "cuda":  # amendment 2: every registered run on the GPU of one H100
        changed.append("device")
    if (changed or a.extra) and not a.registered_off:
        what = ", ".join(f"--{k.replace('_', '-')}" for k in changed) or f"extra flags {a.extra}"
        fail(f"{what}: not the pre-registered value (docs/prereg/2026-12-06.md); pass --registered-off for runs "
             f"outside the registered table")
    if a.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            fail(f"--device {a.device}: no GPU on this machine (the registered runs are made on one H100, amendment "
                 "2; --device cpu --registered-off runs the same arms here, outside the registered table)")
    a.extra = [*REGISTERED_EXTRA, *a.extra, *(["--ckpt-every", str(a.ckpt_every)] if a.ckpt_every else [])]
    plan = _runner.plan_from_args(a, fail)
    if not a.grade_workers:
        a.grade_workers = max(2, 2 * cores // a.parallel)
    return a, plan


def main(argv: list[str] | None = None) -> int:
    a, plan = parse(argv)
    t0 = time.time()
    from projected_grpo.loop.models import resolve, weights_id
    from projected_grpo.organism.pinned import OrganismError

    try:
        print(f"organism: {resolve(a.model)} (weights sha256 {weights_id(a.model)[:16]})", flush=True)
    except OrganismError as e:
        fail(str(e))
    vh = _runner.extract_vhacks(plan)
    print(f"direction files: {', '.join(vh) or 'none needed'} ({time.time() - t0:.0f} s)", flush=True)
    jobs = _runner.jobs(plan)
    n = sum(len(j[3]) for j in jobs)
    print(f"{n} runs to go ({len(plan.arms)} arms x {len(plan.seeds)} seeds, finished ones skipped) in {len(jobs)} "
          f"processes, {a.parallel} at a time, {a.grade_workers} grading workers each, budget {a.budget_min} min",
          flush=True)
    t1 = time.time()
    outcome = _runner.run_all(jobs, plan, a.parallel, t0 + 60 * a.budget_min, grade_workers=a.grade_workers,
                              late_starts=a.late_starts, keep_grades=a.keep_grades)
    wall = time.time() - t1
    runs = ROOT / plan.runs
    runs.mkdir(parents=True, exist_ok=True)
    record = dict(command=[sys.executable, "scripts/decisive.py", *(sys.argv[1:] if argv is None else argv)],
                  date=datetime.datetime.now().isoformat(timespec="seconds"), model=a.model,
                  weights_sha256=weights_id(a.model), arms=plan.arms, seeds=plan.seeds, steps=plan.steps,
                  parallel=a.parallel, runs_per_process=a.runs_per_process, grade_workers=a.grade_workers,
                  keep_grades=a.keep_grades,
                  cores=os.cpu_count(), wall_s_runs=round(wall, 1), registered=not a.registered_off,
                  runs_per_hour=round(len(outcome.done) / wall * 3600, 1) if wall > 0 else None, **vars(outcome))
    calls = runs / "decisive_calls.jsonl"
    with calls.open("a") as f:
        f.write(json.dumps(record) + "\n")
    print(f"decisive: {len(outcome.done)} runs finished in {wall / 60:.1f} min ({record['runs_per_hour']} runs/h of "
          f"{plan.steps} steps), failed {len(outcome.failed)}, stopped {len(outcome.stopped)}, skipped "
          f"{len(outcome.skipped)}; this call appended to {calls}", flush=True)
    return 1 if outcome.failed else 0


if __name__ == "__main__":
    sys.exit(main())
