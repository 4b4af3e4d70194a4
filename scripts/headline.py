"""The headline experiment: every arm of the issue x N seeds on one device, side by side, one command.

    python scripts/headline.py --model organism:cpu --seeds 0,1,2,3,4 --steps 40 --budget-min 50
    python scripts/headline.py --model organism:tiny --arms vanilla,route,route-random,scorda-absorb \
        --seeds 0,1 --steps 2 --eval-every 0 --out /tmp/h -- --prompts-per-step 4 --group 4 --n-eval 2

1. extracts the v_hack files the arms need (arms.vhack_extract_args) when missing
2. runs every (arm, seed) as `scripts/train.py --arm A --seed S` with the same model, device and extra
   flags, `--parallel` at a time (default: one per core) with one torch thread each; matched arms
   (route-random, route-subset, route-subset-signed) start after route of their seed; runs still going
   at `--budget-min` minutes are stopped and left out of the table (headline.json lists them)
3. results.py on the finished runs (per-seed values, means, hierarchical bootstrap 95% intervals, paired
   differences from vanilla and from each arm's registry controls, seeds a +-0.05 interval needs),
   diag_pinning on the routing and erase runs, and a summary plot
4. writes everything to --out (default docs/results/<date>_headline/): results.json, results.md,
   summary.png, eval/train trajectory plots, diag_pinning/<run>.json, headline.json (the command, wall
   time, device, which runs finished, failed, were stopped or skipped)
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "scripts"))

import _runner  # noqa: E402
from projected_grpo import arms  # noqa: E402

DIAG_INTERVENTIONS = ("erase", "erase-random", "route", "route-random", "route-subset", "route-subset-signed")


def fail(msg: str) -> None:
    """Bad command-line input: one line on stderr, exit status 2, nothing written."""
    print(f"headline.py: {msg}", file=sys.stderr)
    raise SystemExit(2)


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arms", default=",".join(arms.HEADLINE), help="comma-separated registry arms")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--model", default="organism:cpu")
    ap.add_argument("--device", default="cpu", help="--device of every run (one device for the whole table)")
    ap.add_argument("--parallel", type=int, default=os.cpu_count() or 1, help="runs at a time")
    ap.add_argument("--budget-min", type=float, default=50.0, help="wall-clock budget of the runs in minutes")
    ap.add_argument("--runs", default="out/runs_headline")
    ap.add_argument("--out", default=f"docs/results/{datetime.date.today().isoformat()}_headline")
    ap.add_argument("--fresh", action="store_true", help="rerun finished runs")
    ap.add_argument("--lr", type=float, default=arms.ORGANISM_LR, help="GRPO learning rate of every run")
    ap.add_argument("extra", nargs="*", help="extra flags for scripts/train.py (after --)")
    a = ap.parse_args(argv)
    if any(x == "--lr" or x.startswith("--lr=") for x in a.extra):
        fail("--lr after --: give the learning rate as this script's --lr (it is passed to every run once)")
    names = [x for x in a.arms.split(",") if x]
    unknown = [x for x in names if x not in arms.BY_NAME]
    if unknown:
        fail(f"--arms: unknown arm {unknown[0]!r} (registry: {', '.join(arms.BY_NAME)})")
    try:
        a.seed_list = [int(s) for s in a.seeds.split(",")]
    except ValueError:
        fail(f"--seeds {a.seeds!r}: not a comma-separated list of integers")
    if a.steps < 1 or a.parallel < 1 or a.budget_min <= 0:
        fail("--steps, --parallel and --budget-min must be positive")
    if (ROOT / a.out / "results.json").exists() and not a.fresh:
        fail(f"--out {a.out}: already holds a results.json (choose another --out or pass --fresh)")
    a.arm_list = names
    return a


def diag(plan: _runner.Plan, out: Path) -> list[str]:
    """diag_pinning on every finished routing / erase run; its json copied to out/diag_pinning/."""
    done = []
    for name in sorted(os.listdir(ROOT / plan.runs)):
        arm, _, seed = name.rpartition("_s")
        run = ROOT / plan.runs / name
        if arm in plan.arms and arms.arm(arm).intervention in DIAG_INTERVENTIONS and (run / "DONE").exists():
            subprocess.run([_runner.PY, "scripts/diag_pinning.py", str(run)], cwd=ROOT, check=True,
                           stdout=subprocess.DEVNULL)
            (out / "diag_pinning").mkdir(parents=True, exist_ok=True)
            shutil.copy(run / "diag_pinning.json", out / "diag_pinning" / f"{name}.json")
            done.append(name)
    return done


def main(argv: list[str] | None = None) -> int:
    a = parse(argv)
    t0 = time.time()
    plan = _runner.Plan(arms=arms.closure(a.arm_list), seeds=a.seed_list, model=a.model, runs=a.runs, steps=a.steps,
                        eval_every=a.eval_every, device=a.device, extra=["--lr", str(a.lr), *a.extra], fresh=a.fresh)
    vh = _runner.extract_vhacks(plan)
    print(f"v_hack: {', '.join(vh) or 'none needed'} ({time.time() - t0:.0f}s)", flush=True)
    jobs = _runner.jobs(plan)
    print(f"{len(jobs)} runs ({len(plan.arms)} arms x {len(plan.seeds)} seeds, finished ones skipped), "
          f"{a.parallel} at a time, budget {a.budget_min} min", flush=True)
    outcome = _runner.run_all(jobs, plan, a.parallel, t0 + 60 * a.budget_min)
    t_runs = time.time() - t0
    out = ROOT / a.out
    out.mkdir(parents=True, exist_ok=True)
    record = dict(command=[sys.executable, "scripts/headline.py", *(sys.argv[1:] if argv is None else argv)],
                  arms=plan.arms, seeds=plan.seeds, model=a.model, device=a.device, steps=a.steps,
                  parallel=a.parallel, budget_min=a.budget_min, wall_min_runs=round(t_runs / 60, 2),
                  cores=os.cpu_count(), **vars(outcome))
    if not _runner.finished_arms(plan):
        (out / "headline.json").write_text(json.dumps(record, indent=1))
        print(f"headline: no run finished within the budget; wrote {out / 'headline.json'}", file=sys.stderr)
        return 1
    _runner.results(plan, str(out), allow_unequal_n=True)
    from projected_grpo.plots import plot_summary

    res = json.loads((out / "results.json").read_text())
    plot_summary(res, out)
    diags = diag(plan, out)
    record.update(wall_min_total=round((time.time() - t0) / 60, 2), diag_pinning=diags)
    (out / "headline.json").write_text(json.dumps(record, indent=1))
    print(f"headline: runs {t_runs / 60:.1f} min, all {(time.time() - t0) / 60:.1f} min; done {len(outcome.done)}, "
          f"failed {len(outcome.failed)}, stopped {len(outcome.stopped)}, skipped {len(outcome.skipped)}; wrote {out}")
    return 1 if outcome.failed else 0


if __name__ == "__main__":
    sys.exit(main())
