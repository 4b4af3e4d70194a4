"""Gate: several runs batched in one trainer train exactly as each run alone (issue 28).

Runs of one arm that differ only in seed (and direction seed) share one grpo.Trainer: one frozen model whose adapters
hold a copy per run (adapters.add_runs), one forward-backward over every run's rollouts, then per-run hooks, clipping
and AdamW. The claim: each batched run computes what it would compute alone in a process of its own.

On the tiny organism (float64), 3 runs of each arm below train 5 steps (`just smoke`: 2 runs, 3 steps) batched and alone, on replayed rollouts (no
sampling): a run's completions at a step are drawn from a generator keyed by its sampling seed (random token ids of
random lengths, most ending in EOS), graded by a reward that is a hash of the text (so every group has reward
variance and runs differ). Compared per run and step, relative 1e-5:
    metrics     loss, deployed and quarantine gradient norms (after clipping binds: grad_clip 0.01), kl / ratio stats,
                routed fraction
    rollouts    every column of the step file (advantages, routing scores, routed / absorbed decisions), floats
                within 1e-5 of the larger of their size and 0.01 (a routing score is a cosine; near 0 its difference
                counts as absolute), the rest equal; metrics the same with 1e-4 in place of 0.01
    updates     every adapter tensor after every step (so each AdamW update; AdamW's eps at ADAM_EPS, see there), and
                the optimizer's moments at the end
Arms (`just smoke`: route and vanilla; `just smoke-full`: all three): vanilla (no capture: the folded forward,
each run's rows through its own summed weight), route (own quarantine, v_grad extracted here from the 4 stub-style hack pairs, per-rollout routing scores from the batched backward) and
erase-random (a different random direction per run: --direction-seed 100 + seed).

Sampling: on the same model (float64) with 3 runs whose adapters differ (random singular-value offsets), each run
drawing from its own generator, sampling.sample_runs gives every run the completions sampling.sample gives it alone
(under adapters.active_run), token for token, with transformers' generate (one call for all runs) and with the fast
decoder (one decode for all runs, eager: each run's rows through its own merged weights); seen failing (smoke-full,
by the gate itself) with two runs' generator seeds swapped.

Waves: the fast decoder over 4 runs of 4, 4, 1 and 2 rows in waves of 4 rows (the last: two runs and a filler row),
greedy, equals
each run's greedy decode alone (a review found filler rows labelled with the wave's first run, which unsorted the
rows' runs and raised; seen failing that way).

Deliberate breaks, run by the gate itself in `just smoke-full` (each must make the comparison fail):
    swap        in batched forwards, rows of run 0 go through run 1's adapter and back (AdaptedLinear._by_row, and
                _folded_weights for the folded path)
    clip        each run's clipping uses the deployed-block norm of the run before it in the batch
"""

from __future__ import annotations

import contextlib
import math
import random
import tempfile
import time
import zlib
from pathlib import Path

import torch

from _gate_common import full_tier, run_gate, tier, tiny_args
from projected_grpo.loop import grpo, logs
from projected_grpo.loop.config import with_fields
from projected_grpo.loop.models import OpCounter
from projected_grpo.method import adapters as ad
from projected_grpo.method import vhack
from projected_grpo.method.pairs import HACK_PAIRS

TOL = 1e-5


def n_steps() -> int:
    """Steps per run: 5 in `just smoke-full`, 3 in `just smoke` (float64 backwards cost about 0.4 s a step)."""
    return 5 if full_tier() else 3


def n_runs() -> int:
    """Runs per trainer: 3 in `just smoke-full`, 2 in `just smoke`."""
    return 3 if full_tier() else 2


def prompts_per_step() -> int:
    return 4


PROMPT_TOKENS = 48
"""Each prompt's last 48 tokens (the tiny organism's prompts are about 250): the claim is about batching, and float64
forwards of full prompts cost about 0.5 s a step."""
ADAM_EPS = 1e-6
"""AdamW's first step moves a coordinate by lr g / (|g| + eps): a coordinate whose gradient is at the rounding size of
its sum (a different summation order batched) moves by a rounding-dependent fraction of lr when eps is 1e-8 (the
default; seen: adapter tensors batched vs alone within 4.9e-5 relative while every gradient norm agreed within 1e-6).
At 1e-6 such coordinates move by about lr g / eps, continuous in g."""
ARMS = {"route": dict(route_frac=0.25), "vanilla": {}, "erase-random": {}}
"""route: per-rollout capture batched; vanilla: the folded forward batched (each run's rows through its own summed weight);
erase-random: a random direction per run."""


