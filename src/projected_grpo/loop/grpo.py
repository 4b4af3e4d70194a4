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

from projected_grpo.env import rollouts, sandbox
from projected_grpo.env.problems import apply_hint, load_jsonl
from projected_grpo.env.rollouts import grade_problems
from projected_grpo.loop import distributed as dd
from projected_grpo.loop import logs
from projected_grpo.loop import sample_cache
from projected_grpo.loop.config import PER_RUN, RunConfig, batchable, check
from projected_grpo.loop.decoder import SUPPORTED as DECODER_SUPPORTED
from projected_grpo.loop.diagnostics import block_diagnostics
from projected_grpo.loop.models import (compile_layers, default_device, layers_compiled, load_policy,
                                        process_cpu_s, run_meta, selected_logprobs, set_cuda_sync, set_threads)
from projected_grpo.loop.sampling import collate, prompt_ids, sample_runs
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


def default_decoder(model, device: str) -> str:
    """--decoder auto: the fast decoder for the architectures it supports (CUDA graphs on CUDA, eager on the CPU,
    where its shared-prompt prefill halved the generation phase of scripts/bench_step.py against generate, with the
    same tokens), transformers' generate otherwise."""
    if model.config.model_type not in DECODER_SUPPORTED:
        return "hf"
    return "fast" if device.startswith("cuda") else "fast-eager"


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


def shares_prompt(ids: Int[Tensor, "b t"], attn: Bool[Tensor, "b t"], start: int,
                  runs: Int[Tensor, " b"] | None = None) -> bool:
    """Whether a pass's rows share their first `start` columns (one GRPO group: the same prompt, no padding in it)
    and one run."""
    if ids.shape[0] < 2 or start < 2 or not bool(attn[:, :start].all()):
        return False
    return bool((ids[:, :start] == ids[:1, :start]).all()) and (runs is None or bool((runs == runs[0]).all()))


def _rows_of(model, runs: Int[Tensor, " b"] | None) -> contextlib.AbstractContextManager:
    return ad.batched_rows(model, runs) if runs is not None else contextlib.nullcontext()


def shared_prompt_logprobs(model, ids: Int[Tensor, "b t"], attn: Bool[Tensor, "b t"], start: int,
                           runs: Int[Tensor, " b"] | None = None) -> Float[Tensor, "b t"]:
    """token_logprobs for rows that share their first `start` columns (shares_prompt): the prompt runs once, as one
    row, and its keys and values, expanded to every row, are the cache the rows' completions attend to in a second
    forward (positions continue after the prompt). Autograd sums the rows' gradients into the prompt's one forward.
    The same log-probs and gradients as token_logprobs up to float rounding (verify_grpo), with the prompt's forward
    done once instead of once a row. Needs no capture: a probe armed for the prompt's one row could not hold each
    row's part."""
    b, t = ids.shape
    assert not ad.capturing(model), "shared_prompt_logprobs under capture: per-rollout gradients need a row per prompt"
    with _rows_of(model, None if runs is None else runs[:1]):
        out = model(input_ids=ids[:1, :start], attention_mask=attn[:1, :start].long(), use_cache=True,
                    logits_to_keep=1)
    cache = out.past_key_values
    for layer in cache.layers:  # transformers' DynamicCache: [1, heads, start, head_dim] -> every row
        layer.keys, layer.values = layer.keys.expand(b, -1, -1, -1), layer.values.expand(b, -1, -1, -1)
    logits = out.logits[:, -1:].expand(b, -1, -1)  # predicts column `start`
    if t - 1 > start:  # columns start+1 .. t-1 from the completions' forward (the last column feeds no prediction)
        with _rows_of(model, runs):
            rest = model(input_ids=ids[:, start:t - 1], attention_mask=attn[:, :t - 1].long(), past_key_values=cache,
                         use_cache=True).logits
        logits = torch.cat([logits, rest], 1)
    return F.pad(selected_logprobs(model)(logits, ids[:, start:]), (start, 0))


def pass_logprobs(model, ids: Int[Tensor, "b t"], attn: Bool[Tensor, "b t"], start: int,
                  runs: Int[Tensor, " b"] | None = None) -> Float[Tensor, "b t"]:
    """token_logprobs of one forward-backward pass (runs: each row's run of a batched model): its prompt once
    (shared_prompt_logprobs) where the rows share it, no capture is armed and the pass is on the CPU through a
    rotary llama-family model with eager layers (the GPU path, bf16 with compiled layers, has not been measured or checked with it; compiled layers would
    recompile for the cache), else one forward of every row."""
    if (ids.device.type == "cpu" and rotary(model) and not layers_compiled(model) and not ad.capturing(model)
            and shares_prompt(ids, attn, start, runs)):
        return shared_prompt_logprobs(model, ids, attn, start, runs)
    with _rows_of(model, runs):
        return token_logprobs(model, ids, attn, start)


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
                            axis=run_args.get("axis", "none"),
                            lora_alpha=None if run_args.get("lora_alpha", logs.LEGACY["lora_alpha"]) == -1
                            else run_args["lora_alpha"])


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
    totals, stats = loss_backward_runs(model, parts, ids, attn, mask, adv, old_logp, ref_logp, denom, clip_eps,
                                       kl_coef, [slice(0, ids.shape[0])])
    return totals[0], stats[0]


