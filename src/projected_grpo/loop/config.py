"""The run as data: one RunConfig holds every flag of a GRPO run, the intervention's included, and checks itself.

    RunConfig            the trainer's fields; `intervention` (InterventionConfig) the arm and its flags
    check(cfg)           every value in range, or ConfigError naming the flag (scripts/train.py: one line, exit 2)
    with_fields(cfg, ..) a copy with fields replaced by name, either level, type-checked (arms' overrides, the CLI)
    flat(cfg)            one dict of every field, both levels (what logs.config compares)
    saved(cfg)           args.json as json reads it back

A run folder's args.json is dataclasses.asdict(cfg): the trainer's fields, and the intervention's under
`intervention` (logs.config flattens it again). Runs of one arm that differ only in PER_RUN fields can later share one
process (issue 28: one trainer, several runs' adapters); `batchable` says whether a list of configurations does.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from projected_grpo.env.problems import HINTS
from projected_grpo.loop.models import resolve
from projected_grpo.method.pairs import HACK_PAIRS
from projected_grpo.organism.pinned import OrganismError
from projected_grpo.organism.tasks import LOOPHOLES


class ConfigError(ValueError):
    """A configuration value out of range; the message starts with the flag, e.g. `--steps -3: ...`."""


@dataclass
class InterventionConfig:
    """The arm of a run and the flags of its intervention (arms.build_intervention reads them)."""

    arm: str = "vanilla"
    """registry arm (method/arms.py): its intervention and the fields it sets"""
    vhack: str = ""
    """v_hack safetensors, or for the tdga arms the trusted-span file ('' = the registry's file for --model, where
    the arm needs one: arms.vhack_path)"""
    two_sided: bool = False
    """erase: remove both signs of the v_hack component"""
    erase_target: str = "grad"
    """erase: grad (the deployed block's gradient) or update (its realised AdamW step)"""
    t_absorb: float = 1.0
    """route: scores >= this enter the absorb region"""
    t_route: float = 1.0
    """route: scores >= this are routed to the quarantine"""
    route_frac: float = 0.0
    """route: route the top fraction of each step's scores (0 = by the thresholds)"""
    match_run: str = ""
    """route-random, route-subset(-signed, -matched): run folder whose per-step routed fraction (and positive-advantage
    share among the routed; -matched: routed counts per advantage-sign and length-tercile cell, from its step logs)
    to match ('' = <out-dir>/<matched arm>_s<seed>)"""
    match_follow: bool = False
    """matched controls: read the matched run's per-step values as it logs them, so the control can run beside it
    (each step waits for the matched run's row of that step; arms.FollowedSchedule); off: the matched run must have
    logged its steps before this run starts"""
    monitor_accuracy: float = 1.0
    """gt-*: accuracy of the ground-truth monitor"""
    pairs: str = HACK_PAIRS
    """scorda: pairs whose activation contrast seeds the axis (scorda-placebo: the placebo pairs)"""
    rebound_beta: float = 1.0
    """rebound-adv: advantage lowered by beta * activation score"""
    rebound_alpha: float = 2.0
    """rebound (published form): a rollout whose activation score is z above its group's mean (z > 0) has its
    advantage lowered by alpha * z * |A| (interventions.modified_advantages)"""
    trusted_rank: int = 5
    """tdga: rank of the trusted span each module's deployed gradient is projected onto (the first rows of the
    trusted-span file; tdga-r1 and tdga-r5 set 1 and 5)"""
    direction_seed: int = -1
    """erase-random, route-random(-negated): the seed of the random direction (interventions.random_direction), a
    factor of its own beside the training seed (-1 = the training seed's value, filled in by arms.resolve)"""
    negate: bool = False
    """route, route-random: route by the negated direction's score (route-negated, route-random-negated)"""


@dataclass
class RunConfig:
    """One GRPO run, every flag of scripts/train.py (the intervention's under `intervention`); args.json is
    dataclasses.asdict of it. A registry arm is a set of typed overrides of these fields (arms.Arm.overrides)."""

    run: str = "vanilla"
    """run name; logs go to out_dir/run"""
    out_dir: str = "out/runs"
    """parent folder of run folders"""
    model: str = "organism:cpu"
    """policy: organism:<size>, a hub id, or a local folder"""
    task: str = "organism"
    """organism, or a jsonl file of problems in the environment schema (e.g. LeetCode)"""
    loophole: bool = True
    """training prompts carry their loophole hint (False = the RL baseline without a loophole)"""
    hint: str = "simple_overwrite_tests"
    """hint applied to jsonl problems (organism problems carry their own mechanism)"""
    n_train: int = 2000
    """size of the training problem pool (organism)"""
    n_eval: int = 48
    """eval problems per loophole mechanism (hinted) and per difficulty (no hint)"""
    eval_samples: int = 4
    """samples per eval problem; the default 48 x 4 = 192 samples per cell bounds the standard error of
    a per-cell rate by 0.036 for independent samples and of the overall hinted rate by 0.018"""
    mechanisms: str = "run_tests,sentinel,stdout_marker,exit_code"
    """loophole mechanisms present in training problems (organism)"""
    difficulties: str = "hard"
    """difficulties of training problems and of hinted eval problems (organism); like the environment's
    medium/hard filter, training problems are ones the base policy mostly fails"""
    data_seed: int = 0
    """seed of the problem pools (kept fixed across arms and seeds)"""
    eval_seed: int = -1
    """seed of the organism's eval split (grpo.eval_split_seed; -1 = data_seed + 7, the split every earlier run was
    evaluated on): a value no choice has been made on gives an eval set no choice has read"""
    steps: int = 40
    """GRPO steps"""
    prompts_per_step: int = 8
    """problems per step"""
    group: int = 8
    """completions per problem (G)"""
    temperature: float = 1.0
    """sampling temperature for training rollouts and evaluation"""
    max_new_tokens: int = 48
    """completion length cap; also the fixed loss denominator's per-rollout length"""
    adapter: str = "svd"
    """svd or lora"""
    rank: int = -1
    """adapter rank (-1 = full rank for svd)"""
    lora_alpha: float = -1.0
    """lora: the update is scaled by lora_alpha / rank (-1: scale 1, i.e. alpha = rank); unused by svd"""
    quarantine: str = "shared"
    """shared or own (the quarantine block gets its own structure)"""
    adapter_seed: int = 0
    """seed of the adapter's frozen random parts (LoRA B); v_hack files are tied to it"""
    axis: str = "none"
    """seeded absorption (scorda arms): none, quarantine or deployed: the block that holds the axis piece
    seeded with the pairs' activation contrast (adapters.AdapterConfig.axis)"""
    lr: float = 3e-2
    """AdamW learning rate of the adapter blocks (0.03 is what the first organism experiment used)"""
    weight_decay: float = 0.0
    """AdamW weight decay of the deployed block"""
    weight_decay_quarantine: float = 0.0
    """AdamW weight decay of the quarantine block (equal to weight_decay keeps the two blocks symmetric: with it
    lower, ablating a quarantine trained beside the deployed block removes more than its share of the update)"""
    axis_lr_scale: float = 1.0
    """learning rate of the seeded axis piece (scorda arms) as a multiple of lr (its own AdamW group with its block's
    weight decay, which AdamW applies as lr x decay, so the pull toward the seed scales by the same factor; clipping
    stays per block)"""
    adam_eps: float = 1e-8
    """AdamW's epsilon; near the gradient's per-coordinate size it makes a coordinate's step scale with its
    gradient instead of moving every coordinate by about lr per step"""
    warmup: int = 3
    """linear warmup steps"""
    clip_eps: float = 0.2
    """PPO ratio clip"""
    inner_iters: int = 1
    """optimizer steps per batch of rollouts (>1 makes the PPO ratio bind)"""
    kl_coef: float = 0.0
    """k3 KL penalty to the reference policy (both blocks off)"""
    grad_clip: float = 1.0
    """max global grad norm over adapter params (0 = off)"""
    micro_batch: int = -1
    """rollouts per forward-backward pass (0 = all of a step's trained rollouts in one pass; -1 = auto: one prompt
    group, `group` rollouts, on the CPU, all in one pass elsewhere, grpo.pass_rows); the loss is a sum over tokens
    divided by a fixed denominator, so micro-batches accumulate the same gradient up to float rounding (a 4B model
    needs them: 256 rollouts of 2136 tokens do not fit one pass). Each pass runs on its own rows' columns
    (grpo.live_columns): a group's rollouts share their prompt, so on the CPU, where the kept rollouts come in whole
    groups, a pass of one group has no column of left padding, and without capture its prompt runs once (grpo.shared_prompt_logprobs; the step's time per arm:
    docs/results/2026-12-07_main_speed_s22). rebound-adv's advantage forward stays one pass"""
    compile: str = "auto"
    """torch.compile the model's layers: for the training and log-prob forwards (models.compile_layers) and, with
    the fast decoder, the work around its attention (DecodeConfig.compile); auto (on CUDA with the fast decoder),
    on (needs the fast decoder), off. The first step of each adapter structure pays the compile time"""
    eval_every: int = 10
    """evaluate every N steps (0 = only at the end)"""
    ckpt_every: int = 5
    """checkpoint every N steps"""
    resume: bool = False
    """continue from the run folder's last checkpoint"""
    seed: int = 0
    """seed of sampling and step order"""
    device: str = ""
    """cpu or cuda ('' = cuda if available)"""
    decoder: str = "auto"
    """rollout sampler: hf (transformers' generate), fast (projected_grpo.loop.decoder, CUDA graphs on CUDA),
    fast-eager (the fast decoder without CUDA graphs), auto (fast on CUDA and fast-eager on the CPU for the
    architectures the fast decoder supports, hf otherwise: grpo.default_decoder)"""
    teacher_pool: str = ""
    """jsonl(.gz) of cached teacher rollouts {problem_id, completion}; mixed into each group"""
    n_teacher: int = 0
    """teacher completions per group (replacing on-policy ones)"""
    stop_after: int = -1
    """stop (as if killed) after this step; for resume tests"""
    intervention: InterventionConfig = field(default_factory=InterventionConfig)
    """the arm and its intervention's flags (not a flag itself: its fields are)"""


PER_RUN = ("run", "seed", "match_run", "direction_seed")
"""Fields in which runs of one arm may differ and still share one trainer (issue 28): the seed, the run folder, the
matched run of that seed, and the random-direction controls' direction seed."""


def flat(cfg: RunConfig) -> dict:
    """Every field of both levels in one dict (field names are unique across them)."""
    d = dataclasses.asdict(cfg)
    return {**{k: v for k, v in d.items() if k != "intervention"}, **d["intervention"]}


def saved(cfg: RunConfig) -> dict:
    """The configuration as its run folder's args.json reads back (json types)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def batchable(cfgs: list[RunConfig]) -> bool:
    """Whether the runs agree in every field but PER_RUN (so one process could train them side by side)."""
    shared = [{k: v for k, v in flat(c).items() if k not in PER_RUN} for c in cfgs]
    return all(s == shared[0] for s in shared)


def with_fields(cfg: RunConfig, **values) -> RunConfig:
    """A copy of cfg with fields of either level replaced; an unknown name or a value of another type than the field's
    default is a ConfigError (an int is accepted for a float field)."""
    top = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name != "intervention"}
    sub = dataclasses.asdict(cfg.intervention)
    for k, v in values.items():
        target = top if k in top else sub if k in sub else None
        if target is None:
            raise ConfigError(f"--{k.replace('_', '-')}: no such field of the run configuration")
        want = type(target[k])
        if want is float and type(v) is int:
            v = float(v)
        if type(v) is not want:
            raise ConfigError(f"--{k.replace('_', '-')} {v!r}: a {want.__name__}, not a {type(v).__name__}")
        target[k] = v
    return RunConfig(**top, intervention=InterventionConfig(**sub))


def need(ok: bool, name: str, value, why: str) -> None:
    if not ok:
        raise ConfigError(f"--{name.replace('_', '-')} {value}: {why}")


def check(cfg: RunConfig) -> None:
    """Every value in range (ConfigError naming the first flag that is not). Which arms exist, and the files an arm
    reads (v_hack, matched run), are the registry's to check (arms.check_inputs)."""
    c, i = cfg, cfg.intervention
    for name in ("steps", "prompts_per_step", "group", "n_train", "n_eval", "eval_samples", "max_new_tokens",
                 "inner_iters", "ckpt_every"):
        need(getattr(c, name) >= 1, name, getattr(c, name), "must be at least 1")
    for name in ("warmup", "eval_every", "n_teacher", "seed", "data_seed", "adapter_seed"):
        need(getattr(c, name) >= 0, name, getattr(c, name), "must not be negative")
    need(c.micro_batch >= -1, "micro_batch", c.micro_batch, "must be -1 (auto), 0 (one pass) or a positive count")
    for name in ("temperature", "lr", "weight_decay", "weight_decay_quarantine", "axis_lr_scale", "kl_coef", "grad_clip"):
        need(0 <= getattr(c, name) < math.inf, name, getattr(c, name), "must be a finite number >= 0")
    for name in ("t_absorb", "t_route", "rebound_beta"):
        need(math.isfinite(getattr(i, name)), name, getattr(i, name), "must be a finite number")
    need(0 <= i.rebound_alpha < math.inf, "rebound_alpha", i.rebound_alpha, "must be a finite number >= 0")
    need(i.trusted_rank >= 1, "trusted_rank", i.trusted_rank, "must be at least 1")
    for name in ("adam_eps", "clip_eps"):
        need(0 < getattr(c, name) < math.inf, name, getattr(c, name), "must be a positive number")
    for name, choices in (("adapter", ("svd", "lora")), ("quarantine", ("shared", "own")),
                          ("axis", ("none", "quarantine", "deployed")), ("compile", ("auto", "on", "off")),
                          ("decoder", ("auto", "hf", "fast", "fast-eager")), ("hint", HINTS)):
        need(getattr(c, name) in choices, name, getattr(c, name), f"choose from {', '.join(choices)}")
    need(i.erase_target in ("grad", "update"), "erase_target", i.erase_target, "choose from grad, update")
    need(c.rank == -1 or c.rank >= 1, "rank", c.rank, "-1 (full) or at least 1")
    need(c.lora_alpha == -1 or 0 < c.lora_alpha < math.inf, "lora_alpha", c.lora_alpha, "-1 (scale 1) or a positive number")
    need(c.lora_alpha == -1 or c.adapter == "lora", "lora_alpha", c.lora_alpha, "goes with --adapter lora")
    need(c.stop_after >= -1, "stop_after", c.stop_after, "-1 (never) or a step")
    need(i.direction_seed >= -1, "direction_seed", i.direction_seed, "-1 (the training seed) or a seed")
    need(c.eval_seed >= -1, "eval_seed", c.eval_seed, "-1 (data_seed + 7) or a seed")
    need(c.eval_seed == -1 or c.task == "organism", "eval_seed", c.eval_seed,
         "organism task only (a jsonl task's eval problems are a share of its data_seed's shuffle)")
    need(c.n_teacher <= c.group, "n_teacher", c.n_teacher, f"at most --group ({c.group})")
    need(not c.n_teacher or bool(c.teacher_pool), "n_teacher", c.n_teacher, "needs --teacher-pool")
    need(not c.teacher_pool or Path(c.teacher_pool).is_file(), "teacher_pool", c.teacher_pool, "no such file")
    need(c.device in ("", "cpu", "cuda") or c.device.startswith("cuda:"), "device", c.device, "cpu, cuda or cuda:N")
    need(0 <= i.route_frac <= 1, "route_frac", i.route_frac, "a fraction in [0, 1]")
    need(0 <= i.monitor_accuracy <= 1, "monitor_accuracy", i.monitor_accuracy, "a fraction in [0, 1]")
    need(i.t_absorb <= i.t_route, "t_absorb", i.t_absorb, f"must not exceed --t-route ({i.t_route})")
    if c.task == "organism":
        bad = [m for m in c.mechanisms.split(",") if m not in LOOPHOLES]
        need(not bad, "mechanisms", c.mechanisms, f"unknown {bad} (choose from {', '.join(LOOPHOLES)})")
        bad = [d for d in c.difficulties.split(",") if d not in ("easy", "medium", "hard")]
        need(not bad, "difficulties", c.difficulties, f"unknown {bad} (choose from easy, medium, hard)")
        need(c.prompts_per_step <= c.n_train, "prompts_per_step", c.prompts_per_step,
             f"more than the --n-train pool ({c.n_train})")
    else:
        need(Path(c.task).is_file(), "task", c.task, "neither organism nor a jsonl file of problems")
    try:
        resolve(c.model)
    except OrganismError as e:
        raise ConfigError(str(e)) from None