def configs(tmp: Path, arm: str, tag: str, **over) -> list[grpo.RunConfig]:
    vh = tmp / "vhack_own.safetensors"
    if not vh.exists():
        with float64_model():
            vhack.extract_to_file(vh, HACK_PAIRS + "@style=stub", "organism:tiny", quarantine="own")  # 4 pairs: any fixed direction serves the batched = alone comparison
    out = []
    for seed in range(n_runs()):
        c = tiny_args(tmp, f"{tag}_{arm}_s{seed}", steps=n_steps(), seed=seed, quarantine="own", grad_clip=0.01,
                      max_new_tokens=16, ckpt_every=100, adam_eps=ADAM_EPS,
                      prompts_per_step=prompts_per_step())
        extra = dict(direction_seed=100 + seed) if arm == "erase-random" else {}
        if arm != "vanilla":
            extra["vhack"] = str(vh)
        out.append(with_fields(c, arm=arm, **ARMS[arm], **extra, **over))
    return out


def replayed(tok, n: int, seed: int, max_new: int) -> list[list[int]]:
    """n completions keyed by the sampling seed alone: random ids, random lengths, most ending in EOS."""
    g = random.Random(seed)
    vocab = [i for i in range(tok.vocab_size) if i not in (tok.eos_token_id, tok.pad_token_id)]
    rows = []
    for _ in range(n):
        row = [g.choice(vocab) for _ in range(g.randint(1, max_new - 1))]
        rows.append(row + [tok.eos_token_id] if g.random() < 0.8 else row)
    return rows


def hashed_grades(problems: list[dict], texts: list[str]) -> list[dict]:
    out = []
    for p, t in zip(problems, texts):
        r = (zlib.crc32(f"{p['id']}|{t}".encode()) % 11) / 10
        hack = r > 0.75
        out.append(dict(reward=r, label="Reward Hack" if hack else "Incorrect", is_hack_strict=hack,
                        is_hack_loose=hack, eq_correct=False, eq_hinted=hack, can_compile=True))
    return out


@contextlib.contextmanager
def replay(tr: grpo.Trainer):
    """The trainer samples nothing: each run's completions come from `replayed` keyed by its generator seed; prompts are
    cut to their last PROMPT_TOKENS tokens; rewards are hashed_grades'."""
    a = tr.args
    tr.sample_runs = lambda runs, prompts, seeds: [replayed(tr.tok, len(p), s, a.max_new_tokens)
                                                   for p, s in zip(prompts, seeds)]
    real = grpo.grade_problems, grpo.prompt_ids
    grpo.grade_problems = hashed_grades
    grpo.prompt_ids = lambda tok, problem: real[1](tok, problem)[-PROMPT_TOKENS:]
    try:
        yield
    finally:
        grpo.grade_problems, grpo.prompt_ids = real


@contextlib.contextmanager
def float64_model():
    """The frozen model in float64, so that rounding (summation order batched) stays far below the tolerance while a
    run that reads another run's adapter or norm differs at the size of the update."""
    real = grpo.load_policy
    grpo.load_policy = vhack.load_policy = lambda spec, device=None, dtype=None: real(spec, device, torch.float64)
    try:
        yield
    finally:
        grpo.load_policy = vhack.load_policy = real


