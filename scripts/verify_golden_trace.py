"""Gate: stored rollouts of the pinned CPU organism, replayed through the trainer's real step, reproduce a
golden trace.

The rollouts in data/golden/rollouts.json (prompt and completion token ids, completion texts and the
grader's results) were sampled and graded once, by a vanilla run of the pinned organism
(data/organisms/cpu-685bd444). Here nothing is sampled or graded: for each of three arms

    vanilla   no intervention, shared quarantine
    erase     Erase with the stored shared-quarantine v_hack (data/golden/vhack_shared.safetensors)
    route     Route, gate=grad, route_frac 0.25, own quarantine, with the stored own-quarantine v_hack
              (data/golden/vhack_own.safetensors)

a fresh grpo.Trainer runs Trainer.step for every stored step with its rollouts and grades handed in
(Trainer.rollouts and the grading call replaced by the stored ones; everything else is the library's:
rewards, Dr.GRPO advantages, the clipped loss and its backward, the intervention's gradient hook,
per-block clipping, AdamW, the schedule). Every step of every arm is recorded (loss, both blocks'
gradient norms, advantages, which rollouts trained, routing scores and regions, erase's cosines and
fired fraction, the adapter's per-module norms) and, after the last step, every adapter tensor; all of it
is compared with data/golden/trace.json and data/golden/adapters.safetensors. One torch thread, fp32.

Tolerance: relative 1e-5, each quantity against its own scale: its own magnitude for losses and norms (a
list of per-module norms by its largest entry), its Euclidean norm for an adapter tensor, 1 for cosines
(bounded by 1). Counts, routing decisions, advantages, rewards and the learning rate are compared exactly;
routing decisions up to ties between identical rollouts (route_decisions). Measured against this trace
(written on an AMD EPYC, torch 2.13, AVX2 kernels): an Intel Xeon with torch 2.11 and transformers 5.17
(AVX512 kernels) gave step records within 5.6e-6 (the routing score of a step-2 rollout; per-rollout cosines
are the least well conditioned quantity recorded) and final tensors within 3.3e-6; this machine with
ATEN_CPU_CAPABILITY=default, 1.6e-6 and 1.2e-6.

Two choices make that hold. (1) Adam epsilon 1e-3 (a recipe of the 2026-11-24 screens in the journal), near
the gradient's coordinate size, so AdamW's step grows with the gradient instead of being about lr times its
sign on every coordinate: with epsilon 1e-8 the Intel machine's final tensors were up to 4.4e-5 off (largest
entry as the scale), against 6.5e-6 with 1e-3. (2) The adapters' frozen SVD bases are computed in float64 with
fixed signs (stable_svd_top_k), not by the library's float32 SVD; the stored v_hack files were extracted
(scripts/extract_vhack_grad.py, in this process) on those bases, so they belong to this gate alone.

When this machine's CPU model, torch version and torch CPU kernels (AVX2, AVX512, ...) equal those recorded
in the trace, the vanilla arm is also run for 2 steps with real sampling (Trainer.rollouts as in training; grading looked up from the stored
grades, which requires the sampled completions to equal the stored ones token for token), and its records
must equal the stored ones exactly. Elsewhere that part is skipped, with the reason printed.

    python scripts/verify_golden_trace.py            the gate
    python scripts/verify_golden_trace.py --write    sample, grade and extract v_hack again, write the trace
                                                     (then say why in RESEARCH_JOURNAL.md)
    python scripts/verify_golden_trace.py --rerecord the trace again from the stored rollouts, after a change that
                                                     moves float rounding only (the old trace must hold within
                                                     the tolerance first; then say why in the journal)

Hidden flags `--break lr` (learning rate x 1.01) and `--break adv` (step 0's first nonzero advantage set to 0)
must make the gate fail.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ["PGRPO_THREADS"] = "1"  # the trainer's set_threads reads it: one torch thread, as the trace was written

ROOT = Path(__file__).resolve().parents[1]

import torch  # noqa: E402
from jaxtyping import Float  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from torch import Tensor  # noqa: E402

from projected_grpo.method import adapters as ad  # noqa: E402
from projected_grpo.loop import grpo, logs  # noqa: E402
from projected_grpo.method import interventions as iv  # noqa: E402

GOLDEN = ROOT / "data" / "golden"
ORGANISM = "data/organisms/cpu-685bd444"
STEPS = 3
SAMPLED_STEPS = 2
RTOL = 1e-5
ROUTE_FRAC = 0.25
MIN_MARGIN = 10 * RTOL
"""Smallest gap (in cosine) the written trace may have between a routed and an unrouted rollout's score, and
between zero and a module's gradient cosine with v_hack (erase's one-sided switch). Scores are compared to RTOL,
so on another CPU a decision can only flip after a score moved further than the gate allows anyway."""

RECIPE = dict(model=ORGANISM, task="organism", n_train=16, n_eval=1, eval_samples=1, eval_every=0,
              steps=STEPS, prompts_per_step=4, group=4, max_new_tokens=32, difficulties="medium,hard", data_seed=0,
              seed=1, lr=0.05, weight_decay=1.0, weight_decay_quarantine=1.0, adam_eps=1e-3, warmup=3,
              device="cpu", decoder="hf", compile="off")
"""The golden run's grpo.RunConfig fields besides run, out_dir and quarantine (lr and weight decay as the organism
experiments use them, arms.ORGANISM_LR and arms.ORGANISM_WEIGHT_DECAY; Adam epsilon: see the docstring)."""

ARMS = ("vanilla", "erase", "route")
QUARANTINE = {"vanilla": "shared", "erase": "shared", "route": "own"}
VHACK = {"erase": GOLDEN / "vhack_shared.safetensors", "route": GOLDEN / "vhack_own.safetensors"}

EXACT = ("reward", "frac_trained", "lr", "advantage", "trained", "route_decisions", "frac_fired", "routed_frac", "absorb_frac")
COSINE = ("cos_in", "cos_out", "step_cos", "score_mean", "route_score", "align_score", "erase_margin",
          "route_margin", "ratio_mean", "clip_frac", "kl")
MAGNITUDE = ("loss", "grad_norm", "grad_norm_quarantine", "norm_deployed", "norm_quarantine",
             "module_norms_deployed", "module_norms_quarantine")


def cpu_model() -> str:
    from projected_grpo.loop.models import cpu_model as cm

    return cm()


def environment() -> dict:
    import platform

    import transformers

    return dict(cpu_model=cpu_model(), torch=torch.__version__, transformers=transformers.__version__,
                python=platform.python_version(), cpu_capability=torch.backends.cpu.get_cpu_capability(),
                threads=torch.get_num_threads())


STEP_FIELDS = ("adapter", "rank", "adapter_seed", "axis", "axis_lr_scale", "temperature", "clip_eps", "inner_iters",
               "kl_coef", "grad_clip", "micro_batch", "n_teacher")
"""grpo.RunConfig fields that RECIPE leaves at their defaults and that enter the step or the sampled run."""


def args_defaults() -> dict:
    """The current defaults of STEP_FIELDS (recorded in the trace: a changed default is named when the gate fails)."""
    return {f.name: f.default for f in dataclasses.fields(grpo.RunConfig) if f.name in STEP_FIELDS}


def organism_sha256() -> str:
    return json.loads((ROOT / ORGANISM / "organism.json").read_text())["weights_sha256"]


# ---- the adapter's frozen bases -------------------------------------------------------------------------------

def stable_svd_top_k(w: Float[Tensor, "o i"], k: int, cache_dir: str | None, digest: str
                     ) -> tuple[Float[Tensor, "o k"], Float[Tensor, " k"], Float[Tensor, "k i"], bool]:
    """adapters.svd_top_k for this gate: the SVD in float64, each singular pair's sign fixed (the largest-magnitude
    entry of u positive), then float32; the SVD cache is neither read nor written. Adjacent singular values of the
    organism's weights are 5e-5 to 7e-4 of the largest apart, so a float32 SVD's vectors carry errors near 1e-4:
    with the library's float32 bases the Intel machine's final tensors were 1.5e-5 to 1.5e-4 off this trace, and
    here, bases from a float64 SVD without fixed signs moved the final tensors by 1.7e-4 and flipped the sign of
    route's quarantine block (LAPACK fixes no sign; the own quarantine's pieces u_i vh_(i+1)^T change sign with
    one pair's). Two float64 computations (of W and of its transpose) gave float32 bases within 1.9e-9."""
    u, s, vh = torch.linalg.svd(w.detach().double(), full_matrices=False)
    u, s, vh = u[:, :k], s[:k], vh[:k]
    sign = torch.sign(u.gather(0, u.abs().argmax(0, keepdim=True))[0])
    sign[sign == 0] = 1
    return (u * sign).float().contiguous(), s.float().contiguous(), (vh * sign[:, None]).float().contiguous(), False


