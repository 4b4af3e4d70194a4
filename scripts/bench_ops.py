"""Benchmark (not a gate): aten operations a run dispatches in each phase, one run alone against R runs in one
process (issue 28). Prints numbers and ratios only.

    python scripts/bench_ops.py                         # route, 4 runs, 2 steps, the CPU's own settings
    python scripts/bench_ops.py --gpu-like              # as a CUDA process issues them outside its CUDA graphs

Why count: on a GPU a model of a million parameters does almost no arithmetic, so a process's CPU likely goes into
issuing operations: each costs a dispatch on the CPU, and each that is not a view launches at least one kernel. What
packing saves there is what it saves in operations a run. The count is deterministic for a given torch version, arm
and seeds, so a change to the packed path can be judged here before GPU time.

Both ways train the same arm and seeds: alone, R processes of one run each (`train.py --seed S`, S = 0..R-1), whose
counts are averaged; packed, one process of R runs (`train.py --seeds 0,...,R-1`). Counts depend on the seed (what
a run samples), so both ways average the same seeds. Each process is fresh and runs under a TorchDispatchMode that
counts every aten operation by phase (backward included: on the CPU the autograd engine runs in the calling
thread); operations outside the four phases (start-up, planning, the scheduler) are not reported:
    generation  Trainer.rollouts (sampling the step's completions)
    training    Trainer.train_runs without the per-run updates (log-probs, loss, one backward over every run)
    update      Trainer.update, once per run (the intervention's hook, clipping, AdamW)
    evaluation  the final evaluation (kept and, with a quarantine, ablated), counted once a run
--gpu-like counts what a CUDA process would issue eagerly: one pass a step (--micro-batch 0), no folded adapter
forwards (the organism is bf16 on CUDA, and only float32 or float64 fold), AdamW and clipping with foreach kernels
(CUDA's default). Generation and evaluation then still decode on the CPU's eager path, which CUDA replaces by graph
replays; their counts are the CPU's. On the CPU a foreach call takes its slow path, one dispatched operation per
tensor, and those are counted; on CUDA it is a few multi-tensor kernels, so AdamW's and clipping's counts overstate
a GPU's launches. Host tensor operations (e.g. building a batch before it moves to the device) count like launches.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from tqdm import tqdm

PHASES = ("generation", "training", "update", "evaluation")
METHODS = {"rollouts": "generation", "train_runs": "training", "update": "update", "update_runs": "update",
           "evaluate": "evaluation"}  # update_runs: a packed update of all runs together, where the trainer has one


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arm", default="route", help="registry arm both ways train (not a matched control)")
    ap.add_argument("--runs", type=int, default=4, help="runs in the packed process (seeds 0..runs-1)")
    ap.add_argument("--steps", type=int, default=2, help="GRPO steps a run")
    ap.add_argument("--n-eval", type=int, default=12, help="evaluation problems a cell (train.py --n-eval)")
    ap.add_argument("--model", default="organism:cpu", help="train.py --model")
    ap.add_argument("--gpu-like", action="store_true", help="one pass a step, no folding, foreach AdamW and clipping")
    ap.add_argument("--out", default="out/bench_ops", help="run folders and the v_hack file go here")
    ap.add_argument("--child", default="", help=argparse.SUPPRESS)  # internal: count these seeds' runs, print JSON
    a = ap.parse_args()
    from projected_grpo.method.arms import BY_NAME, MATCHED  # noqa: PLC0415

    if a.arm not in BY_NAME or a.arm in MATCHED:
        ap.error(f"--arm {a.arm!r}: a registry arm that is not a matched control")
    if a.runs < 2:
        ap.error(f"--runs {a.runs}: the packed process needs at least 2 runs")
    if a.steps < 1:
        ap.error(f"--steps {a.steps}: at least 1")
    if a.n_eval < 1:
        ap.error(f"--n-eval {a.n_eval}: at least 1")
    return a


def counted(phase: str, counter, f):
    """f with its dispatched operations counted under `phase` by `counter` (models.OpCounter; nested calls count under
    their own phase)."""
    @functools.wraps(f)
    def g(*args, **kwargs):
        outer, counter.phase = counter.phase, phase
        try:
            return f(*args, **kwargs)
        finally:
            counter.phase = outer
    return g


def gpu_like_settings() -> None:
    """No folded adapter forwards; AdamW and gradient clipping with foreach kernels."""
    import torch  # noqa: PLC0415
    import torch.nn.utils.clip_grad as clip  # noqa: PLC0415

    from projected_grpo.method import adapters  # noqa: PLC0415

    adapters.AdaptedLinear.fold = False
    adamw_init, clip_norm = torch.optim.AdamW.__init__, clip.clip_grad_norm_
    torch.optim.AdamW.__init__ = lambda self, *args, **kw: adamw_init(self, *args, **dict(kw, foreach=True))
    torch.nn.utils.clip_grad_norm_ = lambda *args, **kw: clip_norm(*args, **dict(kw, foreach=True))


def child(a: argparse.Namespace) -> None:
    """Train the runs of seeds a.child (comma-separated) of a.arm in this process, counting operations by phase; print
    {phase: operations a run (a step, or once for the evaluation)} as JSON on the last line."""
    import torch  # noqa: PLC0415

    from projected_grpo.loop import cli, grpo  # noqa: PLC0415
    from projected_grpo.loop.models import OpCounter  # noqa: PLC0415

    counter = OpCounter()
    counter.phase = "other"
    for name, phase in METHODS.items():
        if hasattr(grpo.Trainer, name):
            setattr(grpo.Trainer, name, counted(phase, counter, getattr(grpo.Trainer, name)))
    if a.gpu_like:
        gpu_like_settings()
    torch.set_num_threads(1)
    seeds = a.child.split(",")
    r = len(seeds)
    with tempfile.TemporaryDirectory(dir=a.out) as runs:
        argv = ["--arm", a.arm, "--seeds" if r > 1 else "--seed", a.child, "--out-dir", runs,
                "--device", "cpu", "--model", a.model, "--steps", str(a.steps), "--n-eval", str(a.n_eval),
                "--eval-every", "0", "--vhack", vhack_file(a)] + (["--micro-batch", "0"] if a.gpu_like else [])
        with counter:
            cli.train(argv, "train.py", "")
    counts = counter.counts
    assert counts["update"] > 0, "no operation counted in the update phase: the trainer's update methods changed"
    per = {"generation": r * a.steps, "training": r * a.steps, "update": r * a.steps, "evaluation": r}
    print(json.dumps({p: counts[p] / per[p] for p in PHASES}))


def vhack_file(a: argparse.Namespace) -> str:
    """A v_hack for the model on the CPU (own quarantine, the hack pairs: route's), extracted once into --out and
    given to every arm (--vhack), so an arm with another direction counts with this one."""
    from projected_grpo.method import vhack  # noqa: PLC0415
    from projected_grpo.method.pairs import HACK_PAIRS  # noqa: PLC0415

    f = Path(a.out) / f"vhack_own_{a.model.replace(':', '_').replace('@', '_')}.safetensors"
    if not f.exists():
        vhack.extract_to_file(f, HACK_PAIRS, a.model, quarantine="own", device="cpu")
    return str(f)


def count(a: argparse.Namespace, seeds: list[int]) -> dict[str, float]:
    """Operations a run by phase in one fresh process of the runs of `seeds`."""
    cmd = [sys.executable, __file__, "--child", ",".join(map(str, seeds))] + sys.argv[1:]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"bench_ops: the process of seeds {seeds} failed (exit {proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    a = parse()
    Path(a.out).mkdir(parents=True, exist_ok=True)
    if a.child:
        child(a)
        return
    vhack_file(a)  # once, before either way
    seeds = list(range(a.runs))
    singles = [count(a, [s]) for s in tqdm(seeds, desc="alone, one process a seed")]
    alone = {p: sum(c[p] for c in singles) / len(singles) for p in PHASES}
    packed = count(a, seeds)
    print(f"aten operations a run, seeds 0-{a.runs - 1} ({a.arm}, {a.model}, {a.steps} steps, --n-eval {a.n_eval}"
          f"{', GPU-like: one pass, no folding, foreach' if a.gpu_like else ', the CPU settings'}):")
    print(f"  {'phase':28s} {'alone':>9s} {f'{a.runs} runs':>9s} {'ratio':>6s}   alone, each seed")
    for p in PHASES:
        unit = "once" if p == "evaluation" else "a step"
        each = " ".join(f"{c[p]:.0f}" for c in singles)
        print(f"  {p + ', ' + unit:28s} {alone[p]:9.0f} {packed[p]:9.0f} {packed[p] / max(alone[p], 1):6.2f}   {each}")
    steps = ("training", "update")
    total = sum(alone[p] for p in steps), sum(packed[p] for p in steps)
    print(f"eager training step (training + update): {total[0]:.0f} alone, {total[1]:.0f} a run packed "
          f"({total[1] / total[0]:.2f} of alone)")


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        main()
