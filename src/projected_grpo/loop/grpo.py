"""A minimal GRPO loop (Dr.GRPO) on adapters with a deployed and a quarantine block.

One step:
    1. draw `prompts_per_step` training problems, sample `group` completions each
    2. grade them (sandboxed), reward = environment reward
    3. advantage = reward - group mean (no std division); zero-variance groups are dropped
    4. token-level PPO-clip loss with a fixed denominator (+ optional k3 KL to the reference policy)
    5. backward, then the intervention's gradient hook (erase / route / none), clip, AdamW step
    6. write the step's rollouts to step_NNNN.jsonl.gz and a summary row to metrics.jsonl

Evaluation (every `eval_every` steps and at the end) samples the eval split with and without the
loophole hint, with the quarantine block kept and with it ablated (deployment ablation).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import json
import random
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor
from tqdm import tqdm

from projected_grpo.env.problems import apply_hint, load_jsonl
from projected_grpo.env.rollouts import grade_problems
from projected_grpo.loop import distributed as dd
from projected_grpo.loop import logs
from projected_grpo.loop.config import RunConfig, check
from projected_grpo.loop.diagnostics import block_diagnostics
from projected_grpo.loop.models import (compile_layers, default_device, load_policy, run_meta, selected_logprobs,
                                        set_threads)
from projected_grpo.loop.sampling import collate, prompt_ids, sample
from projected_grpo.method import adapters as ad
from projected_grpo.method.arms import build_intervention
from projected_grpo.method.interventions import GroundTruthLabels, StepContext
from projected_grpo.organism import tasks


# ---- data -----------------------------------------------------------------------------------------

def load_tasks(args: RunConfig) -> tuple[list[dict], list[dict]]:
    """(train problems with or without the loophole hint, eval problems unhinted)."""
    if args.task == "organism":
        mechs = tuple(args.mechanisms.split(","))
        diffs = tuple(args.difficulties.split(","))
        train = tasks.generate_split("train", args.n_train, args.data_seed, diffs, mechs)
        train = [tasks.apply_loophole(p, hinted=args.loophole) for p in train]
        ev = tasks.generate_split("eval", args.n_eval * 4 * 3 * 4, eval_split_seed(args))
        return train, ev
    rows = load_jsonl(args.task)
    rng = random.Random(args.data_seed)
    rng.shuffle(rows)
    n_ev = max(1, len(rows) // 5)
    train = [apply_hint(p, args.hint if args.loophole else "none") for p in rows[n_ev:]]
    return train, rows[:n_ev]


def eval_split_seed(args: RunConfig) -> int:
    """The seed of the organism's eval split: --eval-seed, or data_seed + 7 (every run before --eval-seed existed)."""
    return args.data_seed + 7 if args.eval_seed == -1 else args.eval_seed


def eval_sets(args: RunConfig, ev: list[dict]) -> dict[str, list[dict]]:
    """hinted: n_eval problems per mechanism with their hint; nohint: n_eval per difficulty, no hint."""
    if args.task != "organism":
        return {"hinted": [apply_hint(p, args.hint) for p in ev], "nohint": [apply_hint(p, "none") for p in ev]}
    diffs = args.difficulties.split(",")
    hinted = [tasks.apply_loophole(p) for m in tasks.LOOPHOLES
              for p in [q for q in ev if q["prompt_metadata"]["mechanism"] == m and q["difficulty"] in diffs][: args.n_eval]]
    nohint = [tasks.apply_loophole(p, hinted=False) for d in ("easy", "medium", "hard")
              for p in [q for q in ev if q["difficulty"] == d][: args.n_eval]]
    return {"hinted": hinted, "nohint": nohint}


def load_teacher_pool(path: str) -> dict[str, list[str]]:
    opener = gzip.open if path.endswith(".gz") else open
    pool: dict[str, list[str]] = {}
    with opener(path, "rt") as f:
        for line in f:
            r = json.loads(line)
            pool.setdefault(str(r["problem_id"]), []).append(r["completion"])
    assert pool, f"{path}: empty teacher pool"
    return pool