@contextlib.contextmanager
def stable_bases():
    """Inside, adapters built by wrap_model use stable_svd_top_k's bases."""
    real = ad.svd_top_k
    ad.svd_top_k = stable_svd_top_k
    try:
        yield
    finally:
        ad.svd_top_k = real


# ---- the trainer, with stored rollouts handed in -------------------------------------------------------------

def trainer(arm: str, out: Path, lr_scale: float = 1.0) -> grpo.Trainer:
    """A fresh Trainer of an arm; the interventions are built as scripts/train.py builds --arm erase and
    --arm route (with route's --route-frac), from the stored v_hack files."""
    args = grpo.RunConfig(run=arm, out_dir=str(out), quarantine=QUARANTINE[arm], **dict(RECIPE, lr=RECIPE["lr"] * lr_scale))
    tr = grpo.Trainer(args)  # NoIntervention; the arm's own is installed below, once the adapter exists
    if arm != "vanilla":
        V = stored_vhack(VHACK[arm], tr.model)
        tr.intervention = iv.Erase(V) if arm == "erase" else iv.Route(V, gate="grad", route_frac=ROUTE_FRAC)
        tr.intervention.setup(tr.model, tr.tok, tr.device)
    tr.run_dir.mkdir(parents=True, exist_ok=True)
    return tr