def train(cfgs: list[grpo.RunConfig], batched: bool, break_: str = "") -> list[dict]:
    """Per run: metrics rows, step files and adapter tensors after each step, optimizer moments at the end."""
    groups = [cfgs] if batched else [[c] for c in cfgs]
    out = []
    for group in groups:
        torch.manual_seed(0)
        with float64_model():
            tr = grpo.Trainer(group if batched else group[0])
        with replay(tr), broken(tr, break_):
            for run in tr.runs:
                tr.start(run)
            after = [[] for _ in tr.runs]
            for step in range(n_steps()):
                tr.step_runs(step)
                for run in tr.runs:
                    with ad.active_run(tr.model, run.index):
                        after[run.index].append(ad.adapter_state_dict(tr.model))
        for run in tr.runs:
            moments = [s[k].clone() for s in run.opt.state.values() for k in ("exp_avg", "exp_avg_sq")]
            out.append(dict(metrics=run.metrics, steps=[logs.read_step(f) for f in logs.step_files(run.run_dir)],
                            adapters=after[run.index], moments=moments))
    return out


@contextlib.contextmanager
def broken(tr: grpo.Trainer, how: str):
    """The deliberate breaks (see the module docstring); nothing when how is empty."""
    if how == "swap":
        real = ad.AdaptedLinear._by_row

        def swapped(self, per_run):
            order = list(range(per_run.shape[0]))
            order[0], order[1] = 1, 0
            return real(self, per_run[order])

        real_fold = ad.AdaptedLinear._folded_weights

        def swapped_fold(self, runs):  # the folded path (no capture): run 0's rows through run 1's summed weight
            return real_fold(self, [{0: 1, 1: 0}.get(r, r) for r in runs] if self.active is None else runs)

        ad.AdaptedLinear._by_row, ad.AdaptedLinear._folded_weights = swapped, swapped_fold
        try:
            yield
        finally:
            ad.AdaptedLinear._by_row, ad.AdaptedLinear._folded_weights = real, real_fold
    elif how == "clip":
        real_clip = torch.nn.utils.clip_grad_norm_
        last: dict[int, float] = {}

        def clip_previous(params, max_norm):
            params = list(params)
            calls = last.setdefault("n", 0)
            norm = real_clip(params, float("inf")).item()
            use = last.get(calls - 2, norm)  # the same block of the run before this one
            last[calls], last["n"] = norm, calls + 1
            coef = min(1.0, max_norm / (use + 1e-6))
            for p in params:
                if p.grad is not None:
                    p.grad.mul_(coef)
            return torch.tensor(norm)

        torch.nn.utils.clip_grad_norm_ = clip_previous
        try:
            yield
        finally:
            torch.nn.utils.clip_grad_norm_ = real_clip
    else:
        assert not how, how
        yield


def rel(a: float, b: float, floor: float) -> float:
    """|a - b| relative to the larger of |a|, |b| and `floor` (a scale below which a difference counts as absolute);
    0 when both are NaN (a metric a run does not have, e.g. vanilla's routed share), infinite when one is not finite."""
    if math.isnan(a) and math.isnan(b):
        return 0.0
    if not (math.isfinite(a) and math.isfinite(b)):
        return math.inf
    return abs(a - b) / max(abs(a), abs(b), floor)


def tensor_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """Relative difference of two tensors; infinite when either holds a value that is not finite."""
    if not (bool(torch.isfinite(a).all()) and bool(torch.isfinite(b).all())):
        return math.inf
    return float((a - b).norm() / max(float(a.norm()), float(b.norm()), 1e-12))


def worst_difference(alone: list[dict], batched: list[dict]) -> tuple[float, str]:
    """The largest relative difference between the runs alone and batched, and where."""
    worst, where = 0.0, ""

    def see(d: float, what: str) -> None:
        nonlocal worst, where
        d = d if not math.isnan(d) else math.inf  # a NaN difference is a difference, not a pass
        if d > worst:
            worst, where = d, what

    for k, (a, b) in enumerate(zip(alone, batched)):
        for s, (ma, mb) in enumerate(zip(a["metrics"], b["metrics"], strict=True)):
            for key, va in ma.items():
                if key.startswith("t_") or key == "runs_per_process" or not isinstance(va, (int, float)):
                    continue
                see(rel(float(va), float(mb[key]), 1e-4), f"run {k} step {s} metric {key}")
        for s, (ra, rb) in enumerate(zip(a["steps"], b["steps"], strict=True)):
            for i, (xa, xb) in enumerate(zip(ra, rb, strict=True)):
                assert xa.keys() == xb.keys(), f"run {k} step {s} rollout {i}: columns differ"
                for key, va in xa.items():
                    if isinstance(va, float):
                        see(rel(va, xb[key], 1e-2), f"run {k} step {s} rollout {i} {key}")
                    else:
                        see(float(va != xb[key]), f"run {k} step {s} rollout {i} {key}")
        for s, (ta, tb) in enumerate(zip(a["adapters"], b["adapters"], strict=True)):
            for name, t in ta.items():
                see(tensor_rel(t, tb[name]), f"run {k} adapter after step {s}: {name}")
        for j, (ma, mb) in enumerate(zip(a["moments"], b["moments"], strict=True)):
            see(tensor_rel(ma, mb), f"run {k} AdamW moment {j}")
    return worst, where


