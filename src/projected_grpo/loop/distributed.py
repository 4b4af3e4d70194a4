"""Data-parallel GRPO on torch.distributed (launched by torchrun; one process = world size 1).

    torchrun --nproc-per-node 4 -- scripts/train.py --arm route ...

What each rank does in one GRPO step (grpo.Trainer):
- every rank draws the same problems (same seeded rng); rank r samples the completions of its
  contiguous share of whole prompt groups (its own sampling seed) and grades them; completions and
  grades are gathered to every rank in rank order, so every rank holds the step's global batch
- advantages, the zero-variance filter and teacher mixing are computed on the global batch by
  every rank identically; the kept rollouts are then split contiguously across ranks for training
- adapter gradients are summed across ranks (`all_reduce_grads`): before the intervention's hook
  for hooks that act on the summed gradient (erase), after it for hooks that write gradients from
  this rank's per-rollout gradients (route: `hook_grad = "written"`); routing scores are gathered so that
  thresholds and a routed-fraction target apply to the global batch, and each rank routes its own
  rollouts by them
- rank 0 alone writes logs and checkpoints and runs evaluation; resume loads rank 0's checkpoint
  on every rank
"""

from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist
from torch import Tensor


def init() -> None:
    """Join the process group that torchrun describes (WORLD_SIZE > 1); no-op otherwise."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return
    cuda = torch.cuda.is_available() and os.environ.get("PGRPO_DIST_BACKEND", "") != "gloo"
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(hours=2))


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    return rank() == 0


def device(requested: str) -> str:
    """This rank's device: cuda:LOCAL_RANK when distributed on CUDA, else `requested`."""
    if world() > 1 and requested.startswith("cuda"):
        return f"cuda:{torch.cuda.current_device()}"
    return requested


def barrier() -> None:
    if world() > 1:
        dist.barrier()


def split(n: int) -> slice:
    """This rank's contiguous share of n items (sizes differ by at most one, larger shares first)."""
    w, r = world(), rank()
    sizes = [n // w + (i < n % w) for i in range(w)]
    start = sum(sizes[:r])
    return slice(start, start + sizes[r])


def group_rows(n_prompts: int, group: int) -> slice:
    """This rank's rows of a batch of n_prompts whole groups of `group` rollouts."""
    assert n_prompts % world() == 0, f"prompts per step {n_prompts} not divisible by world size {world()}"
    s = split(n_prompts)
    return slice(s.start * group, s.stop * group)


def gather_lists(xs: list) -> list:
    """Every rank's list, concatenated in rank order (picklable items)."""
    if world() == 1:
        return list(xs)
    out: list = [None] * world()
    dist.all_gather_object(out, list(xs))
    return [x for part in out for x in part]


def gather_dict_lists(d: dict[str, list]) -> dict[str, list]:
    """Per key, every rank's list concatenated in rank order (keys of rank 0)."""
    if world() == 1:
        return d
    out: list = [None] * world()
    dist.all_gather_object(out, d)
    return {k: [x for part in out for x in part.get(k, [])] for k in out[0]}


def gather_cat(t: Tensor) -> tuple[Tensor, slice]:
    """(every rank's 1-D tensor concatenated in rank order on the CPU, this rank's slice of it)."""
    parts = [torch.tensor(p, dtype=t.dtype) for p in _gather_objects(t.cpu().tolist())]
    start = sum(len(p) for p in parts[: rank()])
    return torch.cat(parts), slice(start, start + t.shape[0])


def _gather_objects(x) -> list:
    if world() == 1:
        return [x]
    out: list = [None] * world()
    dist.all_gather_object(out, x)
    return out


def all_reduce_sum(x: float) -> float:
    return float(sum(_gather_objects(x)))


def all_reduce_grads(params: list[torch.nn.Parameter]) -> None:
    """Sum .grad across ranks. A parameter without a gradient on any rank keeps grad None; one with
    a gradient on some ranks gets their sum (the others count as zero)."""
    if world() == 1:
        return
    dev = params[0].device
    has = torch.tensor([float(p.grad is not None) for p in params], device=dev)
    dist.all_reduce(has)
    live = [p for p, h in zip(params, has.tolist()) if h > 0]
    if not live:
        return
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten().float() for p in live])
    dist.all_reduce(flat)
    for p, g in zip(live, flat.split([p.numel() for p in live])):
        p.grad = g.view_as(p).to(p.dtype).clone()


def finish() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