def stored_vhack(path: Path, model) -> dict[str, Tensor]:
    """v_grad per module of a stored v_hack file, checked against the adapter it was extracted for. The model
    identity in the file hashes the model's config, which carries the transformers version, so vhack.load_vhack
    would refuse the file under another transformers release; the adapter identity (base weights' digest, kind,
    rank, quarantine, block shapes) is what ties the directions to these parameters."""
    from projected_grpo.method.vhack import adapter_identity

    with safe_open(str(path), "pt") as f:
        md = f.metadata()
        V = {k.removeprefix("v_grad."): f.get_tensor(k) for k in f.keys() if k.startswith("v_grad.")}
    assert md["adapter_identity"] == adapter_identity(model), \
        f"{path.name} was extracted for another adapter or organism ({md['adapter_identity']} != {adapter_identity(model)})"
    return V


@contextlib.contextmanager
def stored_rollouts(tr: grpo.Trainer, steps: list[dict], pool: dict[str, dict], sample: bool = False,
                    break_adv: bool = False):
    """Inside: Trainer.step takes step s's problems, prompt ids and completion ids from steps[s] (with
    sample=True it samples them itself, as in training, and they must equal the stored ones), and grading
    returns the stored grades (after checking the decoded texts equal the stored texts). break_adv zeroes the
    first nonzero advantage of the first step (the gate must then fail)."""
    cur: dict = {}
    real_rollouts, real_grade, real_adv = tr.rollouts, grpo.grade_problems, grpo.group_advantages

    def rollouts(step: int):
        s = steps[step]
        cur["s"] = s
        if sample:
            [(probs, pids, comps, teacher)] = real_rollouts(step)
            assert [str(p["id"]) for p in probs] == s["problem_ids"], f"step {step}: sampled other problems"
            assert comps == s["completions"], f"step {step}: sampled completions differ from the stored ones"
            return [(probs, pids, comps, teacher)]
        probs = [pool[i] for i in s["problem_ids"]]
        return [(probs, [s["prompt_ids"][i] for i in s["problem_ids"]], [list(c) for c in s["completions"]],
                 [False] * len(probs))]

    def grade(probs: list[dict], texts: list[str]) -> list[dict]:
        s = cur["s"]
        assert texts == s["texts"], "decoded completions differ from the stored texts (tokenizer changed?)"
        return [dict(g) for g in s["grades"]]

    def advantages(rewards: Float[Tensor, "n g"], include=None) -> Float[Tensor, "n g"]:
        adv = real_adv(rewards, include)
        if not cur.get("broken"):
            i = int(adv.flatten().ne(0).nonzero()[0])
            adv.view(-1)[i] = 0.0
            cur["broken"] = True
        return adv

    tr.rollouts = rollouts
    grpo.grade_problems = grade
    if break_adv:
        grpo.group_advantages = advantages
    try:
        yield
    finally:
        del tr.rollouts
        grpo.grade_problems, grpo.group_advantages = real_grade, real_adv