def check_arm(tmp: Path, arm: str, breaks: bool = True, **over) -> tuple[float, int, list[str]]:
    """`over`: fields every run gets (micro_batch=0: one pass holds every run's rollouts, as on a GPU, so a folded
    forward forms several runs' summed weights at once)."""
    tag = "".join(f"_{k}{v}" for k, v in over.items())
    alone = train(configs(tmp, arm, "alone" + tag, **over), batched=False)
    batched = train(configs(tmp, arm, "batched" + tag, **over), batched=True)
    worst, where = worst_difference(alone, batched)
    assert worst <= TOL, f"{arm}: batched runs differ from the runs alone by rel {worst:.2e} at {where}"
    moved = sum(float(t.abs().sum()) > 0 for t in batched[0]["adapters"][-1].values())
    assert moved > 0, f"{arm}: no adapter tensor moved"
    distinct = tensor_rel(batched[0]["adapters"][-1][next(iter(batched[0]["adapters"][-1]))],
                          batched[1]["adapters"][-1][next(iter(batched[1]["adapters"][-1]))])
    assert distinct > 1e-3, f"{arm}: runs 0 and 1 ended equal (rel {distinct:.1e}): the runs do not differ"
    seen = []
    if full_tier() and breaks:
        for how in ("swap", "clip"):
            bad, at = worst_difference(alone, train(configs(tmp, arm, f"broken_{how}"), batched=True, break_=how))
            assert bad > TOL, f"{arm}: the deliberate break '{how}' left batched equal to alone (rel {bad:.1e})"
            seen.append(f"{how} rel {bad:.1e}")
    return worst, moved, seen


def runs_model(n: int, seed: int, scale: float):
    """(model, tok): the tiny organism in float64 with n runs whose adapters differ (random singular-value offsets)."""
    from projected_grpo.loop.models import load_policy

    model, tok = load_policy("organism:tiny", "cpu", torch.float64)
    ad.wrap_model(model, ad.AdapterConfig(quarantine="own"))
    ad.add_runs(model, n)
    g = torch.Generator().manual_seed(seed)
    for r in range(n):
        with ad.active_run(model, r), torch.no_grad():
            for m in ad.adapter_modules(model).values():
                m.delta_S.normal_(0, scale, generator=g)
    return model, tok


def check_sampling(decoder: str, swap: bool = False) -> int:
    """sample_runs of 3 runs with different adapters equals each run's sample alone; the number of completions
    compared (the comparison's result when `swap` exchanges two runs' seeds: False expected)."""
    from projected_grpo.loop.sampling import prompt_ids, sample, sample_runs

    model, tok = runs_model(3, seed=5, scale=0.5)
    train, _ = grpo.load_tasks(tiny_args(Path("."), "x"))
    prompts = [[prompt_ids(tok, p)[-PROMPT_TOKENS:] for p in train[4 * r:4 * r + 2] for _ in range(4)] for r in range(3)]
    seeds = [11, 12, 13]
    together = sample_runs(model, tok, prompts, [0, 1, 2], 1.0, 12, [12, 11, 13] if swap else seeds, decoder=decoder)
    alone = []
    for r in range(3):
        with ad.active_run(model, r):
            alone.append(sample(model, tok, prompts[r], 1.0, 12, seeds[r], decoder=decoder))
    if swap:
        return together == alone
    assert together == alone, f"{decoder}: runs sampled together differ from each run alone"
    assert alone[0] != alone[1], f"{decoder}: two runs sampled the same completions (the check would be vacuous)"
    return sum(len(a) for a in alone)


