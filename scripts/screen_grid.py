"""Screen a grid of organism configurations side by side: build each one, then run short vanilla GRPO
runs on it until a shared deadline, and summarise the training rollouts' strict hack rate per
mechanism in windows of steps. One torch thread per process. Prints numbers and asserts nothing.

    python scripts/screen_grid.py --grid grid.json --steps 60 --seconds 480 --out out/screen

grid.json: a list of {"name", "size", "set" (OrganismConfig overrides), "build_device",
"runs": [{"lr", "seed", "loophole" (default true), ...more train.py flags}]}.
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
PY = sys.executable


def entry_script(e: dict, a, deadline: float) -> str:
    """Shell commands of one grid entry: build + exact rates, then its GRPO runs one after another."""
    out = Path(a.out) / e["name"]
    cmds = [f"{PY} scripts/screen_organism.py --size {e.get('size', 'cpu')} --set '{json.dumps(e.get('set', {}))}' "
            f"--out {out}/org --device {e.get('build_device', 'cpu')} --n-per-cell {e.get('n_per_cell', 0)} "
            f"> {out}/screen.json 2> {out}/screen.log"]
    for r in e.get("runs", []):
        name = f"lr{r['lr']}_s{r['seed']}" + ("" if r.get("loophole", True) else "_noloop")
        flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in r.items()
                         if k not in ("lr", "seed", "loophole"))
        arm = "vanilla" if r.get("loophole", True) else "rl-baseline"
        cmds.append(f"timeout $(( {int(deadline)} - $(date +%s) )) {PY} scripts/train.py --arm {arm} "
                    f"--model $(ls -d {out}/org/*/ | head -1) --device cpu --steps {a.steps} --eval-every 0 "
                    f"--n-eval {a.n_eval} --eval-samples {a.eval_samples} --lr {r['lr']} --seed {r['seed']} "
                    f"--run {name} --out-dir {out}/runs {flags} > {out}/{name}.log 2>&1")
    return " ; ".join(cmds)


def summarize(run_dir: Path, window: int) -> dict:
    from projected_grpo.loop import logs

    df = logs.load_rollouts(run_dir)
    if df is None or len(df) == 0:
        return {}
    df["win"] = df["step"] // window * window
    hack = df.groupby(["win", "mechanism"])["hack_strict"].mean().unstack().round(3)
    solve = df.groupby("win")["gt_pass"].mean().round(3)
    return dict(steps=int(df["step"].max()) + 1, hack=hack.to_dict(orient="index"), hack_all=
                df.groupby("win")["hack_strict"].mean().round(3).to_dict(), solve=solve.to_dict())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grid", required=True)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--seconds", type=int, default=480, help="deadline for every process, from start")
    ap.add_argument("--window", type=int, default=10)
    ap.add_argument("--n-eval", type=int, default=16)
    ap.add_argument("--eval-samples", type=int, default=2)
    ap.add_argument("--out", default="out/screen")
    a = ap.parse_args()
    grid = json.loads(Path(a.grid).read_text())
    deadline = time.time() + a.seconds
    env = dict(os.environ, PGRPO_THREADS="1", PYTHONUNBUFFERED="1")
    procs = []
    for e in grid:
        (Path(a.out) / e["name"]).mkdir(parents=True, exist_ok=True)
        procs.append(subprocess.Popen(["bash", "-c", entry_script(e, a, deadline)], cwd=ROOT, env=env))
    for p in procs:
        p.wait()
    summary = {}
    for e in grid:
        d = Path(a.out) / e["name"]
        s = (d / "screen.json").read_text().strip().splitlines() if (d / "screen.json").exists() else []
        summary[e["name"]] = dict(screen=json.loads(s[-1]) if s else None,
                                  runs={r.name: summarize(r, a.window) for r in sorted((d / "runs").glob("*"))})
    (Path(a.out) / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    print(json.dumps(summary, default=str)[:20000])


if __name__ == "__main__":
    main()
