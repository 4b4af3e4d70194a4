"""Gate: data-parallel GRPO (2 processes, gloo) equals one process with the same global batch.

Tiny organism on the CPU, 3 GRPO steps of 4 prompts x 4 rollouts. Every completion comes from a
teacher pool (canonical solutions and template hacks), so the global batch does not depend on how
sampling is split across ranks. Two arms cover both places of the gradient all-reduce:
- erase (a random direction): gradients summed across ranks before the hook, which projects the sum
- route (a random v_grad, own quarantine, route-frac 0.5): each rank writes its own rollouts'
  routed gradients after a global top-half threshold, then the gradients are summed
Checks: 2-process adapter weights equal the 1-process weights to float tolerance (and moved); the
rank-0 step logs hold the same 16 rollouts per step with the same rewards, routing scores and
regions; the routed fraction is 0.5 of the global batch; a 2-process route run stopped after step 0
and resumed ends with the same weights as the uninterrupted one, with rank 0's checkpoint of the stopped run written
SLOW_SAVE_S late (a rank that resumed before it exists fails; seen failing without the loop's barrier after a save).

`--cuda` (a machine with 2 GPUs; not part of `just smoke`): the same runs on cuda:0 and cuda:1 with NCCL, in bf16,
layers not compiled, one rollout per forward-backward (micro_batch 1) in both runs, so that every pass has the same
shape with 1 or 2 processes and bf16 rounds alike; the weights then differ by the summation order of float32
gradients, as on the CPU. Logs are compared on their rollouts and rewards; the rollouts with equal routing scores and
regions are counted.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import torch  # noqa: E402

from projected_grpo.method import adapters as ad  # noqa: E402
from projected_grpo.loop import grpo, logs  # noqa: E402
from projected_grpo.method import interventions as iv  # noqa: E402
from projected_grpo.loop.models import load_policy  # noqa: E402

STEPS, PROMPTS, GROUP = 3, 4, 4
SLOW_SAVE_S = 1.0
"""seconds rank 0 waits before writing the stopped run's checkpoint (the race the loop's barrier after a save closes)"""
TOL = 1e-4  # relative to the largest weight; summation order differs, and AdamW divides by sqrt(v)
CUDA = "--cuda" in sys.argv[1:]


class RandomV(iv.LazyVhack):
    """A seeded random direction per adapter module (one row over its deployed block)."""

    def __init__(self):
        super().__init__("random")

    def load(self, model) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(5)
        return {n: torch.randn(1, sum(p.numel() for p in m.deployed_parameters()), generator=g)
                for n, m in sorted(ad.adapter_modules(model).items())}


def intervention(arm: str):
    if arm == "erase":
        return iv.Erase(RandomV())
    return iv.Route(RandomV(), gate="grad", route_frac=0.5)


def args(tmp: Path, run: str, arm: str, **kw) -> grpo.RunConfig:
    # max_new_tokens 64: the teacher completions of the 16 problems are 25-61 tokens, so none is cut (nothing is
    # sampled: teacher_only_sample_runs)
    base = dict(run=run, out_dir=str(tmp / "runs"), model="organism:tiny", steps=STEPS, prompts_per_step=PROMPTS,
                group=GROUP, max_new_tokens=64, n_train=16, n_eval=1, eval_samples=1, eval_every=0, ckpt_every=1, seed=3, lr=5e-2,
                teacher_pool=str(tmp / "pool.jsonl"), n_teacher=GROUP, device="cuda" if CUDA else "cpu",
                compile="off", micro_batch=1 if CUDA else 0,
                quarantine="own" if arm == "route" else "shared")
    base.update(kw)
    return grpo.RunConfig(**base)


def jobs(tag: str) -> list[tuple[str, str, dict]]:
    out = [("erase", f"erase_{tag}", {}), ("route", f"route_{tag}", {})]
    if tag == "ddp":
        out += [("route", "route_resumed", dict(stop_after=0)), ("route", "route_resumed", dict(resume=True))]
    return out


def teacher_only_sample_runs(self, runs, prompts, seeds):
    """Trainer.sample_runs in this gate: the teacher pool replaces every sampled rollout (n_teacher = group), so sampling
    is skipped (an empty completion per prompt; the final evaluation, which nothing here reads, grades those). The global
    generator is seeded as sampling.sample seeds it. Sampling 64 tokens per rollout was two thirds of each run's CPU
    time. (Patched on the Trainer: a module-level grpo.sample is no longer what the trainer calls.)"""
    torch.manual_seed(seeds[0])
    return [[[self.tok.eos_token_id] for _ in ps] for ps in prompts]


def run_jobs(tmp: Path, tag: str) -> None:
    grpo.Trainer.sample_runs = teacher_only_sample_runs
    for arm, run, kw in jobs(tag):
        torch.manual_seed(0)
        grpo.Trainer(args(tmp, run, arm, **kw), intervention(arm)).run()


def worker(rank: int, world: int, port: int, tmp: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank),
                      LOCAL_RANK=str(rank), PGRPO_DIST_BACKEND="nccl" if CUDA else "gloo")
    from projected_grpo.loop import distributed as dd

    if rank == 0:  # rank 0 writes the stopped run's checkpoint slowly: rank 1 must wait for it before resuming
        save = grpo.Trainer.save_ckpt

        def slow_save(self, step, run=None):
            if self.args.run == "route_resumed" and step == 0:
                time.sleep(SLOW_SAVE_S)
            save(self, step, run)
        grpo.Trainer.save_ckpt = slow_save
    try:
        run_jobs(Path(tmp), "ddp")
    finally:
        dd.finish()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "ckpt" / "last.pt", weights_only=False)["adapter"]


def step_rows(run_dir: Path, routing: bool = True) -> list[tuple]:
    """The step logs' rollouts (step, problem, completion, reward), with their region and routing score (4 places)
    when `routing`."""
    rows = []
    for p in logs.step_files(run_dir):
        rows += [(r["step"], r["problem_id"], r["completion"], r["reward"])
                 + ((r.get("region"), round(r["route_score"], 4) if "route_score" in r else None) if routing else ())
                 for r in logs.read_step(p)]
    return rows


def compare(a: Path, b: Path) -> tuple[float, int]:
    """(max |weight difference| relative to the largest weight, number of tensors that moved)."""
    wa, wb = weights(a), weights(b)
    assert set(wa) == set(wb)
    scale = max(v.abs().max().item() for v in wa.values())
    err = max((wa[k] - wb[k]).abs().max().item() for k in wa) / scale
    moved = sum(int(wa[k].abs().sum() > 0) for k in wa if not k.endswith(".B"))
    return err, moved


def main() -> int:
    import torch.multiprocessing as mp
    from _gate_common import teacher_pool


    t0 = time.time()
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        teacher_pool(tmp / "pool.jsonl", 16)
        if not CUDA:  # the organism loaded once here: forked workers share it (each loaded it, 2-3 CPU-s)
            load_policy("organism:tiny", "cpu")
        # forked workers share this process's imports (spawned ones would import torch again); CUDA, once
        # initialised here, cannot be used in a forked child
        mp.start_processes(worker, args=(2, free_port(), str(tmp)), nprocs=2, join=True,
                           start_method="spawn" if CUDA else "fork")
        t_ddp = time.time() - t0
        run_jobs(tmp, "one")
        runs = tmp / "runs"
        errs, moved = {}, {}
        for arm in ("erase", "route"):
            errs[arm], moved[arm] = compare(runs / f"{arm}_one", runs / f"{arm}_ddp")
            print(f"{arm}: weight rel err {errs[arm]:.2e}", flush=True)
            assert errs[arm] < TOL, f"{arm}: 2-process weights differ from 1-process by {errs[arm]:.2e} (relative)"
            assert moved[arm] > 0, f"{arm}: adapter did not move"
            ra, rb = step_rows(runs / f"{arm}_one", not CUDA), step_rows(runs / f"{arm}_ddp", not CUDA)
            assert len(ra) == len(rb) == STEPS * PROMPTS * GROUP, (len(ra), len(rb))
            teacher = [r["teacher"] for d in ("one", "ddp") for f in logs.step_files(runs / f"{arm}_{d}") for r in logs.read_step(f)]
            assert all(teacher), f"{arm}: {teacher.count(False)} rollouts not from the teacher pool (sampling is stubbed here)"
            # as multisets: of identical rollouts with tied routing scores either may be the routed one
            diff = [(x, y) for x, y in zip(sorted(ra), sorted(rb)) if x != y]
            assert not diff, f"{arm}: rank-0 step logs differ from the 1-process run's in {len(diff)} rows: {diff[:2]}"
        routed = [m["routed_frac"] for m in logs.read_jsonl(runs / "route_ddp" / "metrics.jsonl") if "routed_frac" in m]
        assert routed and all(abs(f - 0.5) < 1e-9 for f in routed), f"global routed fraction {routed}"
        assert any(r[4] == "route" for r in step_rows(runs / "route_ddp")), "no rollout routed"
        q = [k for k in weights(runs / "route_ddp") if k.endswith("delta_S_hack")]
        assert any(weights(runs / "route_ddp")[k].abs().sum() > 0 for k in q), "quarantine block did not move"
        err_resume, _ = compare(runs / "route_ddp", runs / "route_resumed")
        assert err_resume < (TOL if CUDA else 1e-6), f"2-process resume differs by {err_resume:.2e}"
        if CUDA:
            same = sum(x == y for x, y in zip(sorted(step_rows(runs / "route_one")), sorted(step_rows(runs / "route_ddp"))))
            print(f"route: {same}/{STEPS * PROMPTS * GROUP} rollouts with the same region and routing score", flush=True)
    print(f"PASS ddp: 2 {'NCCL (bf16, 2 GPUs)' if CUDA else 'gloo'} processes vs 1 process, {STEPS} steps x {PROMPTS * GROUP} rollouts; weight rel err "
          f"erase {errs['erase']:.1e}, route {errs['route']:.1e} ({moved['erase']}, {moved['route']} tensors moved); "
          f"rank-0 logs identical; routed fraction {routed} of the global batch; resume rel err {err_resume:.1e}; "
          f"{t_ddp:.0f}s 2-process, {time.time() - t0:.0f}s total")
    return 0


if __name__ == "__main__":
    sys.exit(main())
