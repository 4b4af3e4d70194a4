"""The main experiment on the CPU organism: does erase or route lower reward hacking under GRPO?

    python scripts/main_experiment.py --seeds 0,1,2 --steps 40

1. builds the CPU organism if it is not cached (out/organism/)
2. extracts v_hack from the hand-authored organism pairs (data/pairs/hack_pairs.md#organism), once
   for the shared-quarantine adapter (erase) and once for the own-quarantine adapter (route)
3. runs vanilla, erase, route and the random-direction route control (matched per step to the route
   run's routed fraction; --arms may add route-subset and route-subset-signed) for every seed, two runs at a time (one torch thread each), with a
   progress bar per run
4. prints the results table (mean and 95% CI over seeds, paired difference from vanilla) and
   writes plots to out/results/

Runs already finished (a DONE file in their folder) are not run again; --fresh reruns them.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

PY = sys.executable
MATCHED = ("route-random", "route-subset", "route-subset-signed")  # matched per step to route_s<seed>


def vhack_cmd(out: str, quarantine: str, model: str) -> list[str]:
    return [PY, "scripts/extract_vhack_grad.py", "--pairs", "data/pairs/hack_pairs.md#organism", "--model", model,
            "--quarantine", quarantine, "--out", out]


def run_cmd(arm: str, seed: int, a, vh_shared: str, vh_own: str) -> list[str]:
    base = [PY, "scripts/train.py", "--arm", arm, "--seed", str(seed), "--run", f"{arm}_s{seed}", "--out-dir", a.runs,
            "--model", a.model, "--steps", str(a.steps), "--eval-every", str(a.eval_every)]
    extra = {
        "vanilla": [],
        "erase": ["--vhack", vh_shared],
        "route": ["--vhack", vh_own, "--quarantine", "own", "--route-frac", str(a.route_frac)],
        "route-random": ["--vhack", vh_own, "--quarantine", "own", "--match-run", f"{a.runs}/route_s{seed}"],
        "route-subset": ["--quarantine", "own", "--match-run", f"{a.runs}/route_s{seed}"],
        "route-subset-signed": ["--quarantine", "own", "--match-run", f"{a.runs}/route_s{seed}"],
    }[arm]
    return base + extra + a.extra


def progress(run_dir: Path) -> int:
    m = run_dir / "metrics.jsonl"
    return len(m.read_text().splitlines()) if m.exists() else 0


def run_all(jobs: list[tuple[str, list[str], list[str]]], runs: Path, steps: int, parallel: int) -> list[str]:
    """Run jobs (name, cmd, names it must wait for) `parallel` at a time; one progress bar per run."""
    env = dict(os.environ, PGRPO_THREADS="1", PYTHONUNBUFFERED="1")
    pending, running, done, failed = list(jobs), {}, set(), []
    bars: dict[str, tqdm] = {}
    (runs / "_logs").mkdir(parents=True, exist_ok=True)
    while pending or running:
        for name, cmd, deps in list(pending):
            if len(running) >= parallel:
                break
            if all(d in done for d in deps):
                pending.remove((name, cmd, deps))
                log = open(runs / "_logs" / f"{name}.log", "w")
                running[name] = (subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT), log)
                bars[name] = tqdm(total=steps, desc=f"{name:18s}", position=len(bars), leave=True, mininterval=1)
        time.sleep(2)
        for name, (p, log) in list(running.items()):
            bars[name].n = progress(runs / name)
            bars[name].refresh()
            if p.poll() is not None:
                log.close()
                del running[name]
                if p.returncode == 0:
                    done.add(name)
                else:
                    failed.append(name)
                    bars[name].set_description(f"{name:18s} FAILED (see {runs}/_logs/{name}.log)")
                bars[name].close()
        blocked = [j for j in pending if any(d in failed for d in j[2])]
        for j in blocked:
            pending.remove(j)
            failed.append(j[0])
    return failed


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--model", default="organism:cpu")
    ap.add_argument("--arms", default="vanilla,erase,route,route-random")
    ap.add_argument("--route-frac", type=float, default=0.25)
    ap.add_argument("--runs", default="out/runs")
    ap.add_argument("--results", default="out/results")
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--fresh", action="store_true", help="rerun finished runs")
    ap.add_argument("extra", nargs="*", help="extra flags for scripts/train.py (after --)")
    a = ap.parse_args(argv)
    t0 = time.time()
    from projected_grpo.models import resolve

    print(f"organism: {resolve(a.model)}", flush=True)
    tag = a.model.replace(":", "_").replace("/", "_")
    vh_shared, vh_own = f"out/vhack/{tag}_svd.safetensors", f"out/vhack/{tag}_svd_own.safetensors"
    for out, q in ((vh_shared, "shared"), (vh_own, "own")):
        if a.fresh or not (ROOT / out).exists():
            subprocess.run(vhack_cmd(out, q, a.model), cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    print(f"v_hack: {vh_shared}, {vh_own}", flush=True)
    runs = ROOT / a.runs
    arms = a.arms.split(",")
    jobs = []
    for seed in [int(s) for s in a.seeds.split(",")]:
        for arm in arms:
            name = f"{arm}_s{seed}"
            if not a.fresh and (runs / name / "DONE").exists():
                continue
            deps = [f"route_s{seed}"] if arm in MATCHED and "route" in arms else []
            jobs.append((name, run_cmd(arm, seed, a, vh_shared, vh_own), deps))
    failed = run_all(jobs, runs, a.steps, a.parallel)
    print(f"\nruns finished in {(time.time() - t0) / 60:.1f} min; failed: {failed or 'none'}", flush=True)
    subprocess.run([PY, "scripts/results.py", "--runs", a.runs, "--arms", a.arms, "--out", a.results], cwd=ROOT,
                   check=True)
    print(f"main experiment: {(time.time() - t0) / 60:.1f} min in all")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