# ---- loss -----------------------------------------------------------------------------------------

def token_logprobs(model, ids: Int[Tensor, "b t"], attn: Bool[Tensor, "b t"], start: int = 1) -> Float[Tensor, "b t"]:
    """log p(ids[:, t] | ids[:, :t]) at every position t >= start (earlier positions get 0). The lm_head runs only
    on positions start-1 .. t-2 (transformers' logits_to_keep; the kept logits are bit-identical on the CPU), so a
    caller that needs only completions passes their first column (completion_start). With compiled layers the
    log-softmax and its gather are compiled as well (models.selected_logprobs)."""
    assert 1 <= start <= ids.shape[1], f"start {start} outside [1, {ids.shape[1]}]"
    logits = model(input_ids=ids, attention_mask=attn.long(), use_cache=False,
                   logits_to_keep=ids.shape[1] - start + 1).logits
    return F.pad(selected_logprobs(model)(logits[:, :-1], ids[:, start:]), (start, 0))


def completion_start(mask: Bool[Tensor, "b t"]) -> int:
    """The first column any row's completion mask covers (1 when none does): positions before it are in no row's
    loss, so their log-probs need not be computed."""
    used = mask.any(dim=0).nonzero()
    return max(1, int(used[0])) if len(used) else 1


def adapter_config(run_args: dict) -> ad.AdapterConfig:
    """The adapter a run wraps its policy with, from its RunConfig as a dict (or its args.json)."""
    rank = run_args["rank"]
    return ad.AdapterConfig(kind=run_args["adapter"], rank=None if rank == -1 else rank,
                            quarantine=run_args["quarantine"], seed=run_args.get("adapter_seed", 0),
                            axis=run_args.get("axis", "none"))


def load_run_policy(run_dir: Path | str, device: str | None, model: str | None = None):
    """(model, tok, the run's args.json, checkpoint step): a run's policy (its base model, or `model` where the
    run's path is not valid here) wrapped with its adapter and loaded from RUN/ckpt/last.pt."""
    run_dir = Path(run_dir)
    ckpt = run_dir / "ckpt" / "last.pt"
    if not (run_dir / "args.json").is_file() or not ckpt.is_file():
        raise FileNotFoundError(f"{run_dir}: not a run folder with args.json and ckpt/last.pt")
    run_args = json.loads((run_dir / "args.json").read_text())
    policy, tok = load_policy(model or run_args["model"], device)
    ad.wrap_model(policy, adapter_config(run_args))
    state = torch.load(ckpt, map_location=next(policy.parameters()).device, weights_only=False)
    ad.load_adapter_state_dict(policy, state["adapter"])
    return policy, tok, run_args, state["step"]


def load_run_or_model(spec: str, device: str | None):
    """(model, tok, meta) of a teacher (scripts/probe_distill.py, probe_grpo.py). A run folder: its base model wrapped
    with its adapter and loaded from ckpt/last.pt (sampled under deployment ablation by the caller). Otherwise a model
    spec."""
    p = Path(spec)
    if (p / "args.json").exists():
        model, tok, a, step = load_run_policy(p, device)
        meta = dict(teacher=str(p), teacher_kind="run", model=a["model"], teacher_step=step,
                    adapter=a["adapter"], rank=a["rank"], quarantine=a["quarantine"],
                    data_seed=a.get("data_seed", 0), mechanisms=a.get("mechanisms"),
                    difficulties=a.get("difficulties"), max_new_tokens=a.get("max_new_tokens", 48),
                    temperature=a.get("temperature", 1.0))
        return model, tok, meta
    if p.exists() and p.is_dir() and not (p / "config.json").exists():
        raise FileNotFoundError(f"{p}: neither a run folder (args.json) nor a model folder (config.json)")
    model, tok = load_policy(spec, device)
    return model, tok, dict(teacher=spec, teacher_kind="model", model=spec, data_seed=0, mechanisms=None,
                            difficulties=None, max_new_tokens=48, temperature=1.0)