def loss_backward_runs(model, parts: list[slice], ids: Int[Tensor, "b t"], attn: Bool[Tensor, "b t"],
                       mask: Bool[Tensor, "b t"], adv: Float[Tensor, " b"], old_logp: Tensor | None,
                       ref_logp: Tensor | None, denom: float, clip_eps: float, kl_coef: float, segments: list[slice],
                       run_of_row: Int[Tensor, " b"] | None = None) -> tuple[list[Tensor], list[dict]]:
    """loss_backward over the rows of several runs (segments: each run's rows, in order; run_of_row: each row's run
    of a batched model, None for one run): one forward and one backward per micro-batch, whose loss is the sum of
    every run's terms (a run's adapter gets only its own rows' gradient); per run, its loss and its stats weighted
    by its completion tokens."""
    totals = [torch.zeros((), device=ids.device) for _ in segments]
    acc: list[dict] = [{} for _ in segments]
    n_tok = [0.0 for _ in segments]
    for p in parts:
        cols = pass_columns(model, attn[p])  # the micro-batch's own rows' columns, not the shard's
        logp = pass_logprobs(model, ids[p, cols], attn[p, cols], completion_start(mask[p, cols]),
                             None if run_of_row is None else run_of_row[p])
        olp = old_logp[p, cols] if old_logp is not None else logp.detach()
        loss = None
        for k, seg in enumerate(segments):
            lo, hi = max(seg.start, p.start), min(seg.stop, p.stop)
            if lo >= hi:
                continue
            q, rows = slice(lo - p.start, hi - p.start), slice(lo, hi)
            loss_k, st = grpo_loss(logp[q], olp[q], None if ref_logp is None else ref_logp[rows, cols], adv[rows],
                                   mask[rows, cols], denom, clip_eps, kl_coef)
            loss = loss_k if loss is None else loss + loss_k
            totals[k] = totals[k] + loss_k.detach()
            w = float(mask[rows].sum())
            for name, v in st.items():
                acc[k][name] = acc[k].get(name, 0.0) + v * w
            n_tok[k] += w
        loss.backward()
    return totals, [{name: v / max(n, 1.0) for name, v in a.items()} for a, n in zip(acc, n_tok)]


def pass_columns(model, attn: Bool[Tensor, "b t"]) -> slice:
    """A pass's columns: live_columns for a model with rotary positions (the organism's and Qwen3's: a shift of every
    row's positions changes no attention score), else from column 0 to the last live one (absolute positions would
    move with the dropped columns)."""
    cols = live_columns(attn)
    return cols if rotary(model) else slice(0, cols.stop)


def rotary(model) -> bool:
    """Whether the model is a decoder of the llama family with rotary positions (model.model.rotary_emb): the
    organism's and Qwen3's."""
    return hasattr(getattr(model, "model", None), "rotary_emb")


def live_columns(attn: Bool[Tensor, "b t"]) -> slice:
    """The columns from the first one any row attends to through the last one: the left padding before it and the
    right padding after it change no loss term (causal attention; rotary positions enter attention only as
    differences, so dropping leading columns shifts every row's positions alike), so a micro-batch's
    forward-backward runs on these columns only. The whole width when no row attends."""
    used = attn.any(dim=0).nonzero()
    return slice(int(used[0]), int(used[-1]) + 1) if len(used) else slice(0, attn.shape[1])


def micro_batches(n: int, size: int) -> list[slice]:
    """Row slices of at most `size` rows covering [0, n) in order (one slice when size is 0)."""
    assert size >= 0, f"micro_batch {size} < 0"
    size = size or max(n, 1)
    return [slice(i, min(n, i + size)) for i in range(0, n, size)]


def pass_rows(args: RunConfig, device: str) -> int:
    """Rollouts per forward-backward pass (micro_batches' size) of RunConfig.micro_batch on `device`: auto (-1) is
    one prompt group on the CPU and every rollout in one pass elsewhere."""
    if args.micro_batch >= 0:
        return args.micro_batch
    return args.group if str(device).startswith("cpu") else 0


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


