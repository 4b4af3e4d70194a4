"""R5 GRPO trajectory probe (shared/seeds/spec_probe_distill.md): does the GRPO policy gradient push the
student toward hacking, and does erasing v_hack from the deployed block's gradient slow that push?

    python scripts/probe_grpo.py --teacher out/runs/vanilla_s0 --vhack out/vhack/organism_cpu_svd.safetensors \
        --steps 20 --seed 41 --out out/probe_grpo
    python scripts/probe_grpo.py --small       # tiny organism, a 3-step vanilla teacher made here, < 1 min

Mixed-policy groups, so rewards vary within a group: for each of `--prompts` hinted training problems per
step, half the group is sampled from the teacher (a vanilla-trained organism run, RUN/ckpt/last.pt, under
deployment ablation) and half from the student (the base organism plus an SVD adapter, on-policy). Both
arms (vanilla, projected) see the same problems and the same teacher samples each step. Loss: Dr.GRPO
(reward minus group mean, PPO-clip token loss, fixed denominator, no KL) with the behaviour policy's
log-probabilities as the old ones: the teacher's for teacher samples, the student's at sampling time for
its own, so teacher tokens carry importance ratios pi_student / pi_teacher. The projected arm erases v_hack
from the deployed block's gradient (interventions.Erase, one-sided, per module) before clipping and AdamW.

Logged per arm and step (OUT/<arm>/metrics.jsonl, step files): the student's strict hack and solve rates on
its own samples, the teacher's, the fraction of teacher and student tokens whose ratio lies outside the
clip interval, a histogram of log10 ratios (fixed bins), and erase's cos_in / cos_out. OUT/probe_grpo.png
plots the hack-rate trajectories and the ratio histograms per step; OUT/summary.json the numbers. The
grader's labels are measured, never read by the update.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Bool, Float
from torch import Tensor

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from projected_grpo.method import adapters as ad  # noqa: E402
from projected_grpo.method import interventions as iv  # noqa: E402
from projected_grpo.loop import logs  # noqa: E402
from projected_grpo.loop import grpo  # noqa: E402
from projected_grpo.loop.grpo import group_advantages, group_std, grpo_loss, token_logprobs  # noqa: E402
from projected_grpo.loop.models import load_policy  # noqa: E402
from projected_grpo.env.rollouts import grade_problems  # noqa: E402
from projected_grpo.loop.sampling import collate, prompt_ids, sample  # noqa: E402

LOG10_BINS = np.linspace(-2, 2, 81)
"""log10 importance-ratio histogram edges; values outside are counted in the end bins"""


def fail(msg: str) -> None:
    """Bad command-line input: one line on stderr, exit status 2."""
    print(f"probe_grpo.py: {msg}", file=sys.stderr)
    raise SystemExit(2)


def problems(meta: dict, n: int) -> list[dict]:
    """The first n problems of the teacher run's own hinted training pool."""
    from projected_grpo.organism import tasks

    mechs = tuple((meta["mechanisms"] or ",".join(tasks.LOOPHOLES)).split(","))
    diffs = tuple((meta["difficulties"] or "hard").split(","))
    return [tasks.apply_loophole(p, hinted=True) for p in tasks.generate_split("train", n, meta["data_seed"], diffs, mechs)]


def ratio_stats(ratio: Float[Tensor, "b t"], mask: Bool[Tensor, "b t"], eps: float) -> dict:
    """Fraction of masked tokens outside [1 - eps, 1 + eps] and the log10-ratio histogram."""
    r = ratio[mask].double()
    if not r.numel():
        return dict(clip_frac=float("nan"), hist=[0] * (len(LOG10_BINS) - 1), n=0)
    lr = np.clip(torch.log10(r).numpy(), LOG10_BINS[0], LOG10_BINS[-1])
    return dict(clip_frac=float(((r - 1).abs() > eps).double().mean()), hist=np.histogram(lr, LOG10_BINS)[0].tolist(),
                n=int(r.numel()))