# ---- what a step records -------------------------------------------------------------------------------------

@contextlib.contextmanager
def erase_margins(rec: list[float]):
    """Record, per projection erase makes, the smallest |cosine| of a module's gradient with its v_hack rows
    (the one-sided projection switches at 0)."""
    real = iv.project_out

    def project_out(g: Float[Tensor, " p"], V: Float[Tensor, "k p"], one_sided: bool = True) -> Float[Tensor, " p"]:
        rec.append(float(((V @ g).abs() / g.norm().clamp(min=1e-30)).min()))
        return real(g, V, one_sided)

    iv.project_out = project_out
    try:
        yield
    finally:
        iv.project_out = real


def module_norms(tr: grpo.Trainer, block: str) -> list[float]:
    mods = ad.adapter_modules(tr.model)
    return [float(torch.cat([p.detach().flatten() for p in (m.deployed_parameters() if block == "deployed"
                                                               else m.quarantine_parameters())]).norm())
            for m in mods.values()]


def run_step(tr: grpo.Trainer, step: int, steps: list[dict]) -> dict:
    """Trainer.step(step) and its record (steps[step], read after the step: its stored rollouts, whose problem
    and completion ids tell identical rollouts apart)."""
    margins: list[float] = []
    with erase_margins(margins) if isinstance(tr.intervention, iv.Erase) else contextlib.nullcontext():
        m = tr.step(step)
    rows = logs.read_step(tr.run_dir / f"step_{step:04d}.jsonl.gz")
    rec = {k: m[k] for k in ("reward", "frac_trained", "lr", "loss", "grad_norm", "grad_norm_quarantine", "kl",
                             "ratio_mean", "clip_frac", "cos_in", "cos_out", "frac_fired", "step_cos", "routed_frac",
                             "absorb_frac", "score_mean") if k in m}
    rec["advantage"] = [r["advantage"] for r in rows]
    rec["trained"] = [r["trained"] for r in rows]
    for k in ("route_score", "align_score"):
        if any(k in r for r in rows):
            rec[k] = [r.get(k) for r in rows]
    if margins:
        rec["erase_margin"] = min(margins)
    if any("region" in r for r in rows):
        st = steps[step]
        rec.update(route_decisions(rows, [(i, tuple(c)) for i, c in zip(st["problem_ids"], st["completions"])]))
    for block in ("deployed", "quarantine"):
        norms = module_norms(tr, block)
        rec[f"module_norms_{block}"] = norms
        rec[f"norm_{block}"] = math.sqrt(sum(n * n for n in norms))
    return rec


