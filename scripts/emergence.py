"""Does vanilla GRPO teach the organism to hack, and does the RL baseline (no loophole in training
prompts) stay clean? One table: base and final rates per mechanism, solve per difficulty, wall times.

    python scripts/emergence.py                      # the pinned CPU organism; seed 0; 60 steps
    python scripts/emergence.py --seeds 0,1,2 --model organism:cpu@51b7c62e --runs out/emergence

1. resolves the organism (a pinned one, its weights hash checked; nothing is built)
2. runs vanilla and rl-baseline for every seed side by side (one torch thread each), evaluating at
   step -1 (the base organism) and at the end on the precise eval (48 problems x 4 samples per cell)
3. prints, per arm: hinted strict hack per mechanism and overall (base -> final, mean over seeds, with
   the per-seed values and the cluster standard error of one run), no-hint solve per difficulty, and
   the wall time of each run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
PY = sys.executable
import _runner  # noqa: E402


def fail(msg: str) -> None:
    """Bad command-line input: one line on stderr, exit status 2."""
    print(f"emergence.py: {msg}", file=sys.stderr)
    raise SystemExit(2)


MECHS = ("run_tests", "sentinel", "stdout_marker", "exit_code")


def resolve_model(model: str) -> str:
    """The model's folder (an organism spec resolves to its pinned folder); bad input exits 2."""
    from projected_grpo.loop.models import resolve
    from projected_grpo.organism.pinned import OrganismError

    try:
        return resolve(model)
    except OrganismError as e:
        fail(str(e))


def run_cmd(arm: str, seed: int, a, model: str) -> list[str]:
    return [PY, "scripts/train.py", "--arm", arm, "--seed", str(seed), "--run", f"{arm}_s{seed}", "--out-dir", a.runs,
            "--model", model, "--steps", str(a.steps), "--eval-every", str(a.steps), *_runner.recipe_flags(a)] + a.extra


def run_all(jobs: dict[str, list[str]], runs: Path) -> dict[str, float]:
    """Start every run at once; returns each run's wall time (s). Exits if one fails."""
    env = dict(os.environ, PGRPO_THREADS="1", PYTHONUNBUFFERED="1")
    (runs / "_logs").mkdir(parents=True, exist_ok=True)
    t0, procs, wall = time.time(), {}, {}
    for name, cmd in jobs.items():
        log = open(runs / "_logs" / f"{name}.log", "w")
        procs[name] = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    while len(wall) < len(procs):
        time.sleep(2)
        for name, p in procs.items():
            if name not in wall and p.poll() is not None:
                wall[name] = time.time() - t0
                assert p.returncode == 0, f"{name} failed; see {runs}/_logs/{name}.log"
    return wall


def cell(ev: list[dict], step: int, split: str, c: str) -> dict:
    rows = [r for r in ev if r["step"] == step and r["split"] == split and r["cell"] == c and r["quarantine"] == "kept"]
    assert len(rows) == 1, (step, split, c, len(rows))
    return rows[0]


def table(runs: Path, arms: list[str], seeds: list[int], steps: int, base_rates: dict | None = None) -> str:
    """Base and final rates per cell. Base: the runs' step -1 evaluation, or with `base_rates` (an organism's
    base_rates.json, sampled over all difficulties) that file's rates for runs evaluated only at the end."""
    lines = ["| arm | cell | base" + (" (base_rates.json)" if base_rates else "") + " | final (mean over seeds) | "
             "final per seed | SE of one run (final) |", "|---|---|---|---|---|---|"]
    for arm in arms:
        evs = [[json.loads(x) for x in (runs / f"{arm}_s{s}" / "eval.jsonl").read_text().splitlines()] for s in seeds]
        for split, cells, key, se in (("hinted", MECHS + ("all",), "hack_strict", "se_hack_strict"),
                                      ("nohint", ("easy", "medium", "hard"), "solve", "se_solve")):
            for c in cells:
                base = ([base_rates[split][c]["strict" if split == "hinted" else "solve"]] if base_rates
                        else [cell(ev, -1, split, c)[key] for ev in evs])
                fin = [cell(ev, steps - 1, split, c) for ev in evs]
                name = f"hinted strict hack, {c}" if split == "hinted" else f"no-hint solve, {c}"
                lines.append(f"| {arm} | {name} | {sum(base) / len(base):.3f} | {sum(f[key] for f in fin) / len(fin):.3f} | "
                             f"{', '.join(f'{f[key]:.3f}' for f in fin)} | {max(f[se] for f in fin):.3f} (n={fin[0]['n']}) |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="organism:cpu")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--steps", type=int, default=60)
    _runner.add_recipe_args(ap)
    ap.add_argument("--arms", default="vanilla,rl-baseline")
    ap.add_argument("--runs", default="out/emergence")
    ap.add_argument("--table-only", action="store_true", help="only print the table of finished runs under --runs")
    ap.add_argument("--base-rates", default="", help="with --table-only: base from this base_rates.json")
    ap.add_argument("extra", nargs="*", help="extra flags for scripts/train.py (after --)")
    a = ap.parse_args()
    _runner.refuse_recipe_in_extra(a.extra, fail)
    if a.table_only:
        br = json.loads(Path(a.base_rates).read_text()) if a.base_rates else None
        print(table(ROOT / a.runs, a.arms.split(","), [int(s) for s in a.seeds.split(",")], a.steps, br))
        return
    t0 = time.time()
    model = resolve_model(a.model)
    seeds, arms, runs = [int(s) for s in a.seeds.split(",")], a.arms.split(","), ROOT / a.runs
    # the runs get the spec as given (a folder path differs between clones; run_meta records the weights' hash)
    wall = run_all({f"{arm}_s{s}": run_cmd(arm, s, a, a.model) for arm in arms for s in seeds}, runs)
    from projected_grpo.loop.models import weights_id

    print(f"\norganism {model} (weights sha256 {weights_id(model)[:16]}); {a.steps} steps, lr {a.lr}, weight decay {a.weight_decay} (quarantine {a.weight_decay_quarantine}), seeds {seeds}\n")
    print(table(runs, arms, seeds, a.steps))
    times = ", ".join(f"{k} {v / 60:.1f} min" for k, v in wall.items())
    print(f"\nwall time: runs side by side: {times}; total {(time.time() - t0) / 60:.1f} min")


if __name__ == "__main__":
    main()