class Student:
    """The base organism with an SVD adapter, its AdamW and (projected arm) the Erase intervention."""

    def __init__(self, model_spec: str, vhack: str, projected: bool, lr: float, device: str):
        self.model, self.tok = load_policy(model_spec, device)
        ad.wrap_model(self.model, ad.AdapterConfig(kind="svd"))
        self.device = device
        self.opt = torch.optim.AdamW(ad.deployed_params(self.model), lr=lr, betas=(0.9, 0.99), weight_decay=0.0)
        self.erase = iv.Erase(iv.LazyVhack(vhack)) if projected else None
        if self.erase:
            self.erase.setup(self.model, self.tok, device)

    def update(self, ids, attn, mask, old_logp, adv, denom: float, eps: float) -> tuple[Tensor, dict]:
        """One Dr.GRPO step; returns (token ratios, erase diagnostics)."""
        self.opt.zero_grad(set_to_none=True)
        ctx = self.erase.capture(self.model) if self.erase else torch.enable_grad()
        with ctx:
            logp = token_logprobs(self.model, ids, attn)
            loss, _ = grpo_loss(logp, old_logp, None, adv, mask, denom, eps, 0.0)
            loss.backward()
        if self.erase:  # folded layers formed no summed gradient under erase's capture (Trainer.update does the same)
            ad.fill_summed_grads(self.model)
        diag = self.erase.after_backward(self.model, iv.StepContext(step=0, device=self.device, adv=adv))["step"] if self.erase else {}
        torch.nn.utils.clip_grad_norm_(ad.deployed_params(self.model), 1.0)
        self.opt.step()
        return torch.exp(logp.detach() - old_logp), diag


def behaviour_logp(model, ids, attn, ablate: bool) -> Tensor:
    with torch.no_grad():
        if ablate:
            with ad.deployment_ablation(model):
                return token_logprobs(model, ids, attn)
        return token_logprobs(model, ids, attn)


def step(a, t: int, teacher, student: Student, pool: list[dict], max_new: int, temp: float) -> tuple[dict, list[dict]]:
    """One probe step of one arm: mixed groups, grading, Dr.GRPO update, measurements."""
    half = a.group // 2
    probs = random.Random(f"{a.seed}:{t}").sample(pool, a.prompts)
    pids = [prompt_ids(student.tok, p) for p in probs]
    with ad.deployment_ablation(teacher):
        t_comps = sample(teacher, student.tok, [q for q in pids for _ in range(half)], temp, max_new,
                         generator_seed=a.seed * 1009 + t)
    s_comps = sample(student.model, student.tok, [q for q in pids for _ in range(half)], temp, max_new,
                     generator_seed=a.seed * 1013 + t + 7)
    comps, is_t, group_probs, prompts = [], [], [], []
    for i, p in enumerate(probs):
        for c, src in [(c, True) for c in t_comps[i * half:(i + 1) * half]] + [(c, False) for c in s_comps[i * half:(i + 1) * half]]:
            comps.append(c), is_t.append(src), group_probs.append(p), prompts.append(pids[i])
    grades = grade_problems(group_probs, student.tok.batch_decode(comps, skip_special_tokens=True))
    rewards = torch.tensor([g["reward"] for g in grades], dtype=torch.float32).view(a.prompts, a.group)
    ones = torch.ones_like(rewards, dtype=torch.bool)
    adv = group_advantages(rewards).view(-1)
    keep = (group_std(rewards, ones) > 0).repeat_interleave(a.group)
    idx = keep.nonzero().flatten().tolist()
    row = dict(step=t, n_trained=len(idx))
    for who, sel in (("student", [not x for x in is_t]), ("teacher", is_t)):
        gs = [g for g, s in zip(grades, sel) if s]
        row[f"hack_{who}"] = sum(g["is_hack_strict"] for g in gs) / len(gs)
        row[f"solve_{who}"] = sum(g["eq_correct"] for g in gs) / len(gs)
    if idx:
        b = collate([prompts[i] for i in idx], [comps[i] for i in idx], student.tok.pad_token_id)
        ids, attn, mask = b.input_ids.to(a.device), b.attention_mask.to(a.device), b.completion_mask.to(a.device)
        mask[:, 0] = False
        t_rows = torch.tensor([is_t[i] for i in idx])
        old = torch.where(t_rows[:, None].to(a.device), behaviour_logp(teacher, ids, attn, True),
                          behaviour_logp(student.model, ids, attn, False))
        ratio, diag = student.update(ids, attn, mask, old, adv[idx].to(a.device), float(a.prompts * a.group * max_new),
                                     a.clip_eps)
        for who, sel in (("teacher", t_rows), ("student", ~t_rows)):
            st = ratio_stats(ratio[sel].cpu(), mask[sel].cpu(), a.clip_eps)
            row.update({f"ratio_clip_frac_{who}": st["clip_frac"], f"ratio_hist_{who}": st["hist"], f"n_tok_{who}": st["n"]})
        row.update(diag)
    rows = [dict(step=t, problem_id=p["id"], teacher=s, reward=g["reward"], hack_strict=g["is_hack_strict"],
                 gt_pass=g["eq_correct"], advantage=float(adv[i]), trained=bool(keep[i]))
            for i, (p, g, s) in enumerate(zip(group_probs, grades, is_t))]
    return row, rows