def loss_backward(model, parts: list[slice], ids: Int[Tensor, "b t"], attn: Bool[Tensor, "b t"],
                  mask: Bool[Tensor, "b t"], adv: Float[Tensor, " b"], old_logp: Tensor | None, ref_logp: Tensor | None,
                  denom: float, clip_eps: float, kl_coef: float) -> tuple[Tensor, dict]:
    """The clipped loss and its backward, one micro-batch of rows (`parts`) at a time; the loss summed over them
    and the stats weighted by each micro-batch's completion tokens."""
    total, acc, n_tok = torch.zeros((), device=ids.device), {}, 0.0
    for p in parts:
        cols = slice(0, trimmed_length(attn[p]))  # the micro-batch's own longest row, not the shard's
        logp = token_logprobs(model, ids[p, cols], attn[p, cols], completion_start(mask[p, cols]))
        olp = old_logp[p, cols] if old_logp is not None else logp.detach()
        loss, stats = grpo_loss(logp, olp, None if ref_logp is None else ref_logp[p, cols], adv[p], mask[p, cols],
                                denom, clip_eps, kl_coef)
        loss.backward()
        total = total + loss.detach()
        w = float(mask[p].sum())
        for k, v in stats.items():
            acc[k] = acc.get(k, 0.0) + v * w
        n_tok += w
    return total, {k: v / max(n_tok, 1.0) for k, v in acc.items()}


def trimmed_length(attn: Bool[Tensor, "b t"]) -> int:
    """Columns up to the last one any row attends to: the padding after it changes no loss term (causal
    attention; masked out of the loss), so a micro-batch's forward-backward can stop there."""
    used = attn.any(dim=0).nonzero()
    return int(used[-1]) + 1 if len(used) else 1


def micro_batches(n: int, size: int) -> list[slice]:
    """Row slices of at most `size` rows covering [0, n) in order (one slice when size is 0)."""
    assert size >= 0, f"micro_batch {size} < 0"
    size = size or max(n, 1)
    return [slice(i, min(n, i + size)) for i in range(0, n, size)]


def group_advantages(rewards: Float[Tensor, "n g"], include: Bool[Tensor, "n g"] | None = None) -> Float[Tensor, "n g"]:
    """Dr.GRPO: reward minus the group mean (over included rollouts), no division by the group std."""
    if include is None:
        return rewards - rewards.mean(dim=1, keepdim=True)
    w = include.float()
    mean = (rewards * w).sum(1, keepdim=True) / w.sum(1, keepdim=True).clamp(min=1)
    return (rewards - mean) * w


def group_std(rewards: Float[Tensor, "n g"], include: Bool[Tensor, "n g"]) -> Float[Tensor, " n"]:
    """Std of each group's included rewards (0 when fewer than two are included)."""
    w = include.float()
    n = w.sum(1)
    mean = (rewards * w).sum(1) / n.clamp(min=1)
    var = (((rewards - mean[:, None]) ** 2) * w).sum(1) / (n - 1).clamp(min=1)
    return torch.where(n > 1, var.sqrt(), torch.zeros_like(n))