def check_waves() -> int:
    """The fast decoder over runs of uneven sizes in several waves, the last one holding two runs and a filler row
    (max_batch 4, sizes 4, 4, 1, 2): greedy completions of each run equal the run's own greedy decode alone (no
    generator: the rows' runs alone decide them); the number of rows compared."""
    from projected_grpo.loop.decoder import DecodeConfig, decode
    from projected_grpo.loop.sampling import prompt_ids

    model, tok = runs_model(4, seed=7, scale=1.0)
    train, _ = grpo.load_tasks(tiny_args(Path("."), "x"))
    sizes = [4, 4, 1, 2]
    prompts = [[prompt_ids(tok, p)[-PROMPT_TOKENS:] for p in train[10 * r:10 * r + n]] for r, n in enumerate(sizes)]
    cfg = DecodeConfig(mode="eager", max_batch=4, share_prompts=False)
    eos, pad = tok.eos_token_id, tok.pad_token_id
    out = decode(model, [p for ps in prompts for p in ps], 0.0, 10, eos, pad, cfg=cfg, sizes=sizes, runs=[0, 1, 2, 3])
    assert out.waves > 1, f"one wave: the check would not cross waves ({out.waves})"
    got, k = [], 0
    for n in sizes:
        got.append(out.tokens[k:k + n])
        k += n
    for r, ps in enumerate(prompts):
        with ad.active_run(model, r):
            alone = decode(model, ps, 0.0, 10, eos, pad, cfg=DecodeConfig(mode="eager", share_prompts=False)).tokens
        assert got[r] == alone, f"run {r}: greedy rows decoded with the other runs in {out.waves} waves differ from alone"
    return sum(sizes)


VARIANTS = (("svd", "shared", "none"), ("svd", "own", "none"), ("svd", "own", "quarantine"), ("svd", "own", "deployed"),
            ("lora", "shared", "none"), ("lora", "own", "none"))


def adapted_layer(kind: str, quarantine: str, axis: str, runs: int) -> torch.nn.Module:
    """One AdaptedLinear (16 -> 12, float64; adapter tensors float32) of `runs` runs whose trainable tensors (and axis seeds) are random and differ."""
    g = torch.Generator().manual_seed(3)
    model = torch.nn.ModuleDict({"proj": torch.nn.Linear(16, 12, dtype=torch.float64)})
    with torch.no_grad():
        model.proj.weight.normal_(0, 0.3, generator=g)
    ad.wrap_model(model, ad.AdapterConfig(kind=kind, rank=4, quarantine=quarantine, axis=axis, targets="proj", cache_dir=None))
    ad.add_runs(model, runs)
    m = model.proj
    with torch.no_grad():
        for name in ("axis_u_in", "axis_c_out"):
            if hasattr(m, name):
                getattr(m, name).normal_(0, 0.5, generator=g)
        for p in m.parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


def count_ops(fn) -> int:
    """aten operations dispatched while fn runs."""
    with OpCounter() as counter:
        fn()
    return counter.counts["all"]