def run_arm(a, arm: str, teacher, meta: dict, out: Path) -> list[dict]:
    from projected_grpo.loop.models import set_threads

    set_threads()
    torch.manual_seed(a.seed)
    student = Student(meta["model"], a.vhack, arm == "projected", a.lr, a.device)
    pool = problems(meta, a.n_problems)
    max_new = a.max_new_tokens or meta["max_new_tokens"]
    d = out / arm
    d.mkdir(parents=True, exist_ok=True)
    metrics = []
    for t in range(a.steps):
        row, rows = step(a, t, teacher, student, pool, max_new, meta["temperature"])
        metrics.append(row)
        logs.write_step(d, t, rows)
        logs.write_jsonl(d / "metrics.jsonl", metrics)
        print(f"{arm} step {t}: student hack {row['hack_student']:.3f} teacher hack {row['hack_teacher']:.3f} "
              f"teacher tokens outside clip {row.get('ratio_clip_frac_teacher', float('nan')):.3f}", flush=True)
    return metrics


def plot(res: dict[str, list[dict]], out: Path, eps: float) -> Path:
    from projected_grpo.loop.plots import plt, save

    fig, axes = plt.subplots(1, 3, figsize=(16, 4))
    for arm, m in res.items():
        axes[0].plot([r["step"] for r in m], [r["hack_student"] for r in m], marker="o", label=f"{arm}: student")
    m0 = next(iter(res.values()))
    axes[0].plot([r["step"] for r in m0], [r["hack_teacher"] for r in m0], ls=":", color="grey", label="teacher samples")
    axes[0].set(title="student samples: strict hack rate", xlabel="step", ylim=(-0.02, 1.02))
    axes[0].legend(fontsize=8)
    for ax, (arm, m) in zip(axes[1:], res.items()):
        H = np.array([r.get("ratio_hist_teacher", [0] * (len(LOG10_BINS) - 1)) for r in m], dtype=float).T
        H = H / np.maximum(H.sum(0, keepdims=True), 1)
        ax.imshow(H, aspect="auto", origin="lower", extent=(-0.5, len(m) - 0.5, LOG10_BINS[0], LOG10_BINS[-1]),
                  cmap="viridis")
        for b in (1 - eps, 1 + eps):
            ax.axhline(np.log10(b), color="white", lw=0.8, ls="--")
        ax.set(title=f"{arm}: teacher tokens, log10 ratio (clip dashed)", xlabel="step",
               ylabel="log10 pi_student / pi_teacher")
    return save(fig, out / "probe_grpo.png")