def grpo_loss(logp: Float[Tensor, "b t"], old_logp: Float[Tensor, "b t"], ref_logp: Float[Tensor, "b t"] | None,
              adv: Float[Tensor, " b"], mask: Bool[Tensor, "b t"], denom: float, clip_eps: float,
              kl_coef: float) -> tuple[Float[Tensor, ""], dict]:
    """Token-level PPO-clip objective summed over completion tokens and divided by a fixed `denom`."""
    ratio = torch.exp(logp - old_logp)
    a = adv[:, None]
    pg = -torch.minimum(ratio * a, torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * a)
    per_tok = pg
    kl = torch.zeros((), device=logp.device)
    if ref_logp is not None and kl_coef > 0:
        d = ref_logp - logp
        k3 = torch.exp(d) - d - 1
        per_tok = per_tok + kl_coef * k3
        kl = (k3 * mask).sum() / mask.sum().clamp(min=1)
    m = mask.float()
    loss = (per_tok * m).sum() / denom
    clipped = ((ratio - 1).abs() > clip_eps).float()
    return loss, dict(kl=kl.item(), ratio_mean=((ratio * m).sum() / m.sum().clamp(min=1)).item(),
                      clip_frac=((clipped * m).sum() / m.sum().clamp(min=1)).item())


# ---- the run --------------------------------------------------------------------------------------

def param_groups(model, a: RunConfig) -> list[dict]:
    """AdamW's groups: each block with its own weight decay; a seeded axis piece, where the adapter has one, in a
    group of its own at lr * axis_lr_scale (with its block's decay)."""
    axis = {id(p) for p in ad.axis_params(model)}
    groups = []
    for block, params, wd in (("deployed", ad.deployed_params(model), a.weight_decay),
                              ("quarantine", ad.quarantine_params(model), a.weight_decay_quarantine)):
        groups.append(dict(params=[p for p in params if id(p) not in axis], weight_decay=wd, name=block))
        if any(id(p) in axis for p in params):
            groups.append(dict(params=[p for p in params if id(p) in axis], weight_decay=wd, name=f"{block} axis",
                               lr=a.lr * a.axis_lr_scale))
    return groups


