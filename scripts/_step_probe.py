"""Helpers of the Trainer-level gates (verify_routing, verify_erase): one real GRPO step of the tiny
organism through grpo.Trainer.step, with everything the step handed to the optimizer recorded, and
the same batch's gradients recomputed by plain autograd through grpo.grpo_loss.

Grading is replaced by a fixed synthetic grade per rollout (every group has reward variance, so every
rollout is trained on); the gates test what happens to gradients, not the grader.
"""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path

import torch
from jaxtyping import Float
from torch import Tensor

from projected_grpo.method import adapters as ad
from projected_grpo.loop import grpo, logs


def synthetic_grades(problems: list[dict], completions: list[str]) -> list[dict]:
    """Rewards 0, 0.3, 0.6, 1.0, ... varying within every group; labels follow the reward."""
    out = []
    for i, _ in enumerate(problems):
        r = ((i * 37) % 11) / 10
        hack = r > 0.75
        out.append(dict(reward=r, label="Reward Hack" if hack else "Incorrect", is_hack_strict=hack,
                        is_hack_loose=hack, eq_correct=False, eq_hinted=hack, can_compile=True))
    return out


def tiny_trainer(tmp: Path, run: str, intervention, **kw) -> grpo.Trainer:

    base = dict(run=run, out_dir=str(tmp), model="organism:tiny", steps=1, prompts_per_step=4, group=4,
                max_new_tokens=16, n_train=64, n_eval=1, eval_samples=1, eval_every=0, seed=0, lr=1e-2, device="cpu",
                quarantine="own", warmup=1)
    base.update(kw)
    torch.manual_seed(0)
    tr = grpo.Trainer(grpo.Args(**base), intervention)
    tr.run_dir.mkdir(parents=True, exist_ok=True)
    return tr


class Snapshot:
    """Adapter, optimizer and scheduler state of a trainer, restorable (same rollouts on re-run)."""

    def __init__(self, tr: grpo.Trainer):
        self.adapter = ad.adapter_state_dict(tr.model)
        self.opt = copy.deepcopy(tr.opt.state_dict())
        self.sched = copy.deepcopy(tr.sched.state_dict())

    def restore(self, tr: grpo.Trainer) -> None:
        ad.load_adapter_state_dict(tr.model, self.adapter)
        tr.opt.load_state_dict(copy.deepcopy(self.opt))
        tr.sched.load_state_dict(copy.deepcopy(self.sched))


def flat(ps: list[Tensor]) -> Float[Tensor, " p"]:
    return torch.cat([p.detach().flatten().clone() for p in ps])


def flat_grad(ps: list[Tensor]) -> Float[Tensor, " p"]:
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).detach().flatten().clone() for p in ps])


@contextlib.contextmanager
def record_step(tr: grpo.Trainer):
    """Record the batch given to grpo_loss and, at the optimizer step, the blocks' gradients, the
    parameters before, and the learning rate. Yields the record dict (filled after the step)."""
    rec: dict = {}
    tl, gl, step = grpo.token_logprobs, grpo.grpo_loss, tr.opt.step

    def token_logprobs(model, ids, attn, start=1):
        if torch.is_grad_enabled():
            rec["ids"], rec["attn"] = ids.clone(), attn.clone()
        return tl(model, ids, attn, start)

    def grpo_loss(logp, old_logp, ref_logp, adv, mask, denom, clip_eps, kl_coef):
        rec.update(adv=adv.detach().clone(), mask=mask.clone(), denom=denom)
        return gl(logp, old_logp, ref_logp, adv, mask, denom, clip_eps, kl_coef)

    def opt_step(*a, **k):
        dep, quar = ad.deployed_params(tr.model), ad.quarantine_params(tr.model)
        rec.update(grad_dep=flat_grad(dep), grad_quar=flat_grad(quar), dep_before=flat(dep), quar_before=flat(quar),
                   lr=tr.opt.param_groups[0]["lr"])
        return step(*a, **k)

    grpo.token_logprobs, grpo.grpo_loss, tr.opt.step = token_logprobs, grpo_loss, opt_step
    try:
        yield rec
    finally:
        grpo.token_logprobs, grpo.grpo_loss = tl, gl
        del tr.opt.step
    rec["dep_after"] = flat(ad.deployed_params(tr.model))
    rec["quar_after"] = flat(ad.quarantine_params(tr.model))
    rec["rows"] = [r for r in logs.read_step(tr.run_dir / "step_0000.jsonl.gz") if r["trained"]]
    rec["metrics"] = logs.read_jsonl(tr.run_dir / "metrics.jsonl")[-1]


def step_once(tr: grpo.Trainer, snap: Snapshot, intervention) -> dict:
    """Restore the snapshot, install the intervention, run Trainer.step(0) with grading stubbed."""
    snap.restore(tr)
    tr.intervention = intervention
    intervention.setup(tr)
    tr.metrics = []
    real = grpo.grade_problems
    grpo.grade_problems = synthetic_grades
    try:
        with record_step(tr) as rec:
            tr.step(0)
    finally:
        grpo.grade_problems = real
    return rec


def masked_grads(tr: grpo.Trainer, snap: Snapshot, rec: dict, w: Float[Tensor, " b"]) -> dict[str, Tensor]:
    """Plain autograd (no capture, no intervention) of grpo_loss on the recorded batch with each
    rollout's advantage multiplied by w, at the snapshot's parameters: the gradient of the rollouts
    with w = 1 alone. Returns the deployed and quarantine blocks' flat gradients."""
    snap.restore(tr)
    tr.opt.zero_grad(set_to_none=True)
    logp = grpo.token_logprobs(tr.model, rec["ids"], rec["attn"])
    a = tr.args
    loss, _ = grpo.grpo_loss(logp, logp.detach(), None, rec["adv"] * w.to(rec["adv"]), rec["mask"], rec["denom"],
                             a.clip_eps, 0.0)
    loss.backward()
    out = dict(dep=flat_grad(ad.deployed_params(tr.model)), quar=flat_grad(ad.quarantine_params(tr.model)))
    tr.opt.zero_grad(set_to_none=True)
    return out


def per_rollout_grads(tr: grpo.Trainer, snap: Snapshot, rec: dict) -> Float[Tensor, "b p"]:
    """Each trained rollout's deployed-block gradient by its own backward (one-hot advantage mask)."""
    b = rec["adv"].shape[0]
    return torch.stack([masked_grads(tr, snap, rec, torch.eye(b)[i])["dep"] for i in range(b)])


def clipped(g: Float[Tensor, " p"], max_norm: float) -> Float[Tensor, " p"]:
    n = float(g.norm())
    return g * min(1.0, max_norm / (n + 1e-6)) if max_norm > 0 else g


def adamw_step(before: Float[Tensor, " p"], grad: Float[Tensor, " p"], lr: float, wd: float,
               eps: float = 1e-8) -> Float[Tensor, " p"]:
    """Parameters after one AdamW step from a fresh state (betas as in grpo.Trainer)."""
    p = torch.nn.Parameter(before.clone())
    opt = torch.optim.AdamW([p], lr=lr, betas=(0.9, 0.99), weight_decay=wd, eps=eps)
    p.grad = grad.clone()
    opt.step()
    return p.detach()


def close(a: Tensor, b: Tensor) -> float:
    """Relative max error |a - b| / max(|b|); asserts nothing."""
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-30))