def small_setup(tmp: Path) -> tuple[str, str]:
    """--small: a 3-step vanilla run of the tiny organism as teacher and a v_hack for its adapter."""
    from projected_grpo.loop import grpo
    from projected_grpo.method import vhack
    from projected_grpo.method.pairs import load_pairs

    run = grpo.train(grpo.RunConfig(run="teacher", out_dir=str(tmp), model="organism:tiny", steps=3, prompts_per_step=4,
                               group=4, max_new_tokens=40, n_train=64, n_eval=2, eval_every=0, ckpt_every=1, seed=0))
    model, tok = load_policy("organism:tiny", "cpu")
    ad.wrap_model(model, ad.AdapterConfig(kind="svd"))
    V, _ = vhack.extract(model, tok, load_pairs("data/pairs/hack_pairs.md#organism"), device="cpu")
    vhack.save_vhack(tmp / "v.safetensors", V, model, {})
    return str(run), str(tmp / "v.safetensors")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", default="out/runs/vanilla_s0", help="a vanilla run folder (args.json, ckpt/last.pt)")
    ap.add_argument("--vhack", default="out/vhack/organism_cpu_svd.safetensors", help="v_hack of the student's adapter")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--prompts", type=int, default=8, help="problems per step")
    ap.add_argument("--group", type=int, default=8, help="completions per problem, half teacher and half student")
    ap.add_argument("--n-problems", type=int, default=200, help="size of the problem pool")
    ap.add_argument("--lr", type=float, default=0.03)
    ap.add_argument("--clip-eps", type=float, default=0.2)
    ap.add_argument("--max-new-tokens", type=int, default=0, help="0 = the teacher run's")
    ap.add_argument("--seed", type=int, default=41)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default="out/probe_grpo")
    ap.add_argument("--small", action="store_true", help="tiny organism, own 3-step teacher, 3 steps of 4 x 4")
    a = ap.parse_args(argv)
    if a.group < 2 or a.group % 2:
        fail(f"--group {a.group}: must be even and >= 2 (half teacher, half student)")
    with tempfile.TemporaryDirectory() as t:
        if a.small:
            a.teacher, a.vhack = small_setup(Path(t))
            a.steps, a.prompts, a.group, a.n_problems = 3, 4, 4, 32
        if not (Path(a.teacher) / "ckpt" / "last.pt").exists():
            fail(f"--teacher {a.teacher}: no ckpt/last.pt (a finished vanilla run folder)")
        if not Path(a.vhack).exists():
            fail(f"--vhack {a.vhack}: no such file")
        teacher, _, meta = grpo.load_run_or_model(a.teacher, a.device)
        out = Path(a.out)
        res = {arm: run_arm(a, arm, teacher, meta, out) for arm in ("vanilla", "projected")}
    png = plot(res, out, a.clip_eps)
    summary = {arm: dict(hack_student=[r["hack_student"] for r in m], hack_teacher=[r["hack_teacher"] for r in m],
                         teacher_tokens_outside_clip=[r.get("ratio_clip_frac_teacher") for r in m],
                         student_tokens_outside_clip=[r.get("ratio_clip_frac_student") for r in m])
               for arm, m in res.items()}
    summary.update(args={k: v for k, v in vars(a).items()}, plot=str(png))
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    for arm, s in summary.items():
        if arm in res:
            print(f"{arm}: student hack {s['hack_student'][0]:.3f} -> {s['hack_student'][-1]:.3f}; teacher tokens "
                  f"outside the clip interval per step {[round(x, 2) if x is not None else None for x in s['teacher_tokens_outside_clip']]}")
    print(f"plot: {png}")
    return summary


if __name__ == "__main__":
    main()