@dataclasses.dataclass
class Run:
    """One run's own part of a trainer: its configuration, folder, intervention, optimizer, schedule and logs. The
    runs of one trainer share the frozen model, the tokenizer and the data; each has its own adapter copy (run
    `index` of the model's adapters, adapters.add_runs)."""

    index: int
    args: RunConfig
    run_dir: Path
    intervention: object
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    start_step: int = 0
    metrics: list[dict] = dataclasses.field(default_factory=list)
    eval_rows: list[dict] = dataclasses.field(default_factory=list)


def _one_run(name: str) -> property:
    """A one-run trainer's `name` is its run's (gates and probes read and replace them)."""

    def get(self):
        assert len(self.runs) == 1, f"Trainer.{name}: {len(self.runs)} runs; use trainer.runs[i].{name}"
        return getattr(self.runs[0], name)

    def put(self, value):
        assert len(self.runs) == 1, f"Trainer.{name}: {len(self.runs)} runs; use trainer.runs[i].{name}"
        setattr(self.runs[0], name, value)

    return property(get, put)


class Trainer:
    """Holds the policy, optimizer and data of one run, or of several runs of one arm that differ only in PER_RUN
    fields (seed, direction seed, run folder, matched run: config.batchable); `run()` trains and evaluates them.

    Several runs share one process and one frozen model; each run has its own adapter (adapters.add_runs), optimizer,
    schedule, intervention and logs. One step samples every run's rollouts in one generate call (each run from its
    own generator), grades them in one call, and runs one forward-backward over all runs' trained rollouts; each
    run's hooks, clipping and optimizer step then act on its own adapter alone (adapters.active_run), as they would in
    a process of its own. One run per process is the reference (scripts/verify_batched_runs.py compares them).

    The intervention is the one the configuration's arm builds (arms.build_intervention); gates and probes may hand
    another object instead for a one-run trainer (args.json then still records the configuration's arm)."""

    intervention, opt, sched, metrics, eval_rows, run_dir, start_step = (
        _one_run(n) for n in ("intervention", "opt", "sched", "metrics", "eval_rows", "run_dir", "start_step"))

    def __init__(self, args: RunConfig | list[RunConfig], intervention=None):
        cfgs = list(args) if isinstance(args, (list, tuple)) else [args]
        for c in cfgs:
            check(c)
        assert cfgs and batchable(cfgs), "runs of one trainer must agree in every field but " + ", ".join(PER_RUN)
        assert len({c.run for c in cfgs}) == len(cfgs), "runs of one trainer need distinct run folders"
        assert intervention is None or len(cfgs) == 1, "an intervention object is handed to a one-run trainer only"
        set_threads()
        dd.init()
        assert len(cfgs) == 1 or dd.world() == 1, "several runs per process run in one process (no DDP)"
        self.args = args = cfgs[0]  # the fields every run shares (and the first run's own)
        self.device = dd.device(args.device or default_device())
        set_cuda_sync(self.device)
        self.model, self.tok = load_policy(args.model, self.device)
        ad.wrap_model(self.model, adapter_config(dataclasses.asdict(args)))
        self.decoder = args.decoder if args.decoder != "auto" else default_decoder(self.model, self.device)
        if len(cfgs) > 1:
            ad.add_runs(self.model, len(cfgs))
        assert args.compile in ("auto", "on", "off"), f"--compile {args.compile!r}: auto, on or off"
        assert not (args.compile == "on" and len(cfgs) > 1), "--compile on with several runs per process is not built"
        self.compile = len(cfgs) == 1 and (args.compile == "on" or (
            args.compile == "auto" and self.device.startswith("cuda") and self.decoder != "hf"))
        # generate's KV cache indexes the layers: compiled layers would recompile once per layer index
        assert not (self.compile and self.decoder == "hf"), "--compile on needs the fast decoder (--decoder fast)"
        if self.compile:
            compile_layers(self.model)
        self.train_set, ev = load_tasks(args)
        self.evals = eval_sets(args, ev)
        self.teacher = load_teacher_pool(args.teacher_pool) if args.teacher_pool and args.n_teacher else None
        self.runs = [self._new_run(i, c, intervention) for i, c in enumerate(cfgs)]

    def _new_run(self, i: int, c: RunConfig, intervention) -> Run:
        with ad.active_run(self.model, i):
            opt = torch.optim.AdamW(param_groups(self.model, c), lr=c.lr, betas=(0.9, 0.99), eps=c.adam_eps)
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, c.warmup)))
            iv = intervention or build_intervention(c)
            iv.setup(self.model, self.tok, self.device)
        return Run(i, c, Path(c.out_dir) / c.run, iv, opt, sched)

    @torch.no_grad()
    def decay_to_seed(self, run: Run | None = None) -> None:
        """AdamW's decoupled decay took p to p (1 - lr wd) before its step; for a seeded parameter add lr wd seed, so
        that the decay pulls it toward its seed (the block's update toward 0) instead: p - lr wd (p - seed)."""
        run = run or self.runs[0]
        with ad.active_run(self.model, run.index):
            seeds = {id(p): seed for p, seed in ad.decay_anchors(self.model)}  # read now: buffers a .to() replaces
        for g in run.opt.param_groups:
            for p in g["params"]:
                seed = seeds.get(id(p))
                if seed is not None and p.grad is not None and g["weight_decay"] != 0:
                    p.add_(seed, alpha=g["lr"] * g["weight_decay"])

    # -- checkpoints --
    def save_ckpt(self, step: int, run: Run | None = None) -> None:
        run = run or self.runs[0]
        d = run.run_dir / "ckpt"
        d.mkdir(parents=True, exist_ok=True)
        with ad.active_run(self.model, run.index):
            adapter = ad.adapter_state_dict(self.model)
        state = dict(step=step, adapter=adapter, opt=run.opt.state_dict(), sched=run.sched.state_dict(),
                     intervention=run.intervention.state_dict(), torch_rng=torch.get_rng_state())
        tmp = d / "last.pt.tmp"
        torch.save(state, tmp)
        tmp.replace(d / "last.pt")

    def load_ckpt(self, run: Run | None = None) -> None:
        run = run or self.runs[0]
        path = run.run_dir / "ckpt" / "last.pt"
        assert path.exists(), f"--resume: no checkpoint at {path}"
        state = torch.load(path, map_location=self.device, weights_only=False)
        with ad.active_run(self.model, run.index):
            ad.load_adapter_state_dict(self.model, state["adapter"])
            built = {g["name"]: g for g in param_groups(self.model, run.args)}
        run.opt.load_state_dict(state["opt"])
        for g in run.opt.param_groups:  # the checkpoint's hyper-parameters would silently replace these args'
            want = dict(weight_decay=built[g["name"]]["weight_decay"], eps=run.args.adam_eps,
                        initial_lr=built[g["name"]].get("lr", run.args.lr))
            got = {k: g[k] for k in want}
            assert got == want, f"--resume: {path} was trained with {got} in the {g['name']} block, args ask {want}"
        run.sched.load_state_dict(state["sched"])
        run.intervention.load_state_dict(state["intervention"])
        torch.set_rng_state(state["torch_rng"].cpu())  # map_location moved it to the run's device
        run.start_step = state["step"] + 1
        run.metrics = [m for m in logs.read_jsonl(run.run_dir / "metrics.jsonl") if m["step"] <= state["step"]]
        run.eval_rows = [e for e in logs.read_jsonl(run.run_dir / "eval.jsonl") if e["step"] <= state["step"]]

    # -- one step --
    def sample_runs(self, runs: list[Run], prompts: list[list[list[int]]], seeds: list[int]) -> list[list[list[int]]]:
        """Each run's completions of its prompts, drawn from its generator seed (sampling.sample_runs)."""
        a = self.args
        return sample_runs(self.model, self.tok, prompts, [r.index for r in runs], a.temperature, a.max_new_tokens,
                           seeds, decoder=self.decoder, compile=self.compile)

    def rollouts(self, step: int) -> list[tuple[list[dict], list[list[int]], list[list[int]], list[bool]]]:
        """Per run: (problems, prompt ids, completion ids, teacher flags) of its step's groups."""
        a = self.args
        mine = dd.group_rows(a.prompts_per_step, a.group)  # this rank's prompt groups (all of them in one process)
        drawn = []
        for run in self.runs:
            rng = random.Random(f"{run.args.seed}:{step}")
            group_probs = [p for p in rng.sample(self.train_set, a.prompts_per_step) for _ in range(a.group)]
            drawn.append((rng, group_probs, [prompt_ids(self.tok, p) for p in group_probs]))
        seeds = [run.args.seed * 100_003 + step + 1_000_003 * dd.rank() for run in self.runs]
        sampled = self.sample_runs(self.runs, [pids[mine] for _, _, pids in drawn], seeds)
        out = []
        for (rng, group_probs, pids), comps in zip(drawn, sampled):
            comps = dd.gather_lists(comps)
            is_teacher = [False] * len(comps)
            if self.teacher:
                for i, p in enumerate(group_probs):
                    pool = self.teacher.get(str(p["id"]))
                    if pool and i % a.group >= a.group - a.n_teacher:
                        text = rng.choice(pool)
                        comps[i] = self.tok.encode(text, add_special_tokens=False)[: a.max_new_tokens - 1] + [self.tok.eos_token_id]
                        is_teacher[i] = True
            out.append((group_probs, pids, comps, is_teacher))
        return out

    def step(self, step: int) -> dict | list[dict]:
        """One GRPO step of every run; the run's summary row (a list of them with several runs)."""
        summaries = self.step_runs(step)
        return summaries[0] if len(self.runs) == 1 else summaries

    def step_runs(self, step: int) -> list[dict]:
        a = self.args
        t0, c0 = time.time(), time.process_time()
        rolls = self.rollouts(step)
        t_gen, c_gen = time.time() - t0, time.process_time() - c0
        texts = [self.tok.batch_decode(comps, skip_special_tokens=True) for _, _, comps, _ in rolls]
        mine = dd.group_rows(a.prompts_per_step, a.group)
        graded = grade_problems([p for probs, _, _, _ in rolls for p in probs[mine]], [t for ts in texts for t in ts[mine]])
        n_mine = len(graded) // len(rolls)
        grades = [dd.gather_lists(graded[k * n_mine:(k + 1) * n_mine]) for k in range(len(rolls))]
        t_grade, c_grade = time.time() - t0 - t_gen, time.process_time() - c0 - c_gen
        plans = [self.plan(run, step, g) for run, g in zip(self.runs, grades)]
        t1, c1 = time.time(), time.process_time()
        trained = self.train_runs(step, rolls, plans)
        with warnings.catch_warnings():  # the schedule counts GRPO steps, also steps with nothing to train on
            warnings.simplefilter("ignore", UserWarning)
            for run in self.runs:
                run.sched.step()
        t_train, c_train = time.time() - t1, time.process_time() - c1
        # wall seconds of the process's phases, and the CPU seconds of its threads in them (t_cpu_*; the sandbox
        # servers' CPU is theirs, sandbox.SERVER_CPU); with several runs a process, every run's row holds the process's
        times = dict(t_generate=t_gen, t_grade=t_grade, t_train=t_train, t_cpu_generate=c_gen, t_cpu_grade=c_grade,
                     t_cpu_train=c_train)
        return [self.log_step(run, step, roll, txt, g, plan, diag, per_rollout, times)
                for run, roll, txt, g, plan, (diag, per_rollout) in zip(self.runs, rolls, texts, grades, plans, trained)]

    def plan(self, run: Run, step: int, grades: list[dict]) -> dict:
        """A run's advantages and trained rollouts from its grades (its intervention's on_rewards first)."""
        a = run.args
        # the sealed labels reach only the oracle reference arms (reads_labels)
        labels = GroundTruthLabels(grades) if run.intervention.reads_labels else None
        ctx = StepContext(step=step, device=self.device, labels=labels)
        rewards = torch.tensor([g["reward"] for g in grades], dtype=torch.float32).view(a.prompts_per_step, a.group)
        rewards, include = run.intervention.on_rewards(ctx, rewards)  # identity except monitor baselines
        adv = group_advantages(rewards, include).view(-1)
        # zero-variance groups contribute nothing; excluded (screened) rollouts are not trained on
        keep = (group_std(rewards, include) > 0).repeat_interleave(a.group) & include.view(-1)
        idx = keep.nonzero().flatten().tolist()
        shard = idx[dd.split(len(idx))]  # this rank's share of the trained rollouts (all of them in one process)
        return dict(ctx=ctx, adv=adv, keep=keep, idx=idx, shard=shard)

    def train_runs(self, step: int, rolls: list, plans: list[dict]) -> list[tuple[dict, dict]]:
        """The loss, backward, hooks, clipping and optimizer step of every run with rollouts to train on (a run with
        fewer kept rollouts than ranks trains on nothing this step); per run (its step diagnostics, its per-rollout
        columns)."""
        a = self.args
        out: list[tuple[dict, dict]] = [({}, {}) for _ in self.runs]
        live = [k for k, plan in enumerate(plans) if len(plan["idx"]) >= dd.world()]
        if not live:
            return out
        rows = [(k, i) for k in live for i in plans[k]["shard"]]
        b = collate([rolls[k][1][i] for k, i in rows], [rolls[k][2][i] for k, i in rows], self.tok.pad_token_id)
        ids, attn, mask = b.input_ids.to(self.device), b.attention_mask.to(self.device), b.completion_mask.to(self.device)
        mask[:, 0] = False
        bounds = torch.tensor([0] + [len(plans[k]["shard"]) for k in live]).cumsum(0).tolist()
        segments = [slice(lo, hi) for lo, hi in zip(bounds, bounds[1:])]
        batched = len(self.runs) > 1
        run_of_row = torch.tensor([self.runs[k].index for k, _ in rows], dtype=torch.long) if batched else None
        shaped, adv_rows = {}, []
        for k, seg in zip(live, segments):
            run, plan = self.runs[k], plans[k]
            with ad.active_run(self.model, run.index):  # identity except the advantage-level baseline (rebound-adv)
                adv_b, shaped[k] = run.intervention.on_advantages(self.model, ids[seg], attn[seg], mask[seg],
                                                                  plan["adv"][plan["shard"]].to(self.device))
            adv_rows.append(adv_b)
        adv_all = torch.cat(adv_rows)
        denom = float(a.prompts_per_step * a.group * a.max_new_tokens)
        parts = micro_batches(len(rows), pass_rows(a, self.device))
        everyone = (lambda: ad.batched_rows(self.model, run_of_row)) if batched else contextlib.nullcontext
        # inside the intervention's capture context (nothing armed without grad), so that each pass takes the path the
        # loss pass takes (pass_logprobs: no shared prompt under capture) and the first ratio is exactly 1
        with torch.no_grad(), self.runs[live[0]].intervention.capture(self.model):
            old_logp = self.logprobs(parts, ids, attn, mask, run_of_row) if a.inner_iters > 1 else None
            ref_logp = None
            if a.kl_coef > 0:
                with ad.reference_policy(self.model):
                    ref_logp = self.logprobs(parts, ids, attn, mask, run_of_row)
        for it in range(a.inner_iters):
            for k in live:
                self.runs[k].opt.zero_grad(set_to_none=True)
            with everyone(), self.runs[live[0]].intervention.capture(self.model):  # records per micro-batch, in row order
                losses, stats = loss_backward_runs(self.model, parts, ids, attn, mask, adv_all, old_logp, ref_logp,
                                                   denom, a.clip_eps, a.kl_coef, segments, run_of_row)
            for j, (k, seg) in enumerate(zip(live, segments)):
                run, plan = self.runs[k], plans[k]
                with ad.active_run(self.model, run.index):
                    diag = self.update(run, it, plan, rolls[k][2], adv_all[seg], losses[j], stats[j], shaped[k])
                if it == 0:
                    out[k] = diag
        return out

    def update(self, run: Run, it: int, plan: dict, comps: list[list[int]], adv_b: Tensor, loss: Tensor, stats: dict,
               shaped: dict) -> tuple[dict, dict]:
        """One run's hook point, clipping and optimizer step after the backward (its adapter active)."""
        a, iv = run.args, run.intervention
        params = [p for g in run.opt.param_groups for p in g["params"]]
        assert iv.hook_grad in ("summed", "filled", "written"), iv.hook_grad
        if iv.hook_grad == "filled":  # folded layers formed no summed gradient under capture: the per-rollout sum
            ad.fill_summed_grads(self.model)
        if iv.hook_grad != "written":  # the hook acts on the gradient summed over ranks
            dd.all_reduce_grads(params)
        # the hook point: interventions act on the gradients here
        lengths = torch.tensor([len(comps[i]) for i in plan["shard"]])
        hook = iv.after_backward(self.model, dataclasses.replace(plan["ctx"], iter=it, rows=plan["shard"], adv=adv_b,
                                                                 lengths=lengths))
        if iv.hook_grad == "written":  # the hook wrote this rank's rollouts' gradients
            dd.all_reduce_grads(params)
        if not iv.trains_quarantine:  # only routing arms may move the quarantine block
            for p in ad.quarantine_params(self.model):
                p.grad = None
        # each block clipped on its own: the deployed block's step never depends on routed rollouts
        gns = {block: torch.nn.utils.clip_grad_norm_(ps, a.grad_clip).item() if a.grad_clip > 0
               else float("nan") for block, ps in (("deployed", ad.deployed_params(self.model)),
                                                   ("quarantine", ad.quarantine_params(self.model)))}
        run.opt.step()
        self.decay_to_seed(run)
        post = iv.after_step(self.model)
        diag = dict(loss=dd.all_reduce_sum(loss.item()), grad_norm=gns["deployed"],
                    grad_norm_quarantine=gns["quarantine"], **stats, **shaped.get("step", {}), **hook.get("step", {}),
                    **post)
        return diag, dd.gather_dict_lists(dict(shaped.get("rollout", {}), **hook.get("rollout", {})))

    def log_step(self, run: Run, step: int, roll: tuple, texts: list[str], grades: list[dict], plan: dict, diag: dict,
                 per_rollout: dict, times: dict) -> dict:
        """A run's step file (one row per rollout) and its metrics row; returns the metrics row."""
        a = run.args
        probs, _, comps, is_teacher = roll
        adv, keep, idx = plan["adv"], plan["keep"], plan["idx"]
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
            logs.write_step(run.run_dir, step, rows)
        n = len(rows)
        batched = dict(runs_per_process=len(self.runs)) if len(self.runs) > 1 else {}
        summary = dict(step=step, reward=sum(r["reward"] for r in rows) / n,
                       hack_strict=sum(r["hack_strict"] for r in rows) / n,
                       hack_loose=sum(r["hack_loose"] for r in rows) / n, gt_pass=sum(r["gt_pass"] for r in rows) / n,
                       frac_trained=len(idx) / n, **times, **batched,
                       lr=run.sched.get_last_lr()[0], **diag, **block_diagnostics(rows))
        run.metrics.append(summary)
        if dd.is_main():
            logs.write_jsonl(run.run_dir / "metrics.jsonl", run.metrics)
        return summary

    def logprobs(self, parts: list[slice], ids: Int[Tensor, "b t"], attn: Bool[Tensor, "b t"],
                 mask: Bool[Tensor, "b t"], run_of_row: Int[Tensor, " b"] | None = None) -> Float[Tensor, "b t"]:
        """token_logprobs of every row, each micro-batch at its own trimmed width and completion start as
        loss_backward runs it (the same shapes, so the same kernels: the first inner iteration's ratio is 1);
        columns outside are 0. run_of_row: each row's run of a batched model."""
        out = torch.zeros(ids.shape, device=ids.device)
        for p in parts:
            cols = pass_columns(self.model, attn[p])
            out[p, cols] = pass_logprobs(self.model, ids[p, cols], attn[p, cols], completion_start(mask[p, cols]),
                                         None if run_of_row is None else run_of_row[p])
        return out

    # -- evaluation --
    @torch.no_grad()
    def evaluate(self, step: int) -> list[dict]:
        """Every run's eval rows at `step`: the eval splits sampled with the quarantine block kept and, for a run
        whose quarantine block is not zero, ablated (deployment ablation), each run from its own generator."""
        if not dd.is_main():  # rank 0 evaluates; the other ranks wait for it
            dd.barrier()
            return []
        a = self.args
        used = []
        for run in self.runs:
            with ad.active_run(self.model, run.index):
                used.append(any(p.abs().sum() > 0 for p in ad.quarantine_params(self.model)))
        out: list[list[dict]] = [[] for _ in self.runs]
        for cond in ("kept", "ablated"):
            runs = [run for run, u in zip(self.runs, used) if cond == "kept" or u]
            if not runs:
                continue
            for split, probs in self.evals.items():
                probs = [p for p in probs for _ in range(a.eval_samples)]
                pids = [prompt_ids(self.tok, p) for p in probs]
                ctx = ad.deployment_ablation(self.model) if cond == "ablated" else contextlib.nullcontext()
                with ctx:
                    comps = self.sample_runs(runs, [pids] * len(runs),
                                             [10_000_019 + run.args.seed * 1009 + step for run in runs])
                texts = [self.tok.batch_decode(c, skip_special_tokens=True) for c in comps]
                grades = grade_problems(probs * len(runs), [t for ts in texts for t in ts])
                for k, run in enumerate(runs):
                    out[run.index] += summarize_eval(step, cond, split, probs, grades[k * len(probs):(k + 1) * len(probs)])
        for run, u in zip(self.runs, used):
            if not u:  # ablation is the identity when the quarantine block is zero
                out[run.index] += [dict(r, quarantine="ablated") for r in out[run.index]]
            run.eval_rows += out[run.index]
            logs.write_jsonl(run.run_dir / "eval.jsonl", run.eval_rows)
        st = rollouts.STATS  # where this process's grades came from so far (a resumed one: its kept grades read)
        print(f"evaluation after step {step + 1} written; grades so far: {st['graded']} graded, {st['kept']} kept "
              f"grades read ({st['kept_late']} of them deadline-hit), {st['disk']} from the shared cache, "
              f"{st['memory']} repeats; samplings read from the driver call's sample cache: {sample_cache.STATS['read']}",
              flush=True)
        dd.barrier()
        return out[0] if len(self.runs) == 1 else [r for rows in out for r in rows]

    def eval_due(self, step: int) -> bool:
        """An evaluation follows this training step (eval_every; the last step's is run() 's final one)."""
        a = self.args
        return bool(a.eval_every) and (step + 1) % a.eval_every == 0 and step + 1 < a.steps

    def eval_pending(self, step: int) -> bool:
        """A resumed run's evaluation after `step` (its checkpoint's) is due and some run lacks its rows; the rows
        any run has at that step are dropped, and evaluate() writes them all again."""
        if not self.eval_due(step) or all(any(r["step"] == step for r in run.eval_rows) for run in self.runs):
            return False
        self.drop_eval_rows(step)
        return True

    def drop_eval_rows(self, step: int) -> None:
        """Forget every run's eval rows at `step` (an evaluation about to run again writes them once)."""
        for run in self.runs:
            run.eval_rows = [r for r in run.eval_rows if r["step"] != step]

    def start(self, run: Run) -> None:
        """A run's folder before its first step: resumed from its checkpoint, or emptied of an earlier run's logs;
        args.json and run_meta.json written."""
        a = run.args
        trained_with = logs.read_run_meta(run.run_dir, ("vhack_sha256",))["vhack_sha256"]
        meta_path = run.run_dir / "run_meta.json"
        earlier = json.loads(meta_path.read_text()) if a.resume and meta_path.exists() else None
        if a.resume:
            self.load_ckpt(run)
        elif dd.is_main():
            run.run_dir.mkdir(parents=True, exist_ok=True)
            # an earlier attempt's kept grades (env/rollouts.py) belong to runs that were not resumed
            for f in list(logs.step_files(run.run_dir)) + [run.run_dir / n for n in ("metrics.jsonl", "eval.jsonl", "DONE",
                                                                                     rollouts.KEPT_FILE)]:
                f.unlink(missing_ok=True)
            # an earlier run's checkpoint would be resumed by a later --resume beside this run's args.json
            (run.run_dir / "ckpt" / "last.pt").unlink(missing_ok=True)
        if dd.is_main():
            # atomically: a matched control started beside this run (--match-follow) reads it as soon as it exists
            logs.atomic_write_bytes(run.run_dir / "args.json", json.dumps(dataclasses.asdict(a), indent=2).encode())
            meta = run_meta(self.model, a.model, self.device, a.intervention.vhack)
            # a resumed run reads direction content equal to what its first steps read (models.run_meta hashes the
            # file's content: a file extracted again between the segments must hold the same tensors and metadata)
            assert not a.resume or meta["vhack_sha256"] == trained_with, (
                f"--resume: {run.run_dir} was trained with direction file sha256 {trained_with[:16]}, "
                f"{a.intervention.vhack or 'no file'} is {meta['vhack_sha256'][:16]}")
            meta["pass_rows"] = pass_rows(a, self.device)  # micro_batch as resolved here (auto: by device)
            if len(self.runs) > 1:
                meta["runs_per_process"] = [r.args.run for r in self.runs]
            if earlier is not None:  # each segment's record stays: where and at which commit the steps before ran
                meta["resumed_from"] = earlier
            (run.run_dir / "run_meta.json").write_text(json.dumps(meta, indent=2))

    def run(self) -> Path | list[Path]:
        """Train and evaluate every run; its folder (the list of folders with several runs)."""
        a = self.args
        for run in self.runs:
            self.start(run)
        first = {run.start_step for run in self.runs}
        assert len(first) == 1, f"runs of one trainer resume from one step, got {sorted(first)}"
        start = first.pop()
        dd.barrier()
        if start > 0 and self.eval_pending(start - 1):  # stopped in the evaluation after its checkpoint's step
            self.evaluate(start - 1)
        name = a.run if len(self.runs) == 1 else f"{a.intervention.arm} x{len(self.runs)}"
        bar = tqdm(range(start, a.steps), desc=name, initial=start, total=a.steps, mininterval=1,
                   disable=not dd.is_main())
        folders = [run.run_dir for run in self.runs]
        for step in bar:
            if step == 0 and a.eval_every:
                self.evaluate(-1)
            ss = self.step_runs(step)
            mean = lambda k: sum(s[k] for s in ss) / len(ss)  # noqa: E731
            bar.set_postfix(hack=f"{mean('hack_strict'):.2f}", solve=f"{mean('gt_pass'):.2f}", r=f"{mean('reward'):.2f}")
            # the checkpoint before the evaluation: a run stopped in a long evaluation resumes at that evaluation
            # (eval_pending), not at the step before it (a step trained again need not be bitwise the same on a GPU)
            if (step + 1) % a.ckpt_every == 0 or step + 1 == a.steps:
                if dd.is_main():
                    for run in self.runs:
                        self.save_ckpt(step, run)
                dd.barrier()  # every rank may read it next (a run resumed after stop_after), so none goes on before it exists
            if self.eval_due(step):
                self.evaluate(step)
            if step == a.stop_after:
                return folders[0] if len(folders) == 1 else folders
        self.drop_eval_rows(a.steps - 1)  # a run stopped between its final rows and DONE evaluates again, rows once
        self.evaluate(a.steps - 1)
        if dd.is_main():
            for run in self.runs:
                (run.run_dir / "DONE").write_text("ok\n")
            st, cpu = rollouts.STATS, sandbox.SERVER_CPU
            print(f"grades: {st['graded']} graded in the sandbox, {st['kept']} read from the run's kept grades, "
                  f"{st['disk']} from the shared cache file, {st['memory']} repeats from memory; "
                  f"{cpu['jobs']} sandbox server jobs, {cpu['cpu_s']:.1f} CPU-s", flush=True)
            print(f"process cpu: {process_cpu_s():.1f} CPU-s (this process's threads, user and system)", flush=True)
        return folders[0] if len(folders) == 1 else folders


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
