"""The headline experiment: every arm of the issue x N seeds on one device, side by side, one command.

    python scripts/headline.py --model organism:cpu --seeds 0,1,2,3,4 --steps 40 --budget-min 50
    python scripts/headline.py --model organism:tiny --arms vanilla,route,route-random,scorda-absorb \
        --seeds 0,1 --steps 2 --eval-every 0 --out /tmp/h -- --prompts-per-step 4 --group 4 --n-eval 2

1. extracts the v_hack files the arms need (arms.vhack_extract_args) when missing
2. runs every (arm, seed) as `scripts/train.py --arm A --seed S` with the same model, device and extra
   flags, `--parallel` at a time (default: one per core) with one torch thread each; matched arms
   (route-random, route-subset, route-subset-signed) start after route of their seed; runs still going
   at `--budget-min` minutes are stopped and left out of the table (headline.json lists them); finished runs in
   --runs are skipped unless --fresh, and refused when their saved configuration differs from this call's in any
   field but logs.CONFIG_EXCLUDED (_runner.refuse_other_config)
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
sys.path.insert(0, str(ROOT / "scripts"))

import _runner  # noqa: E402
from projected_grpo.method import arms  # noqa: E402

DIAG_INTERVENTIONS = ("erase", "erase-random", "route", "route-random", "route-subset", "route-subset-signed")


def fail(msg: str) -> None:
    """Bad command-line input: one line on stderr, exit status 2, nothing written."""
    print(f"headline.py: {msg}", file=sys.stderr)
    raise SystemExit(2)


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, _runner.Plan]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _runner.add_plan_args(ap, arms.HEADLINE, seeds="0,1,2,3,4", eval_every=0, device="cpu", runs="out/runs_headline",
                          parallel=os.cpu_count() or 1, budget_min=50.0)
    ap.add_argument("--out", default=f"docs/results/{datetime.date.today().isoformat()}_headline")
    a = ap.parse_args(argv)
    plan = _runner.plan_from_args(a, fail)
    if (ROOT / a.out / "results.json").exists() and not a.fresh:
        fail(f"--out {a.out}: already holds a results.json (choose another --out or pass --fresh)")
    return a, plan


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
    a, plan = parse(argv)
    t0 = time.time()
    vh = _runner.extract_vhacks(plan, preloaded=_runner.on_cpu(plan))
    print(f"v_hack: {', '.join(vh) or 'none needed'} ({time.time() - t0:.0f}s)", flush=True)
    jobs = _runner.jobs(plan)
    print(f"{sum(len(j[3]) for j in jobs)} runs ({len(plan.arms)} arms x {len(plan.seeds)} seeds, finished ones "
          f"skipped) in {len(jobs)} processes, {a.parallel} at a time, budget {a.budget_min} min", flush=True)
    outcome = _runner.run_all(jobs, plan, a.parallel, t0 + 60 * a.budget_min, preloaded=_runner.on_cpu(plan))
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
    _runner.results(plan, str(out), allow_unequal_n=True, preloaded=_runner.on_cpu(plan))
    from projected_grpo.loop.plots import plot_summary

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