def route_decisions(rows: list[dict], keys: list[tuple]) -> dict:
    """Route's decisions up to ties between identical rollouts (same problem, same completion ids: the same
    gradient, so which of them is routed changes no update, and top-k may pick either): per distinct trained
    rollout in order of first appearance, its copies' regions, sorted; and the margin, the smallest gap
    between the score of a routed rollout and that of an unrouted rollout that is not identical to it."""
    groups: dict[tuple, list[str]] = {}
    for r, k in zip(rows, keys):
        if r.get("region") is not None:
            groups.setdefault(k, []).append(r["region"])
    routed = [(r["route_score"], k) for r, k in zip(rows, keys) if r.get("region") == "route"]
    rest = [(r["route_score"], k) for r, k in zip(rows, keys) if r.get("region") in ("keep", "absorb")]
    gaps = [a - b for a, ka in routed for b, kb in rest if ka != kb]
    return dict(route_decisions=[",".join(sorted(g)) for g in groups.values()], route_margin=min(gaps, default=1.0))


def replay(arm: str, data: dict, out: Path, lr_scale: float = 1.0, break_adv: bool = False,
           sample: bool = False, steps: int = STEPS) -> tuple[list[dict], dict[str, Tensor]]:
    """The arm's records over the stored steps, and its adapter tensors after them."""
    tr = trainer(arm, out, lr_scale)
    if sample:
        tr.train_set = [data["pool"][i] for i in data["pool_order"]]
    with stored_rollouts(tr, data["steps"], data["pool"], sample=sample, break_adv=break_adv):
        recs = [run_step(tr, s, data["steps"]) for s in range(steps)]
    return recs, ad.adapter_state_dict(tr.model)


# ---- comparison ----------------------------------------------------------------------------------------------

def rel_err(a, b, key: str) -> float:
    """|a - b| over the quantity's scale (see the module docstring); inf where an exact quantity differs."""
    if key in EXACT or a is None or b is None or isinstance(a, (bool, str)):
        return 0.0 if a == b else math.inf
    if isinstance(a, list) or isinstance(b, list):
        if not (isinstance(a, list) and isinstance(b, list)) or len(a) != len(b):
            return math.inf
        if key in MAGNITUDE:  # a vector of norms: against its largest entry
            scale = max([abs(x) for x in b] + [0.0])
            return max([abs(x - y) for x, y in zip(a, b)] + [0.0]) / scale if scale else \
                (0.0 if a == b else math.inf)
        return max([rel_err(x, y, key) for x, y in zip(a, b)] + [0.0])
    scale = 1.0 if key in COSINE else max(abs(a), abs(b))
    return abs(a - b) / scale if scale else 0.0


def tensor_err(a: Float[Tensor, "..."], b: Float[Tensor, "..."]) -> float:
    """|a - b| over |b| (Euclidean norms; 0 when both are zero)."""
    scale, diff = float(b.norm()), float((a - b).norm())
    return diff / scale if scale else (0.0 if diff == 0 else math.inf)


def compare(arm: str, got: list[dict], want: list[dict], tol: float) -> tuple[tuple[float, str], list[str]]:
    """((worst relative error, where), mismatches) of an arm's records; tol=0 asks for equality."""
    worst, bad = (0.0, ""), []
    assert len(got) == len(want), f"{arm}: {len(got)} steps recorded, trace has {len(want)}"
    for s, (g, w) in enumerate(zip(got, want)):
        if set(g) != set(w):
            bad.append(f"{arm} step {s}: recorded {sorted(set(g) ^ set(w))} on one side only")
        for k in sorted(set(g) & set(w)):
            assert k in EXACT + COSINE + MAGNITUDE, f"{k}: no comparison rule"
            e = rel_err(g[k], w[k], k) if tol else (0.0 if g[k] == w[k] else math.inf)
            if e > tol:
                shown = (g[k], w[k]) if not isinstance(g[k], list) else (str(g[k][:4]) + "...", str(w[k][:4]) + "...")
                bad.append(f"{arm} step {s} {k}: {shown[0]} vs trace {shown[1]} (rel {e:.2e})")
            elif e > worst[0]:
                worst = (e, f"{arm} step {s} {k}")
    return worst, bad