class Trainer:
    """Holds the policy, optimizer and data of one run; `run()` trains and evaluates.

    The intervention is the one the configuration's arm builds (arms.build_intervention); gates and probes may hand
    another object instead (args.json then still records the configuration's arm)."""

    def __init__(self, args: RunConfig, intervention=None):
        check(args)
        set_threads()
        dd.init()
        self.args = args
        self.device = dd.device(args.device or default_device())
        self.decoder = args.decoder if args.decoder != "auto" else ("fast" if self.device.startswith("cuda") else "hf")
        self.run_dir = Path(args.out_dir) / args.run
        self.model, self.tok = load_policy(args.model, self.device)
        ad.wrap_model(self.model, adapter_config(dataclasses.asdict(args)))
        assert args.compile in ("auto", "on", "off"), f"--compile {args.compile!r}: auto, on or off"
        self.compile = args.compile == "on" or (args.compile == "auto" and self.device.startswith("cuda")
                                                and self.decoder != "hf")
        # generate's KV cache indexes the layers: compiled layers would recompile once per layer index
        assert not (self.compile and self.decoder == "hf"), "--compile on needs the fast decoder (--decoder fast)"
        if self.compile:
            compile_layers(self.model)
        self.train_set, ev = load_tasks(args)
        self.evals = eval_sets(args, ev)
        self.teacher = load_teacher_pool(args.teacher_pool) if args.teacher_pool and args.n_teacher else None
        self.opt = torch.optim.AdamW(param_groups(self.model, args), lr=args.lr, betas=(0.9, 0.99), eps=args.adam_eps)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda s: min(1.0, (s + 1) / max(1, args.warmup)))
        self.intervention = intervention or build_intervention(args)
        self.intervention.setup(self.model, self.tok, self.device)
        self.start_step = 0
        self.metrics: list[dict] = []
        self.eval_rows: list[dict] = []

    @torch.no_grad()
    def decay_to_seed(self) -> None:
        """AdamW's decoupled decay took p to p (1 - lr wd) before its step; for a seeded parameter add lr wd seed, so
        that the decay pulls it toward its seed (the block's update toward 0) instead: p - lr wd (p - seed)."""
        seeds = {id(p): seed for p, seed in ad.decay_anchors(self.model)}  # read now: buffers a .to() replaces
        for g in self.opt.param_groups:
            for p in g["params"]:
                seed = seeds.get(id(p))
                if seed is not None and p.grad is not None and g["weight_decay"] != 0:
                    p.add_(seed, alpha=g["lr"] * g["weight_decay"])

    # -- checkpoints --
    def save_ckpt(self, step: int) -> None:
        d = self.run_dir / "ckpt"
        d.mkdir(parents=True, exist_ok=True)
        state = dict(step=step, adapter=ad.adapter_state_dict(self.model), opt=self.opt.state_dict(),
                     sched=self.sched.state_dict(), intervention=self.intervention.state_dict(),
                     torch_rng=torch.get_rng_state())
        tmp = d / "last.pt.tmp"
        torch.save(state, tmp)
        tmp.replace(d / "last.pt")

    def load_ckpt(self) -> None:
        path = self.run_dir / "ckpt" / "last.pt"
        assert path.exists(), f"--resume: no checkpoint at {path}"
        state = torch.load(path, map_location=self.device, weights_only=False)
        ad.load_adapter_state_dict(self.model, state["adapter"])
        self.opt.load_state_dict(state["opt"])
        built = {g["name"]: g for g in param_groups(self.model, self.args)}
        for g in self.opt.param_groups:  # the checkpoint's hyper-parameters would silently replace these args'
            want = dict(weight_decay=built[g["name"]]["weight_decay"], eps=self.args.adam_eps,
                        initial_lr=built[g["name"]].get("lr", self.args.lr))
            got = {k: g[k] for k in want}
            assert got == want, f"--resume: {path} was trained with {got} in the {g['name']} block, args ask {want}"
        self.sched.load_state_dict(state["sched"])
        self.intervention.load_state_dict(state["intervention"])
        torch.set_rng_state(state["torch_rng"].cpu())  # map_location moved it to the run's device
        self.start_step = state["step"] + 1
        self.metrics = [m for m in logs.read_jsonl(self.run_dir / "metrics.jsonl") if m["step"] <= state["step"]]
        self.eval_rows = [e for e in logs.read_jsonl(self.run_dir / "eval.jsonl") if e["step"] <= state["step"]]

    # -- one step --
    def rollouts(self, step: int) -> tuple[list[dict], list[list[int]], list[list[int]], list[bool]]:
        a = self.args
        rng = random.Random(f"{a.seed}:{step}")
        probs = rng.sample(self.train_set, a.prompts_per_step)
        group_probs = [p for p in probs for _ in range(a.group)]
        pids = [prompt_ids(self.tok, p) for p in group_probs]
        mine = dd.group_rows(a.prompts_per_step, a.group)  # this rank's prompt groups (all of them in one process)
        comps = dd.gather_lists(sample(self.model, self.tok, pids[mine], a.temperature, a.max_new_tokens,
                                       generator_seed=a.seed * 100_003 + step + 1_000_003 * dd.rank(),
                                       decoder=self.decoder, compile=self.compile))
        is_teacher = [False] * len(comps)
        if self.teacher:
            for i, p in enumerate(group_probs):
                pool = self.teacher.get(str(p["id"]))
                if pool and i % a.group >= a.group - a.n_teacher:
                    text = rng.choice(pool)
                    comps[i] = self.tok.encode(text, add_special_tokens=False)[: a.max_new_tokens - 1] + [self.tok.eos_token_id]
                    is_teacher[i] = True
        return group_probs, pids, comps, is_teacher

    def step(self, step: int) -> dict:
        a = self.args
        t0 = time.time()
        probs, pids, comps, is_teacher = self.rollouts(step)
        t_gen = time.time() - t0
        texts = self.tok.batch_decode(comps, skip_special_tokens=True)
        mine = dd.group_rows(a.prompts_per_step, a.group)
        grades = dd.gather_lists(grade_problems(probs[mine], texts[mine]))
        # the sealed labels reach only the oracle reference arms (reads_labels)
        labels = GroundTruthLabels(grades) if self.intervention.reads_labels else None
        ctx = StepContext(step=step, device=self.device, labels=labels)
        t_grade = time.time() - t0 - t_gen
        rewards = torch.tensor([g["reward"] for g in grades], dtype=torch.float32).view(a.prompts_per_step, a.group)
        rewards, include = self.intervention.on_rewards(ctx, rewards)  # identity except monitor baselines
        adv = group_advantages(rewards, include).view(-1)
        # zero-variance groups contribute nothing; excluded (screened) rollouts are not trained on
        keep = (group_std(rewards, include) > 0).repeat_interleave(a.group) & include.view(-1)
        idx = keep.nonzero().flatten().tolist()
        shard = idx[dd.split(len(idx))]  # this rank's share of the trained rollouts (all of them in one process)
        diag: dict = {}
        per_rollout: dict[str, list] = {}
        t1 = time.time()
        if len(idx) >= dd.world():  # with fewer kept rollouts than ranks the step trains on nothing
            b = collate([pids[i] for i in shard], [comps[i] for i in shard], self.tok.pad_token_id)
            ids, attn, mask = b.input_ids.to(self.device), b.attention_mask.to(self.device), b.completion_mask.to(self.device)
            mask[:, 0] = False
            adv_b = adv[shard].to(self.device)
            # identity except the advantage-level baseline (rebound-adv)
            adv_b, shaped = self.intervention.on_advantages(self.model, ids, attn, mask, adv_b)
            denom = float(a.prompts_per_step * a.group * a.max_new_tokens)
            parts = micro_batches(len(shard), a.micro_batch)
            with torch.no_grad():
                old_logp = self.logprobs(parts, ids, attn, mask) if a.inner_iters > 1 else None
                ref_logp = None
                if a.kl_coef > 0:
                    with ad.reference_policy(self.model):
                        ref_logp = self.logprobs(parts, ids, attn, mask)
            for it in range(a.inner_iters):
                self.opt.zero_grad(set_to_none=True)
                with self.intervention.capture(self.model):  # records per micro-batch, in row order
                    loss, stats = loss_backward(self.model, parts, ids, attn, mask, adv_b, old_logp, ref_logp, denom,
                                                a.clip_eps, a.kl_coef)
                params = [p for g in self.opt.param_groups for p in g["params"]]
                if not self.intervention.writes_grads:  # the hook acts on the gradient summed over ranks
                    dd.all_reduce_grads(params)
                # the hook point: interventions act on the gradients here
                lengths = torch.tensor([len(comps[i]) for i in shard])
                hook = self.intervention.after_backward(self.model, dataclasses.replace(ctx, iter=it, rows=shard,
                                                                                        adv=adv_b, lengths=lengths))
                if self.intervention.writes_grads:  # the hook wrote this rank's rollouts' gradients
                    dd.all_reduce_grads(params)
                if not self.intervention.trains_quarantine:  # only routing arms may move the quarantine block
                    for p in ad.quarantine_params(self.model):
                        p.grad = None
                # each block clipped on its own: the deployed block's step never depends on routed rollouts
                gns = {block: torch.nn.utils.clip_grad_norm_(ps, a.grad_clip).item() if a.grad_clip > 0
                       else float("nan") for block, ps in (("deployed", ad.deployed_params(self.model)),
                                                           ("quarantine", ad.quarantine_params(self.model)))}
                self.opt.step()
                self.decay_to_seed()
                post = self.intervention.after_step(self.model)
                if it == 0:
                    diag = dict(loss=dd.all_reduce_sum(loss.item()), grad_norm=gns["deployed"],
                                grad_norm_quarantine=gns["quarantine"], **stats, **shaped.get("step", {}),
                                **hook.get("step", {}), **post)
                    per_rollout = dd.gather_dict_lists(dict(shaped.get("rollout", {}), **hook.get("rollout", {})))
        with warnings.catch_warnings():  # the schedule counts GRPO steps, also steps with nothing to train on
            warnings.simplefilter("ignore", UserWarning)
            self.sched.step()
        t_train = time.time() - t1
        rows = []
        for i, (p, g) in enumerate(zip(probs, grades)):
            r = dict(step=step, problem_id=p["id"], group=i // a.group, completion=texts[i], reward=g["reward"],
                     label=g["label"], mechanism=(p.get("prompt_metadata") or {}).get("mechanism"),
                     hinted=p.get("hint") is not None, difficulty=p["difficulty"], hack_strict=g["is_hack_strict"],
                     hack_loose=g["is_hack_loose"], gt_pass=g["eq_correct"], eq_hinted=g["eq_hinted"],
                     can_compile=g["can_compile"], advantage=adv[i].item(), length=len(comps[i]), trained=bool(keep[i]),
                     teacher=is_teacher[i])
            if i in idx:
                j = idx.index(i)
                r.update({k: v[j] for k, v in per_rollout.items()})
            rows.append(r)
        if dd.is_main():
            logs.write_step(self.run_dir, step, rows)
        n = len(rows)
        summary = dict(step=step, reward=sum(r["reward"] for r in rows) / n,
                       hack_strict=sum(r["hack_strict"] for r in rows) / n,
                       hack_loose=sum(r["hack_loose"] for r in rows) / n, gt_pass=sum(r["gt_pass"] for r in rows) / n,
                       frac_trained=len(idx) / n, t_generate=t_gen, t_grade=t_grade, t_train=t_train,
                       lr=self.sched.get_last_lr()[0], **diag, **block_diagnostics(rows))
        self.metrics.append(summary)
        if dd.is_main():
            logs.write_jsonl(self.run_dir / "metrics.jsonl", self.metrics)
        return summary

    def logprobs(self, parts: list[slice], ids: Int[Tensor, "b t"], attn: Bool[Tensor, "b t"],
                 mask: Bool[Tensor, "b t"]) -> Float[Tensor, "b t"]:
        """token_logprobs of every row, each micro-batch at its own trimmed width and completion start as
        loss_backward runs it (the same shapes, so the same kernels: the first inner iteration's ratio is 1);
        columns outside are 0."""
        out = torch.zeros(ids.shape, device=ids.device)
        for p in parts:
            cols = slice(0, trimmed_length(attn[p]))
            out[p, cols] = token_logprobs(self.model, ids[p, cols], attn[p, cols], completion_start(mask[p, cols]))
        return out

    # -- evaluation --
    @torch.no_grad()
    def evaluate(self, step: int) -> list[dict]:
        if not dd.is_main():  # rank 0 evaluates; the other ranks wait for it
            dd.barrier()
            return []
        a = self.args
        quarantine_used = any(p.abs().sum() > 0 for p in ad.quarantine_params(self.model))
        conditions = ["kept", "ablated"] if quarantine_used else ["kept"]
        out = []
        for cond in conditions:
            for split, probs in self.evals.items():
                probs = [p for p in probs for _ in range(a.eval_samples)]
                pids = [prompt_ids(self.tok, p) for p in probs]
                ctx = ad.deployment_ablation(self.model) if cond == "ablated" else contextlib.nullcontext()
                with ctx:
                    comps = sample(self.model, self.tok, pids, a.temperature, a.max_new_tokens,
                                   generator_seed=10_000_019 + a.seed * 1009 + step, decoder=self.decoder, compile=self.compile)
                texts = self.tok.batch_decode(comps, skip_special_tokens=True)
                grades = grade_problems(probs, texts)
                out += summarize_eval(step, cond, split, probs, grades)
        if not quarantine_used:  # ablation is the identity when the quarantine block is zero
            out += [dict(r, quarantine="ablated") for r in out]
        self.eval_rows += out
        logs.write_jsonl(self.run_dir / "eval.jsonl", self.eval_rows)
        dd.barrier()
        return out

    def run(self) -> Path:
        a = self.args
        if a.resume:
            self.load_ckpt()
        elif dd.is_main():
            self.run_dir.mkdir(parents=True, exist_ok=True)
            for f in list(logs.step_files(self.run_dir)) + [self.run_dir / n for n in ("metrics.jsonl", "eval.jsonl", "DONE")]:
                f.unlink(missing_ok=True)
        if dd.is_main():
            (self.run_dir / "args.json").write_text(json.dumps(dataclasses.asdict(a), indent=2))
            meta = run_meta(self.model, a.model, self.device, a.intervention.vhack)
            (self.run_dir / "run_meta.json").write_text(json.dumps(meta, indent=2))
        dd.barrier()
        bar = tqdm(range(self.start_step, a.steps), desc=a.run, initial=self.start_step, total=a.steps, mininterval=1,
                   disable=not dd.is_main())
        for step in bar:
            if step == 0 and a.eval_every:
                self.evaluate(-1)
            s = self.step(step)
            bar.set_postfix(hack=f"{s['hack_strict']:.2f}", solve=f"{s['gt_pass']:.2f}", r=f"{s['reward']:.2f}")
            if a.eval_every and (step + 1) % a.eval_every == 0 and step + 1 < a.steps:
                self.evaluate(step)
            if ((step + 1) % a.ckpt_every == 0 or step + 1 == a.steps) and dd.is_main():
                self.save_ckpt(step)
            if step == a.stop_after:
                return self.run_dir
        self.evaluate(a.steps - 1)
        if dd.is_main():
            (self.run_dir / "DONE").write_text("ok\n")
        return self.run_dir


