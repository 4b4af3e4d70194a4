"""The main experiment on the CPU organism (the README's main command): vanilla, erase, route,
route-subset and scorda-absorb (arms.MAIN), 3 seeds each.

    python scripts/main_experiment.py --seeds 0,1,2 --steps 40

1. resolves the pinned CPU organism (data/organisms; its weights hash checked, nothing built)
2. extracts the v_hack files the arms need from the hand-authored pairs (arms.vhack_extract_args)
3. runs every (arm, seed) through scripts/train.py --arm, one run a process by default (--runs-per-process K packs
   K seeds of one arm into a process, train.py --seeds: on one CPU thread that is slower, 18.2 min against 12.6 for
   the whole experiment on a 2-core Xeon, journal 2026-12-06/07 session 15), `--parallel` processes at a time with one
   torch thread each (a route-subset run after the route run of its seed), printing progress and the time left every
   30 s; the jobs other jobs wait for and the arms with a quarantine block start first (_runner.longest_first); each
   run is evaluated before its first step and after its last (--eval-every 40; --eval-every 20 adds the midpoint
   to the trajectory plots, about 6% more time, and changes no number of the table: journal 2026-12-07 session 16)
4. prints the results table (per-seed values, means, hierarchical bootstrap 95% intervals, paired
   differences from vanilla and from each arm's controls) and writes results.json and plots to --results

Runs already finished (a DONE file in their folder) are not run again; --fresh reruns them. A finished run whose
saved configuration differs from the one this call would run (any field but logs.CONFIG_EXCLUDED) is refused, naming
the field (_runner.refuse_other_config). Shares its driver with scripts/headline.py (scripts/_runner.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import _runner  # noqa: E402
from projected_grpo.method import arms  # noqa: E402


def fail(msg: str) -> None:
    """Bad command-line input: one line on stderr, exit status 2."""
    print(f"main_experiment.py: {msg}", file=sys.stderr)
    raise SystemExit(2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _runner.add_plan_args(ap, arms.MAIN, seeds="0,1,2", eval_every=40, device="", runs="out/runs", parallel=2,
                          budget_min=600.0, runs_per_process=1)
    ap.add_argument("--results", default="out/results")
    a = ap.parse_args(argv)
    plan = _runner.plan_from_args(a, fail)
    t0 = time.time()
    from projected_grpo.loop.models import resolve, weights_id
    from projected_grpo.organism.pinned import OrganismError

    try:
        print(f"organism: {resolve(a.model)} (weights sha256 {weights_id(a.model)[:16]})", flush=True)
    except OrganismError as e:
        fail(str(e))
    print(f"v_hack: {', '.join(_runner.extract_vhacks(plan, preloaded=_runner.on_cpu(plan))) or 'none needed'}", flush=True)
    outcome = _runner.run_all(_runner.longest_first(_runner.jobs(plan)), plan, a.parallel, t0 + 60 * a.budget_min,
                              preloaded=_runner.on_cpu(plan))
    print(f"\nruns finished in {(time.time() - t0) / 60:.1f} min; failed: {outcome.failed or 'none'}; stopped: "
          f"{outcome.stopped or 'none'}", flush=True)
    _runner.results(plan, a.results, allow_unequal_n=False, preloaded=_runner.on_cpu(plan))
    print(f"main experiment: {(time.time() - t0) / 60:.1f} min in all")
    return 1 if outcome.failed or outcome.stopped else 0


if __name__ == "__main__":
    sys.exit(main())