# ---- writing -------------------------------------------------------------------------------------------------

def sample_and_grade(out: Path) -> dict:
    """A vanilla run of STEPS steps that samples and grades for real; returns the rollouts it trained on."""
    tr = trainer("vanilla", out / "sampled")
    pool = {str(p["id"]): p for p in tr.train_set}
    assert len(pool) == len(tr.train_set), "problem ids repeat in the training pool"
    steps: list[dict] = []
    real_rollouts, real_grade = tr.rollouts, grpo.grade_problems

    def rollouts(step: int):
        [(probs, pids, comps, teacher)] = real_rollouts(step)
        steps.append(dict(problem_ids=[str(p["id"]) for p in probs], completions=comps,
                          prompt_ids={str(p["id"]): q for p, q in zip(probs, pids)}))
        return [(probs, pids, comps, teacher)]

    def grade(probs, texts):
        grades = real_grade(probs, texts)
        steps[-1].update(texts=list(texts), grades=grades)
        return grades

    tr.rollouts, grpo.grade_problems = rollouts, grade
    try:
        recs = [run_step(tr, s, steps) for s in range(STEPS)]
    finally:
        del tr.rollouts
        grpo.grade_problems = real_grade
    return dict(pool=pool, pool_order=[str(p["id"]) for p in tr.train_set], steps=steps, sampled=recs)


