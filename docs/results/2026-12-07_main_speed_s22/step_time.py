"""Seconds of one training step (Trainer.train_runs) per arm of arms.MAIN, on the step-0 rollouts of `just main`'s
recipe at seed 0 (pinned CPU organism, one torch thread): the loss, its backward, the intervention's hook, clipping
and AdamW, repeated from the same adapter and optimizer state. A one-off measurement script kept beside its output
(issue 28, session 22); it imports whatever projected_grpo the interpreter finds, so running it in two checkouts in
turn compares two commits on one machine:

    PYTHONPATH=<checkout>/src PGRPO_THREADS=1 python3 step_time.py [--reps 3] [--arms vanilla,route]

Prints one line per arm: `arm <name> commit <sha> train_runs s <r1> <r2> ...`. Needs out/vhack/ of `just main`.
Run it from the checkout's root (the v_hack paths are relative).
"""

import argparse
import copy
import os
import subprocess
import time

os.environ.setdefault("PGRPO_THREADS", "1")
os.environ.pop("PGRPO_GRADE_CACHE", None)

import torch  # noqa: E402

import projected_grpo  # noqa: E402
from projected_grpo.env import rollouts  # noqa: E402
from projected_grpo.loop import cli, grpo  # noqa: E402
from projected_grpo.method import arms  # noqa: E402


def step_times(arm: str, reps: int) -> list[float]:
    cfg, _ = cli.run_config(["--arm", arm, "--seed", "0", "--run", f"{arm}_s0", "--out-dir", "out/step_time",
                             "--steps", "40", "--eval-every", "40"], "step_time.py")
    torch.manual_seed(0)
    tr = grpo.Trainer(cfg)
    run = tr.runs[0]
    tr.start(run)
    rolls = tr.rollouts(0)
    probs, _, comps, _ = rolls[0]
    grades = rollouts.grade_problems(probs, tr.tok.batch_decode(comps, skip_special_tokens=True))
    plans = [tr.plan(run, 0, grades)]
    params = {n: p.detach().clone() for n, p in tr.model.named_parameters() if p.requires_grad}
    opt = copy.deepcopy(run.opt.state_dict())
    out = []
    for _ in range(reps + 1):  # the first is a warm-up, not reported
        run.opt.load_state_dict(copy.deepcopy(opt))
        with torch.no_grad():
            for n, p in tr.model.named_parameters():
                if p.requires_grad:
                    p.copy_(params[n])
        t0 = time.perf_counter()
        tr.train_runs(0, rolls, plans)
        out.append(time.perf_counter() - t0)
    tr.step_runs(0)  # one real step: route-subset's --match-run reads its metrics.jsonl
    return out[1:]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--arms", default=",".join(arms.MAIN))
    a = ap.parse_args()
    src = os.path.dirname(os.path.dirname(os.path.abspath(projected_grpo.__file__)))
    sha = subprocess.run(["git", "-C", src, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    for arm in a.arms.split(","):
        ts = step_times(arm, a.reps)
        print(f"arm {arm} commit {sha} train_runs s {' '.join(f'{t:.2f}' for t in ts)}", flush=True)


if __name__ == "__main__":
    main()