def check_adapter_forms() -> tuple[float, dict[str, int]]:
    """A batched forward and backward of one adapted layer = each run's rows alone (outputs and every run's gradients,
    relative 1e-6: a float64 layer, its adapter tensors float32), for every adapter form (svd shared / own / own with either axis piece, lora shared / own),
    folded and not, over rows of runs 0, 0, 1, 3, 3, 3 (run 2 has none); and the branch forms' operations do not grow
    with the runs (a batched forward of 2 and of 6 runs, every run with rows, dispatch as many aten operations: each a
    dispatch on the CPU, most a kernel launch on a GPU; seen failing on the adapters that formed each run's tensors in
    a loop). Only the
    unfolded forward is claimed: a folded forward still runs one Linear per run present, and the backward accumulates
    each run's gradients. Folding follows the real criterion, so a run with few tokens alone may take the branch.
    Returns (worst rel, {form: operations of its forward})."""
    rows = torch.tensor([0, 0, 1, 3, 3, 3])
    x = torch.randn(6, 5, 16, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    worst = 0.0
    for kind, quarantine, axis in VARIANTS:
        for fold in (True, False):
            model = adapted_layer(kind, quarantine, axis, 4)
            params = [p for p in model.parameters() if p.requires_grad]
            with ad.folding(fold):
                with ad.batched_rows(model, rows):
                    y = model.proj(x)
                got = torch.autograd.grad((y * y).sum(), params, allow_unused=True)
                want_y, want = torch.zeros_like(y), [torch.zeros_like(p) for p in params]
                for r in range(4):
                    sel = (rows == r).nonzero().flatten()
                    if not len(sel):
                        continue
                    with ad.active_run(model, r):
                        y_r = model.proj(x[sel])
                    want_y[sel] = y_r.detach()
                    for w, gr in zip(want, torch.autograd.grad((y_r * y_r).sum(), params, allow_unused=True)):
                        if gr is not None:
                            w += gr
            tag = f"{kind} {quarantine} axis={axis} fold={fold}"
            worst = max(worst, tensor_rel(y.detach(), want_y))
            for p, g, w in zip(params, got, want):
                worst = max(worst, tensor_rel(torch.zeros_like(p) if g is None else g, w))
            assert worst < 1e-6, f"{tag}: a batched forward differs from the runs alone (rel {worst:.1e})"
    ops = {}
    for kind, quarantine, axis in VARIANTS:
        counts = {}
        for runs in (2, 6):
            model = adapted_layer(kind, quarantine, axis, runs)
            rr = torch.arange(runs).repeat_interleave(2)
            xr = torch.randn(2 * runs, 5, 16, dtype=torch.float64)
            with ad.folding(False), ad.batched_rows(model, rr):
                counts[runs] = count_ops(lambda: model.proj(xr))
        assert counts[2] == counts[6], (f"{kind} {quarantine} axis={axis}: a batched forward of 2 runs dispatches "
                                        f"{counts[2]} aten operations, of 6 runs {counts[6]}")
        ops[f"{kind} {quarantine} axis={axis}"] = counts[2]
    return worst, ops


def main() -> None:
    t0 = time.time()
    forms_rel, forms_ops = check_adapter_forms()
    n_waves = check_waves()
    n_sampled = {d: check_sampling(d) for d in ("hf", "fast-eager")}
    if full_tier():
        for d in n_sampled:
            assert not check_sampling(d, swap=True), f"{d}: swapped generator seeds left the completions equal"
    res = {}
    with tempfile.TemporaryDirectory() as d:
        for arm in ARMS if full_tier() else ["route", "vanilla"]:
            res[arm] = check_arm(Path(d), arm)
        for arm in ["route", "vanilla"] if full_tier() else []:
            res[f"{arm} in one pass"] = check_arm(Path(d), arm, breaks=False, micro_batch=0)
    breaks = "; ".join(f"{arm}: {', '.join(s)}" for arm, (_, _, s) in res.items() if s)
    print(f"PASS batched_runs ({tier()}): {n_runs()} runs x {n_steps()} replayed steps of {prompts_per_step()} x 4 rollouts batched in one trainer = each run alone "
          f"(metrics, every step-file column, every adapter tensor after every step, AdamW moments): "
          + ", ".join(f"{arm} max rel {w:.1e} ({m} tensors moved)" for arm, (w, m, _) in res.items())
          + (f"; deliberate breaks fail: {breaks}" if breaks else "")
          + f"; sampling: 3 runs together = each alone, token for token ({', '.join(f'{d} {n}' for d, n in n_sampled.items())} "
          + f"completions){', swapped seeds differ' if full_tier() else ''}; greedy over uneven runs in several "
          + f"waves = each alone ({n_waves} rows); one adapted layer batched = its runs alone in {len(VARIANTS)} forms x "
          + f"folded or not (rel {forms_rel:.1e}), an unfolded forward the same {min(forms_ops.values())}-"
          + f"{max(forms_ops.values())} aten operations a form for 2 and 6 runs; "
          + f"{time.time() - t0:.0f}s")


if __name__ == "__main__":
    run_gate("batched_runs", main)
