"""one-off (session 27): where the training phase's aten operations come from (the innermost projected_grpo frame),
GPU-like settings of scripts/bench_ops.py, route, 2 steps; operations a run and step.  R=1 python3 sites.py"""
import collections, sys, functools, traceback, json
sys.argv = ["bench_ops.py", "--gpu-like"]
sys.path.insert(0, "scripts")
import bench_ops as b
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from projected_grpo.loop import cli, grpo
R = int(__import__("os").environ["R"])  # runs in the process
sites = collections.Counter(); cur = ["other"]
class Count(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if cur[0] == __import__("os").environ.get("PHASE", "training"):  # PHASE=update for the update
            f = sys._getframe(1)
            while f and "projected_grpo" not in f.f_code.co_filename:
                f = f.f_back
            key = f"{f.f_code.co_filename.split('/')[-1]}:{f.f_code.co_name}:{f.f_lineno}" if f else "?"
            sites[key] += 1
        return func(*args, **(kwargs or {}))
for name, phase in b.METHODS.items():
    setattr(grpo.Trainer, name, b.counted(phase, collections.Counter(), cur, getattr(grpo.Trainer, name)))
b.gpu_like_settings(); torch.set_num_threads(1)
import tempfile
with tempfile.TemporaryDirectory() as d:
    argv = ["--arm", "route", "--seeds" if R > 1 else "--seed", ",".join(map(str, range(R))), "--out-dir", d, "--device", "cpu",
            "--model", "organism:cpu", "--steps", "2", "--n-eval", "4", "--eval-every", "0", "--vhack",
            "out/bench_ops/vhack_own_organism_cpu.safetensors", "--micro-batch", "0"]
    with Count():
        cli.train(argv, "train.py", "")
for k, v in sites.most_common(25):
    print(f"{v / (2 * R):8.0f} {k}")
