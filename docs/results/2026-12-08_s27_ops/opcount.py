"""one-off (session 27): aten operations dispatched per phase of GRPO steps in one process of R route runs (CPU, one
thread), and each phase's CPU seconds; run with the code under test on PYTHONPATH.

    python3 opcount.py R STEPS [count|cpu] [train.py flags...]
count: every aten operation is counted (a TorchDispatchMode, which slows the process: its CPU is not reported);
cpu: no counting, each phase's process CPU. On a GPU each operation is at least one kernel launch from the CPU."""
import collections, functools, sys, time
from pathlib import Path
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from projected_grpo.loop import cli, grpo
from projected_grpo.method import vhack
from projected_grpo.method.pairs import HACK_PAIRS

R, STEPS, MODE, EXTRA = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4:]
vh = Path("out/p27/vhack_own_cpu.safetensors")
if not vh.exists():
    vh.parent.mkdir(parents=True, exist_ok=True)
    vhack.extract_to_file(vh, HACK_PAIRS, "organism:cpu", quarantine="own", device="cpu")
PHASE, COUNT, CPU, NAMES = ["other"], collections.Counter(), collections.Counter(), collections.defaultdict(collections.Counter)


class Count(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        COUNT[PHASE[0]] += 1
        NAMES[PHASE[0]][str(func)] += 1
        return func(*args, **(kwargs or {}))


def phase(name, f):
    @functools.wraps(f)
    def g(*a, **k):
        old, c = PHASE[0], time.process_time()
        PHASE[0] = name
        try:
            return f(*a, **k)
        finally:
            CPU[name] += time.process_time() - c
            PHASE[0] = old
    return g


T = grpo.Trainer
T.rollouts, T.update = phase("generate", T.rollouts), phase("update", T.update)
T.train_runs, T.evaluate = phase("train", T.train_runs), phase("evaluate", T.evaluate)
out = f"out/p27/{MODE}_r{R}_{time.time_ns()}"
argv = ["--arm", "route", "--seeds" if R > 1 else "--seed", ",".join(map(str, range(R))), "--out-dir", out, "--vhack",
        str(vh), "--device", "cpu", "--model", "organism:cpu", "--steps", str(STEPS), "--n-eval", "12", "--eval-every",
        "0"] + EXTRA
torch.set_num_threads(1)
if __import__("os").environ.get("OPCOUNT_NOFOLD"):  # the branch forward, as on CUDA, where the organism is bf16 (no folding)
    from projected_grpo.method import adapters
    adapters.AdaptedLinear.fold = False
if __import__("os").environ.get("OPCOUNT_FOREACH"):  # AdamW and clipping as on CUDA, where both default to foreach
    import torch.nn.utils.clip_grad as _clip
    _adamw_init, _clip_norm = torch.optim.AdamW.__init__, _clip.clip_grad_norm_
    torch.optim.AdamW.__init__ = lambda self, *a, **k: _adamw_init(self, *a, **dict(k, foreach=True))
    torch.nn.utils.clip_grad_norm_ = lambda *a, **k: _clip_norm(*a, **dict(k, foreach=True))
with Count() if MODE == "count" else __import__("contextlib").nullcontext():
    cli.train(argv, "train.py", "")
CPU["train"] -= CPU["update"]  # train_runs' CPU without its nested per-run updates
per = {"generate": R * STEPS, "train": R * STEPS, "update": R * STEPS, "evaluate": R}
for k in per:
    if MODE == "count":
        top = ", ".join(f"{n.replace('aten.', '')} {c / per[k]:.0f}" for n, c in NAMES[k].most_common(6))
        print(f"R={R} {k:9s} aten ops a run {'and step' if k != 'evaluate' else '(final eval)'}: {COUNT[k] / per[k]:8.0f}   top: {top}")
    else:
        print(f"R={R} {k:9s} CPU-s a run {'and step' if k != 'evaluate' else '(final eval)'}: {CPU[k] / per[k]:.3f}")