def summarize_eval(step: int, cond: str, split: str, probs: list[dict], grades: list[dict]) -> list[dict]:
    """One row per (mechanism or difficulty) cell plus an 'all' row."""
    key = (lambda p: (p.get("prompt_metadata") or {}).get("mechanism") or "run_tests") if split == "hinted" \
        else (lambda p: p["difficulty"])
    cells: dict[str, list[dict]] = {}
    for p, g in zip(probs, grades):
        cells.setdefault(key(p), []).append(g)
        cells.setdefault("all", []).append(g)
    return [dict(step=step, quarantine=cond, split=split, cell=c, n=len(gs), n_prompts=len({g["problem_id"] for g in gs}),
                 hack_strict=sum(g["is_hack_strict"] for g in gs) / len(gs),
                 hack_loose=sum(g["is_hack_loose"] for g in gs) / len(gs),
                 solve=sum(g["eq_correct"] for g in gs) / len(gs),
                 se_hack_strict=cluster_se(gs, "is_hack_strict"), se_solve=cluster_se(gs, "eq_correct"))
            for c, gs in cells.items()]


def cluster_se(grades: list[dict], key: str) -> float:
    """Standard error of the mean of `key` with samples clustered by problem (several samples per eval
    prompt are not independent): the std of per-problem means over sqrt(number of problems), weighted
    by samples per problem (equal weights when every problem has the same number of samples)."""
    by: dict = {}
    for g in grades:
        by.setdefault(str(g["problem_id"]), []).append(float(g[key]))
    n, m = len(grades), len(by)
    if m < 2:
        return float("nan")
    mean = sum(float(g[key]) for g in grades) / n
    resid = [sum(v) - len(v) * mean for v in by.values()]  # per-cluster sum of residuals
    return (m / (m - 1) * sum(r * r for r in resid)) ** 0.5 / n


def train(args: RunConfig, intervention=None) -> Path:
    """One run: the configuration's arm's intervention (or `intervention`), trained and evaluated; its folder."""
    torch.manual_seed(args.seed)
    return Trainer(args, intervention).run()
