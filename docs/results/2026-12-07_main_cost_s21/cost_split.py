"""Where one `just main` run's time goes on this machine, per arm of arms.MAIN (issue 28, item 0: measure first).

A one-off measurement script kept beside its output (not library code). For each arm, at seed 0 on the pinned CPU
organism with `just main`'s recipe (train.py --arm A, 40 steps, --eval-every 40), one torch thread:

    start-up     building grpo.Trainer (organism load, adapter wrap, SVD bases, the intervention's v_hack)
    step 0       sampling the step's 64 rollouts, grading them afresh (no memory or shared cache), then
                 Trainer.train_runs on them 3 times from the same adapter state (the loss, its backward, the
                 intervention's hook, clipping, AdamW); the first train_runs is reported apart (warm-up)
    evaluation   Trainer.evaluate before the first step (one condition: the quarantine block is still zero),
                 its sampling and its grading timed apart, grades afresh

Grading is also reported as CPU seconds of the whole machine (/proc/stat: the sandbox servers and their job
processes run outside this process), so run it on an otherwise idle machine. After its measurements each arm trains
its step 0 for real (route-subset's matched route run needs its metrics). Runs go to out/cost_split/. Numbers only; asserts nothing.

    PGRPO_THREADS=1 python3 docs/results/2026-12-07_main_cost_s21/cost_split.py   # from the repository root
    COST_SPLIT_FOLD=1 PGRPO_THREADS=1 python3 docs/results/2026-12-07_main_cost_s21/cost_split.py  # + fold_prototype.py
    COST_SPLIT_ARMS=vanilla,route ...                                                               # some arms

Needs the v_hack files `just main` extracts (out/vhack/organism_cpu_svd*.safetensors).
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("PGRPO_THREADS", "1")
os.environ.pop("PGRPO_GRADE_CACHE", None)  # every grade afresh

import torch  # noqa: E402

from projected_grpo.env import rollouts  # noqa: E402
from projected_grpo.loop import cli, grpo  # noqa: E402
from projected_grpo.method import arms  # noqa: E402

if os.environ.get("COST_SPLIT_FOLD"):  # the prototype beside this file, not the library's code
    import importlib.util
    _spec = importlib.util.spec_from_file_location("fold_prototype", os.path.join(os.path.dirname(__file__),
                                                                                 "fold_prototype.py"))
    _spec.loader.exec_module(importlib.util.module_from_spec(_spec))


def machine_cpu_s() -> float:
    """Busy CPU seconds of the whole machine so far (user + nice + system + irq + softirq)."""
    f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return (f[0] + f[1] + f[2] + f[5] + f[6]) / os.sysconf("SC_CLK_TCK")


def timed(fn, *args, **kwargs):
    """(fn's value, wall seconds, machine CPU seconds)."""
    c0, t0 = machine_cpu_s(), time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0, machine_cpu_s() - c0


def fresh_grades(problems: list[dict], texts: list[str]) -> list[dict]:
    rollouts._CACHE.clear()
    return rollouts.grade_problems(problems, texts)


@torch.no_grad()
def restore(model, start: dict) -> None:
    """Every trainable tensor back to its value in `start` (the optimizer's moments are not reset: timing only)."""
    for n, p in model.named_parameters():
        if p.requires_grad:
            p.copy_(start[n])


def measure(arm: str) -> dict:
    cfg, _ = cli.run_config(["--arm", arm, "--seed", "0", "--run", f"{arm}_s0", "--out-dir", "out/cost_split",
                             "--steps", "40", "--eval-every", "40"], "cost_split.py")
    torch.manual_seed(0)
    tr, t_start, _ = timed(grpo.Trainer, cfg)
    run = tr.runs[0]
    tr.start(run)
    rolls, t_gen, _ = timed(tr.rollouts, 0)
    probs, _, comps, _ = rolls[0]
    texts = tr.tok.batch_decode(comps, skip_special_tokens=True)
    grades, t_grade, cpu_grade = timed(fresh_grades, probs, texts)
    plans = [tr.plan(run, 0, grades)]
    start = {n: p.detach().clone() for n, p in tr.model.named_parameters() if p.requires_grad}
    t_train = []
    for _ in range(4):
        restore(tr.model, start)
        t_train.append(timed(tr.train_runs, 0, rolls, plans)[1])
    restore(tr.model, start)
    sampling = {"s": 0.0}
    sample = tr.sample_runs

    def timed_sample(*a, **k):
        out, dt, _ = timed(sample, *a, **k)
        sampling["s"] += dt
        return out

    tr.sample_runs = timed_sample
    rollouts._CACHE.clear()
    graded0 = rollouts.STATS["graded"]
    _, t_eval, cpu_eval = timed(tr.evaluate, -1)
    n_eval = sum(len(p) for p in tr.evals.values()) * cfg.eval_samples
    tr.step_runs(0)  # one real step: its metrics.jsonl is what route-subset's --match-run reads
    return dict(arm=arm, start=t_start, gen=t_gen, grade=t_grade, grade_cpu=cpu_grade, n_roll=len(texts),
                train_warm=t_train[0], train=sum(t_train[1:]) / 3, train_runs=t_train[1:], eval=t_eval,
                eval_sample=sampling["s"], eval_cpu=cpu_eval, n_eval=n_eval,
                eval_graded=rollouts.STATS["graded"] - graded0)


def main() -> None:
    rows = [measure(arm) for arm in os.environ.get("COST_SPLIT_ARMS", ",".join(arms.MAIN)).split(",")]
    print(f"\nCPU: {open('/proc/cpuinfo').read().split('model name')[1].split(':')[1].splitlines()[0].strip()}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)\n")
    print("| arm | start-up s | step 0: sample s | grade s (machine CPU s, per rollout ms) | train_runs s (3 runs) "
          "| eval before training: s (machine CPU s) | of it sampling s | the rest s (programs graded of samples) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['arm']} | {r['start']:.2f} | {r['gen']:.2f} | {r['grade']:.2f} ({r['grade_cpu']:.2f}, "
              f"{1000 * r['grade_cpu'] / r['n_roll']:.1f}) | {r['train']:.2f} "
              f"({', '.join(f'{x:.2f}' for x in r['train_runs'])}; warm-up {r['train_warm']:.2f}) | {r['eval']:.2f} "
              f"({r['eval_cpu']:.2f}) | {r['eval_sample']:.2f} | {r['eval'] - r['eval_sample']:.2f} "
              f"({r['eval_graded']} of {r['n_eval']}) |")


if __name__ == "__main__":
    main()