def extract_vhack() -> dict:
    """The v_hack files of the erase and route arms, by scripts/extract_vhack_grad.py from the organism pairs."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import extract_vhack_grad

    metas = {}
    for arm, q in (("erase", "shared"), ("route", "own")):
        metas[arm] = extract_vhack_grad.main(["--model", ORGANISM, "--pairs", "data/pairs/hack_pairs.md#organism",
                                              "--quarantine", q, "--device", "cpu", "--out", str(VHACK[arm])])
    return metas


def write(tmp: Path) -> None:
    GOLDEN.mkdir(parents=True, exist_ok=True)
    vmeta = extract_vhack()
    data = sample_and_grade(tmp)
    sampled = data.pop("sampled")
    trace: dict = dict(meta=dict(environment(), organism=ORGANISM, organism_sha256=organism_sha256(),
                                 recipe=RECIPE, args=args_defaults(), route_frac=ROUTE_FRAC, steps=STEPS,
                                 vhack={a: {k: m[k] for k in ("n_pairs", "fit_sign_acc", "heldout_sign_acc") if k in m}
                                        for a, m in vmeta.items()},
                                 written=time.strftime("%Y-%m-%d %H:%M:%S")), arms={})
    tensors = {}
    for arm in ARMS:
        recs, state = replay(arm, data, tmp / "replay")
        trace["arms"][arm] = recs
        tensors.update({f"{arm}/{k}": v.contiguous() for k, v in state.items()})
    worst, bad = compare("vanilla (replayed vs sampled)", trace["arms"]["vanilla"], sampled, 0.0)
    assert not bad, "replaying the sampled run's rollouts did not reproduce it exactly:\n" + "\n".join(bad[:10])
    check_written(trace)
    (GOLDEN / "rollouts.json").write_text(json.dumps(data) + "\n")
    (GOLDEN / "trace.json").write_text(json.dumps(trace, indent=1) + "\n")
    save_file(tensors, str(GOLDEN / "adapters.safetensors"))
    print(f"wrote {GOLDEN.relative_to(ROOT)}/ (trace.json, rollouts.json, adapters.safetensors, vhack_*.safetensors) "
          f"on {trace['meta']['cpu_model']}, torch {trace['meta']['torch']}. Now say why in RESEARCH_JOURNAL.md.")


def rerecord(tmp: Path) -> None:
    """Replay the stored rollouts with the current code and write trace.json and adapters.safetensors again; the
    rollouts and the v_hack files stay. For a change of float rounding only: the current code must first reproduce
    the stored trace within the tolerance (the gate without its exact part), and a sampled vanilla run must sample
    the stored completions token for token and equal the new records exactly."""
    trace, data, _ = load_golden()
    old_args = dict(trace["meta"]["args"])
    trace["meta"]["args"] = args_defaults()
    tolerance_part(trace, data, load_golden()[2], tmp / "check", None)
    new = {arm: replay(arm, data, tmp / "replay") for arm in ARMS}
    sampled, _ = replay("vanilla", data, tmp / "sampled", sample=True, steps=SAMPLED_STEPS)
    _, bad = compare("vanilla (sampled vs replayed)", sampled, new["vanilla"][0][:SAMPLED_STEPS], 0.0)
    assert not bad, "a sampled run does not equal the replayed one exactly:\n  " + "\n  ".join(bad[:10])
    trace["arms"] = {arm: recs for arm, (recs, _) in new.items()}
    check_written(trace)
    trace["meta"].update(environment(), rerecorded=time.strftime("%Y-%m-%d %H:%M:%S"), args_before_rerecord=old_args)
    (GOLDEN / "trace.json").write_text(json.dumps(trace, indent=1) + "\n")
    save_file({f"{arm}/{k}": v.contiguous() for arm, (_, state) in new.items() for k, v in state.items()},
              str(GOLDEN / "adapters.safetensors"))
    print(f"rewrote {GOLDEN.relative_to(ROOT)}/trace.json and adapters.safetensors from the stored rollouts on "
          f"{trace['meta']['cpu_model']}, torch {trace['meta']['torch']}. Now say why in RESEARCH_JOURNAL.md.")


def check_written(trace: dict) -> None:
    """The trace is worth keeping: every arm trains on every step, route routes on every step, the quarantine
    moves only under route, and no recorded decision sits within MIN_MARGIN of its switch."""
    for arm, recs in trace["arms"].items():
        for s, r in enumerate(recs):
            assert r["frac_trained"] > 0, f"{arm} step {s} trained on nothing: pick another seed"
            if arm == "route":
                assert r["routed_frac"] > 0, f"route step {s} routed nothing"
                assert r["route_margin"] >= MIN_MARGIN, f"route step {s}: margin {r['route_margin']:.1e}: pick another seed"
            if arm == "erase":
                assert r["erase_margin"] >= MIN_MARGIN, f"erase step {s}: margin {r['erase_margin']:.1e}: pick another seed"
                assert r["frac_fired"] > 0, f"erase step {s} never fired"
        assert (recs[-1]["norm_quarantine"] > 0) == (arm == "route"), f"{arm}: quarantine norm {recs[-1]['norm_quarantine']}"


# ---- the gate ------------------------------------------------------------------------------------------------

def load_golden() -> tuple[dict, dict, dict[str, Tensor]]:
    for f in ("trace.json", "rollouts.json", "adapters.safetensors", *(p.name for p in VHACK.values())):
        assert (GOLDEN / f).is_file(), f"data/golden/{f} missing: run scripts/verify_golden_trace.py --write"
    trace = json.loads((GOLDEN / "trace.json").read_text())
    data = json.loads((GOLDEN / "rollouts.json").read_text())
    return trace, data, load_file(str(GOLDEN / "adapters.safetensors"))


def tolerance_part(trace: dict, data: dict, tensors: dict[str, Tensor], tmp: Path, brk: str | None) -> tuple:
    """Every arm replayed from the stored rollouts against the trace within RTOL: ((worst record error, where),
    (worst final tensor error, where), tensors compared); raises AssertionError naming the first mismatches."""
    meta = trace["meta"]
    assert meta["organism_sha256"] == organism_sha256(), \
        f"{ORGANISM} is not the organism the trace was written with ({meta['organism_sha256'][:12]})"
    assert meta["recipe"] == RECIPE, f"the recipe differs from the trace's: {meta['recipe']} vs {RECIPE}"
    changed = {k: (v, meta["args"].get(k)) for k, v in args_defaults().items() if meta["args"].get(k) != v}
    assert not changed, f"grpo.RunConfig defaults the recipe relies on changed since the trace was written (now, then): {changed}"
    worst, bad, t_err, n = (0.0, ""), [], (0.0, ""), 0
    for arm in ARMS:
        recs, state = replay(arm, data, tmp, lr_scale=1.01 if brk == "lr" else 1.0, break_adv=brk == "adv")
        w, b = compare(arm, recs, trace["arms"][arm], RTOL)
        worst, bad = max(worst, w, key=lambda x: x[0]), bad + b
        want = {k.split("/", 1)[1]: v for k, v in tensors.items() if k.startswith(f"{arm}/")}
        assert set(want) == set(state), f"{arm}: adapter tensors differ in names from the trace's"
        for k, v in state.items():
            e = tensor_err(v, want[k])
            n += 1
            if e > RTOL:
                bad.append(f"{arm} final {k}: rel {e:.2e}")
            elif e > t_err[0]:
                t_err = (e, f"{arm} {k}")
    if bad:
        raise AssertionError(f"{len(bad)} quantities differ from data/golden/trace.json (first 12):\n  "
                             + "\n  ".join(bad[:12]))
    return worst, t_err, n


def gate(tmp: Path, brk: str | None) -> None:
    t0 = time.time()
    trace, data, tensors = load_golden()
    meta = trace["meta"]
    worst, t_err, n = tolerance_part(trace, data, tensors, tmp, brk)
    env = environment()
    same = all(env[k] == meta[k] for k in ("cpu_model", "torch", "cpu_capability"))
    if same:
        recs, _ = replay("vanilla", data, tmp / "sampled", sample=True, steps=SAMPLED_STEPS)
        _, b = compare("vanilla (sampled)", recs, trace["arms"]["vanilla"][:SAMPLED_STEPS], 0.0)
        assert not b, "the sampled run differs from the trace on the CPU model that wrote it:\n  " + "\n  ".join(b[:12])
        sampled = f"a {SAMPLED_STEPS}-step sampled vanilla run equal to the trace exactly (same CPU model, torch and kernels)"
    else:
        sampled = (f"sampled run skipped: this is {env['cpu_model']}, torch {env['torch']}, {env['cpu_capability']} "
                   f"kernels; the trace was written on {meta['cpu_model']}, torch {meta['torch']}, "
                   f"{meta['cpu_capability']} kernels")
    r = trace["arms"]["route"]
    print(f"PASS golden_trace: {STEPS} steps x {len(ARMS)} arms (vanilla, erase, route) replayed from "
          f"{len(data['steps'][0]['completions'])} stored rollouts a step; step records within rel {worst[0]:.1e} "
          f"({worst[1] or '-'}), {n} final adapter tensors within rel {t_err[0]:.1e} ({t_err[1] or '-'}; tolerance "
          f"{RTOL:.0e}); routed fractions "
          f"{[x['routed_frac'] for x in r]} equal; {sampled}; {time.time() - t0:.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", action="store_true", help="sample, grade, extract v_hack and write data/golden/")
    ap.add_argument("--rerecord", action="store_true",
                    help="write trace.json and adapters.safetensors again from the stored rollouts (rounding changes)")
    ap.add_argument("--break", dest="brk", choices=("lr", "adv"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as t, stable_bases():
        if a.write:
            write(Path(t))
        elif a.rerecord:
            rerecord(Path(t))
        else:
            try:
                gate(Path(t), a.brk)
            except AssertionError as e:
                print(f"FAIL golden_trace: {e}")
                sys.exit(1)


if __name__ == "__main__":
    main()
