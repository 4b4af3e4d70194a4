"""The offline direction screen (issue 29, item 3): how well each direction's routing score picks out live hacks
in a fixed pool of vanilla rollouts. Nothing trains on it; the grader's labels are read here as measurement only.

    mkdir -p out/screen_pool && tar xzf docs/results/2026-12-06_organisms/emergence_2core/runs.part0.tgz -C out/screen_pool
    python scripts/screen_directions.py --model organism:cpu --k 32 --out docs/results/2026-12-06_direction_screen \
        --runs out/screen_pool/emergence_pinned/vanilla_s0,out/screen_pool/emergence_pinned/vanilla_s1

(docs/results/2026-12-06_direction_screen/command.sh: also the v_hack files.) The pool: every trained rollout (one of
a group whose rewards vary) of the given vanilla runs of one organism, made on this kind of machine. Each run is
replayed step by step from its step logs: the logged problems, the completions' token ids, the logged advantages,
through grpo.loss_backward, per-block clipping and the run's AdamW and schedule (a grpo.Trainer of the run's
arguments), on the adapter route trains (the own-basis quarantine; its deployed block is vanilla's, the full-rank
singular-value offsets). So each rollout's routing score is taken as route takes it (interventions.routing_scores of
its own deployed-block gradient from capture_per_sample_grads) against the policy that sampled it. Token ids come from
the logged texts, except where re-tokenising gives another segmentation than the sampled one (the logged length or
the step's logged gradient norm disagrees): such a step is sampled again from the replayed policy at its seed
(step_ids). The replay's deployed gradient norm is compared with the run's logged one at every step (reported); a
run made on another kind of CPU does not replay exactly.

Scorers:
    v_grad       route's v_hack file for the model (arms.vhack_path("own"))
    placebo      the placebo pairs' v_grad (arms.vhack_path("placebo-own"))
    random d     interventions.random_direction(v_grad, d), d = 0 .. K-1: normalised per module as v_grad is
    -x           each of the above negated (route-negated, route-random-negated); AUROC(-x) = 1 - AUROC(x)
    v_act        rebound-adv's activation score (interventions.activation_scores; not a gradient direction)
    advantage    the rollout's advantage: a scorer that knows only the reward

Per scorer: AUROC of the score against the strict-hack label over the pool, with a 95% bootstrap interval (steps
resampled with replacement within each run: the rollouts of one step share a policy and their groups); precision at
route's routed fraction (in each step the top round(f b) scores are routed, f = the route arm's --route-frac in
the registry; strict hacks among all routed rollouts); cosine with v_grad over all modules concatenated.
Writes screen.json, screen.md and screen.png to --out.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Float
from scipy.stats import rankdata
from torch import Tensor

from projected_grpo.loop import grpo, logs
from projected_grpo.loop.config import RunConfig, with_fields
from projected_grpo.loop.models import weights_id
from projected_grpo.loop.sampling import collate, prompt_ids
from projected_grpo.method import adapters as ad
from projected_grpo.method import arms
from projected_grpo.method import interventions as iv
from projected_grpo.method.vhack import load_vact, load_vhack
from projected_grpo.organism.pinned import file_sha256, tensors_sha256

PHASES = ((0, 20), (20, 40), (40, 60))
REPLAY_RTOL = 1e-6
"""A replayed step whose deployed gradient norm is further than this from the logged one was given other ids."""


def fail(msg: str) -> None:
    """Bad input: one line on stderr, exit status 2."""
    print(f"screen_directions: {msg}", file=sys.stderr)
    raise SystemExit(2)


def route_frac() -> float:
    """The route arm's --route-frac in the registry."""
    return float(arms.arm("route").overrides["route_frac"])


# ---- the pool: a vanilla run replayed ---------------------------------------------------------------------------

def completion_ids(tok, text: str, length: int) -> list[int] | None:
    """The sampled ids of a logged completion read from its text: re-tokenised, with EOS when the logged length
    counts one (a completion cut at max_new_tokens has none); None when that does not give the logged length (the
    policy sampled a segmentation the tokenizer would not choose)."""
    enc = tok.encode(text, add_special_tokens=False)
    if len(enc) + 1 == length:
        return enc + [tok.eos_token_id]
    return enc if len(enc) == length else None


def replay_trainer(run: Path, model: str, out: Path) -> grpo.Trainer:
    """A Trainer of the run's arguments on the own-basis quarantine adapter, with `model` (the run's weights, checked
    by their hash: a run's args.json may name a folder of another checkout), logging nowhere that matters."""
    saved = logs.read_args(run)
    fields = {f.name for f in dataclasses.fields(RunConfig)} - {"intervention"}
    cfg = with_fields(RunConfig(), **{k: v for k, v in saved.items() if k in fields})
    cfg = with_fields(cfg, model=model, quarantine="own", out_dir=str(out), run=run.name, device="cpu", eval_every=0)
    tr = grpo.Trainer(cfg)
    assert not ad.axis_params(tr.model), "a vanilla replay has no seeded axis"
    return tr


def trained_batch(tr: grpo.Trainer, rows: list[dict], comps: list[list[int]], problems: dict[str, dict]) -> dict:
    """The trained rollouts of a step as the trainer collates them, with their logged advantages."""
    keep = [i for i, r in enumerate(rows) if r["trained"]]
    b = collate([prompt_ids(tr.tok, problems[rows[i]["problem_id"]]) for i in keep], [comps[i] for i in keep],
                tr.tok.pad_token_id)
    mask = b.completion_mask
    mask[:, 0] = False
    return dict(ids=b.input_ids, attn=b.attention_mask, mask=mask,
                adv=torch.tensor([rows[i]["advantage"] for i in keep], dtype=torch.float32))


def backward(tr: grpo.Trainer, batch: dict) -> None:
    """The step's loss and its backward, as Trainer.step runs it (one inner iteration: the ratio is 1)."""
    a = tr.args
    grpo.loss_backward(tr.model, grpo.micro_batches(len(batch["adv"]), grpo.pass_rows(a, tr.device)), batch["ids"], batch["attn"],
                       batch["mask"], batch["adv"], None, None, float(a.prompts_per_step * a.group * a.max_new_tokens),
                       a.clip_eps, a.kl_coef)


def deployed_grad_norm(tr: grpo.Trainer, batch: dict) -> float:
    """Vanilla's gradient for the batch in .grad (the quarantine's dropped, each block clipped); its deployed norm
    before clipping, as the run logged it."""
    tr.opt.zero_grad(set_to_none=True)
    backward(tr, batch)
    for p in ad.quarantine_params(tr.model):
        p.grad = None
    return torch.nn.utils.clip_grad_norm_(ad.deployed_params(tr.model), tr.args.grad_clip).item()


def close(a: float, b: float) -> bool:
    return abs(a - b) <= REPLAY_RTOL * max(abs(b), 1e-30)


def step_ids(tr: grpo.Trainer, step: int, rows: list[dict], problems: dict[str, dict], logged_norm: float
             ) -> tuple[list[list[int]], int, bool]:
    """(completion ids of the step's rows, trained rows whose ids stay approximate, whether the step was sampled
    again). Ids are read from the texts first. A text can be re-tokenised into another segmentation than the one
    sampled, of the same length or not, and the gradient then differs; so unless every row's ids are read and the
    deployed gradient norm equals the logged one, the step is sampled again as the run sampled it (Trainer.rollouts
    at the step's seed, from the replayed policy) and each row whose sampled text equals the logged text takes the
    sampled ids. A row left over keeps its re-tokenised text cut to the logged length."""
    ids = [completion_ids(tr.tok, r["completion"], r["length"]) for r in rows]
    if all(c is not None for c in ids) and close(deployed_grad_norm(tr, trained_batch(tr, rows, ids, problems)),
                                                 logged_norm):
        return ids, 0, False
    [(probs, _, comps, _)] = tr.rollouts(step)
    assert [str(p["id"]) for p in probs] == [r["problem_id"] for r in rows], f"step {step}: other problems drawn"
    texts = tr.tok.batch_decode(comps, skip_special_tokens=True)
    ids = [list(c) if t == r["completion"] else None for c, t, r in zip(comps, texts, rows)]
    approx = sum(c is None for c, r in zip(ids, rows) if r["trained"])
    ids = [c if c is not None else tr.tok.encode(r["completion"], add_special_tokens=False)[: r["length"]]
           for c, r in zip(ids, rows)]
    return ids, approx, True


def replay_step(tr: grpo.Trainer, step: int, rows: list[dict], problems: dict[str, dict], v_act: Tensor,
                logged_norm: float) -> dict:
    """One logged vanilla step. Measured first, with nothing changed: the per-rollout deployed-block gradients of its
    trained rollouts (one backward inside capture_per_sample_grads) and their v_act activation scores. Then the
    step's update exactly as Trainer.step makes it for vanilla (a plain backward of the loss, the quarantine's
    gradient dropped, each block clipped, AdamW, the schedule), so the next step's policy is the run's."""
    out = dict(G={}, act=torch.zeros(0), grad_norm=float("nan"), approx=0, resampled=False)
    if any(r["trained"] for r in rows):
        comps, approx, resampled = step_ids(tr, step, rows, problems, logged_norm)
        batch = trained_batch(tr, rows, comps, problems)
        with torch.no_grad():
            hidden = tr.model(input_ids=batch["ids"], attention_mask=batch["attn"].long(),
                              output_hidden_states=True).hidden_states
            act = iv.activation_scores(iv.completion_means(hidden, batch["mask"]), v_act)
        tr.opt.zero_grad(set_to_none=True)
        with ad.capture_per_sample_grads(tr.model) as mods:
            backward(tr, batch)
        G = {n: m.per_sample_grads()["deployed"].detach().clone() for n, m in mods.items()}
        ad.clear_captured(tr.model)
        gnorm = deployed_grad_norm(tr, batch)
        tr.opt.step()
        out = dict(G=G, act=act, grad_norm=gnorm, approx=approx, resampled=resampled)
    tr.sched.step()
    return out


def pool_of_run(run: Path, model: str, directions: dict[str, dict[str, Tensor]], vhack_path: str, tmp: Path) -> dict:
    """Replay a run; per trained rollout: step, strict-hack label, advantage, v_act score, and each direction's
    routing score; and how faithful the replay was."""
    tr = replay_trainer(run, model, tmp)
    problems = {str(p["id"]): p for p in tr.train_set}
    v_act = load_vact(vhack_path, tr.model).float()
    logged = {m["step"]: m for m in logs.read_jsonl(run / "metrics.jsonl")}
    cols: dict[str, list] = {k: [] for k in ("step", "hack", "adv", "v_act", *directions)}
    dev, approx, resampled = [], 0, 0
    for path in logs.step_files(run):
        rows = logs.read_step(path)
        step = rows[0]["step"]
        r = replay_step(tr, step, rows, problems, v_act, logged[step].get("grad_norm", float("nan")))
        trained = [x for x in rows if x["trained"]]
        if not trained:
            continue
        approx, resampled = approx + r["approx"], resampled + r["resampled"]
        want = logged[step]["grad_norm"]
        dev.append(abs(r["grad_norm"] - want) / max(abs(want), 1e-30))
        cols["step"] += [step] * len(trained)
        cols["hack"] += [bool(x["hack_strict"]) for x in trained]
        cols["adv"] += [float(x["advantage"]) for x in trained]
        cols["v_act"] += r["act"].tolist()
        for name, V in directions.items():
            cols[name] += iv.routing_scores(r["G"], V).tolist()
        note = (" re-sampled" if r["resampled"] else "") + (f", {r['approx']} approximate" if r["approx"] else "")
        print(f"  {run.name} step {step}: {len(trained)} trained, {sum(x['hack_strict'] for x in trained)} strict "
              f"hacks, grad norm {r['grad_norm']:.6g} (logged {want:.6g}){note}", flush=True)
    return dict(cols=cols, grad_norm_rel_dev=dev, ids_approximate=approx, steps_resampled=resampled,
                steps=len(logs.step_files(run)))


# ---- measures ---------------------------------------------------------------------------------------------------

def auroc(score: Float[np.ndarray, " n"], label: np.ndarray) -> float:
    """Mann-Whitney AUROC (ties count half): the chance a random strict hack outscores a random non-hack."""
    r = rankdata(score)
    pos = label.astype(bool)
    n1, n0 = int(pos.sum()), int((~pos).sum())
    return float((r[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def precision_routed(score: np.ndarray, label: np.ndarray, cluster: np.ndarray, frac: float) -> float:
    """Route's rule per step (cluster): the top round(frac b) scores routed; the strict-hack share among all routed."""
    hit = routed = 0
    for c in np.unique(cluster):
        idx = np.flatnonzero(cluster == c)
        k = int(round(frac * len(idx)))
        if k:
            top = idx[torch.topk(torch.from_numpy(score[idx]), k).indices.numpy()]
            hit += int(label[top].sum())
            routed += k
    return hit / max(routed, 1)


def bootstrap_auroc(scores: dict[str, np.ndarray], label: np.ndarray, cluster: np.ndarray, run: np.ndarray,
                    n_boot: int, seed: int = 0) -> dict[str, np.ndarray]:
    """AUROC of each scorer on n_boot resamples of the pool: within each run its steps drawn with replacement."""
    rng = np.random.default_rng(seed)
    members = {c: np.flatnonzero(cluster == c) for c in np.unique(cluster)}
    by_run = {r: [c for c in members if run[members[c][0]] == r] for r in np.unique(run)}
    out = {k: np.empty(n_boot) for k in scores}
    for b in range(n_boot):
        idx = np.concatenate([members[c] for cs in by_run.values() for c in rng.choice(cs, len(cs))])
        for k, s in scores.items():
            out[k][b] = auroc(s[idx], label[idx])
    return out


def cosine_all(a: dict[str, Tensor], b: dict[str, Tensor]) -> float:
    x = torch.cat([a[n][0].double() for n in sorted(a)])
    y = torch.cat([b[n][0].double() for n in sorted(a)])
    return float(x @ y / (x.norm() * y.norm()))


# ---- report -----------------------------------------------------------------------------------------------------

def plot(res: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = res["scorers"]
    rand = [r for r in rows if r["kind"] == "random"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for ax, key, title in ((axes[0], "auroc", "AUROC (strict hack)"),
                           (axes[1], "precision_routed", f"precision at routed fraction {res['route_frac']:g}")):
        ax.hist([r[key] for r in rand], bins=20, color="0.75", label=f"random directions and negations (n={len(rand)})")
        for name, color in (("v_grad", "C3"), ("-v_grad", "C1"), ("placebo", "C0"), ("-placebo", "C9"),
                            ("v_act", "C2"), ("advantage", "k")):
            r = next(x for x in rows if x["name"] == name)
            ax.axvline(r[key], color=color, lw=2, label=f"{name} {r[key]:.3f}")
        if key == "auroc":
            ax.axvline(0.5, color="0.4", ls=":", lw=1)
        else:
            ax.axvline(res["pool"]["hack_share"], color="0.4", ls=":", lw=1, label=f"hack share {res['pool']['hack_share']:.3f}")
        ax.set_title(title)
        ax.legend(fontsize=7)
    fig.suptitle(f"direction screen, {res['organism']['spec']} ({res['organism']['sha256'][:8]}): v_grad's AUROC at "
                 f"percentile {res['v_grad_percentile']:.0f} of {len(rand)} random directions and negations; "
                 f"n = {res['pool']['n']} trained rollouts", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def markdown(res: dict) -> str:
    p = res["pool"]
    lines = [f"# Direction screen: {res['organism']['spec']} (weights {res['organism']['sha256'][:16]})", "",
             f"Command: `{res['command']}`", "",
             f"Pool: {p['n']} trained rollouts ({p['n_hack']} strict hacks, share {p['hack_share']:.3f}) of "
             f"{len(p['runs'])} vanilla runs ({', '.join(p['runs'])}), {p['steps']} logged steps; replay's deployed "
             f"gradient norm within {p['grad_norm_rel_dev_max']:.1e} (relative, max over steps; median "
             f"{p['grad_norm_rel_dev_median']:.1e}) of the logged one; {p['steps_resampled']} steps re-sampled to "
             f"recover token ids, {p['ids_approximate']} completions left with approximate ids. Routed fraction {res['route_frac']:g} per step (route's).", "",
             "AUROC without the advantage's sign: the score times the sign of the rollout's advantage, i.e. the "
             "cosine of the gradient of the rollout's own log-likelihood term alone (what the direction knows beyond "
             "the reward).", "",
             "| scorer | AUROC [95% bootstrap] | precision at routed fraction | cosine with v_grad | AUROC without the "
             "advantage's sign |", "|---|---|---|---|---|"]
    for r in res["scorers"]:
        if r["kind"] == "random":
            continue
        ci = f" [{r['auroc_ci'][0]:.3f}, {r['auroc_ci'][1]:.3f}]" if "auroc_ci" in r else ""
        cos = f"{r['cos_v_grad']:+.3f}" if r["cos_v_grad"] is not None else "-"
        uns = f"{r['auroc_unsigned']:.3f}" if r["auroc_unsigned"] is not None else "-"
        lines.append(f"| {r['name']} | {r['auroc']:.3f}{ci} | {r['precision_routed']:.3f} | {cos} | {uns} |")
    d = res["random"]
    lines += ["", f"Random directions (K = {d['k']}, direction seeds 0..{d['k'] - 1}, and their negations, {2 * d['k']} "
              f"scorers): AUROC mean {d['auroc_mean']:.3f}, sd {d['auroc_sd']:.3f}, range [{d['auroc_min']:.3f}, "
              f"{d['auroc_max']:.3f}], 5-95% [{d['auroc_q05']:.3f}, {d['auroc_q95']:.3f}]; precision mean "
              f"{d['precision_mean']:.3f}, range [{d['precision_min']:.3f}, {d['precision_max']:.3f}]; |cosine with "
              f"v_grad| at most {d['abs_cos_max']:.3f}.",
              f"v_grad's AUROC is above {res['v_grad_percentile']:.1f}% of them (95% bootstrap interval of that "
              f"percentile, the directions held fixed and the pool's steps resampled: [{res['v_grad_percentile_ci'][0]:.1f}, "
              f"{res['v_grad_percentile_ci'][1]:.1f}]). A direction and its negation have AUROCs summing to 1, so the "
              f"random scorers' mean AUROC is 0.5 by construction. Without the advantage's sign: random AUROC sd "
              f"{d['auroc_unsigned_sd']:.3f}, range [{d['auroc_unsigned_min']:.3f}, {d['auroc_unsigned_max']:.3f}]; "
              f"v_grad above {res['v_grad_percentile_unsigned']:.1f}% of them.",
              "", "By phase (AUROC; steps, trained rollouts, strict-hack share):", "",
              "| steps | n | hack share | v_grad | placebo | random median | v_act | advantage |", "|---|---|---|---|---|---|---|---|"]
    for ph in res["phases"]:
        lines.append(f"| {ph['steps'][0]}-{ph['steps'][1] - 1} | {ph['n']} | {ph['hack_share']:.3f} | "
                     f"{ph['v_grad']:.3f} | {ph['placebo']:.3f} | {ph['random_median']:.3f} | {ph['v_act']:.3f} | "
                     f"{ph['advantage']:.3f} |")
    lines += ["", "Files: " + ", ".join(f"{k} sha256 {v['sha256'][:16]}" for k, v in res["vhack"].items()), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", required=True, help="comma-separated vanilla run folders of one organism")
    ap.add_argument("--model", default="organism:cpu", help="the organism the runs trained (checked by weights sha256)")
    ap.add_argument("--vhack", default="", help="v_grad file (default: the route arm's file for --model)")
    ap.add_argument("--placebo", default="", help="placebo v_grad file (default: route-placebo's file for --model)")
    ap.add_argument("--k", type=int, default=32, help="random directions (direction seeds 0 .. k-1)")
    ap.add_argument("--boot", type=int, default=1000, help="bootstrap resamples")
    ap.add_argument("--out", required=True, help="folder for screen.json, screen.md, screen.png")
    a = ap.parse_args(argv)
    t0 = time.time()
    if a.k < 20:
        fail(f"--k {a.k}: at least 20 random directions")
    runs = [Path(r) for r in a.runs.split(",") if r]
    sha = weights_id(a.model)
    for r in runs:
        if not (r / "args.json").is_file() or not logs.step_files(r):
            fail(f"--runs {r}: not a run folder with args.json and step logs")
        arm = json.loads((r / "arm.json").read_text())["intervention"] if (r / "arm.json").is_file() else "none"
        if arm != "none" or not logs.read_args(r).get("loophole", True):
            fail(f"--runs {r}: not a vanilla run (intervention {arm})")
        have = logs.read_run_meta(r, ("model_sha256",))["model_sha256"]
        if have != sha:
            fail(f"--runs {r}: trained on weights {have[:16]}, --model {a.model} is {sha[:16]}")
    paths = dict(v_grad=a.vhack or arms.vhack_path("own", a.model), placebo=a.placebo or arms.vhack_path("placebo-own", a.model))
    for k, p in paths.items():
        if not Path(p).is_file():
            kind = "own" if k == "v_grad" else "placebo-own"
            fail(f"--{'vhack' if k == 'v_grad' else 'placebo'} {p}: no such file (python scripts/extract_vhack_grad.py "
                 f"{' '.join(arms.vhack_extract_args(kind, a.model, 'cpu'))})")
    frac = route_frac()

    with tempfile.TemporaryDirectory() as tmp:
        probe = replay_trainer(runs[0], a.model, Path(tmp))  # for the adapter the files are checked against
        loaded = {k: load_vhack(p, probe.model) for k, p in paths.items()}
        V = {k: {n: v.float() for n, v in vm[0].items()} for k, vm in loaded.items()}
        directions = {"v_grad": V["v_grad"], "placebo": V["placebo"]}
        directions.update({f"random {d}": iv.random_direction(V["v_grad"], d) for d in range(a.k)})
        del probe
        pools = [pool_of_run(r, a.model, directions, paths["v_grad"], Path(tmp)) for r in runs]

    col = {k: np.concatenate([np.asarray(p["cols"][k]) for p in pools]) for k in pools[0]["cols"]}
    run_idx = np.concatenate([np.full(len(p["cols"]["step"]), i) for i, p in enumerate(pools)])
    cluster = run_idx * 100_000 + col["step"]
    label = col["hack"].astype(bool)
    scores = {k: col[k].astype(float) for k in ("v_grad", "placebo", *[f"random {d}" for d in range(a.k)], "v_act", "adv")}
    scores["advantage"] = scores.pop("adv")
    boot = bootstrap_auroc(scores, label, cluster, run_idx, a.boot)

    sign = np.sign(scores["advantage"])

    def row(name: str, kind: str, s: np.ndarray, cos: float | None, b: np.ndarray | None) -> dict:
        r = dict(name=name, kind=kind, auroc=auroc(s, label), precision_routed=precision_routed(s, label, cluster, frac),
                 cos_v_grad=cos, auroc_unsigned=auroc(s * sign, label) if kind in ("file", "random") else None)
        if b is not None:
            r["auroc_ci"] = [float(np.percentile(b, 2.5)), float(np.percentile(b, 97.5))]
        return r

    rows = []
    for name in ("v_grad", "placebo"):
        c = cosine_all(directions[name], V["v_grad"])
        rows += [row(name, "file", scores[name], c, boot[name]), row(f"-{name}", "file", -scores[name], -c, 1 - boot[name])]
    rows += [row("v_act", "activation", scores["v_act"], None, boot["v_act"]),
             row("advantage", "reward", scores["advantage"], None, boot["advantage"])]
    for d in range(a.k):
        name = f"random {d}"
        c = cosine_all(directions[name], V["v_grad"])
        rows += [row(name, "random", scores[name], c, None), row(f"-{name}", "random", -scores[name], -c, None)]
    rand = [r for r in rows if r["kind"] == "random"]
    ra = np.array([r["auroc"] for r in rand])
    rp = np.array([r["precision_routed"] for r in rand])
    vg = rows[0]["auroc"]
    # v_grad's percentile among the random directions and their negations, on every bootstrap resample of the pool
    rand_boot = np.stack([x for d in range(a.k) for x in (boot[f"random {d}"], 1 - boot[f"random {d}"])])
    pct_boot = 100 * (rand_boot < boot["v_grad"][None]).mean(0)
    phases = []
    for lo, hi in PHASES:
        m = (col["step"] >= lo) & (col["step"] < hi)
        if m.sum() and label[m].any() and (~label[m]).any():
            phases.append(dict(steps=[lo, hi], n=int(m.sum()), hack_share=float(label[m].mean()),
                               **{k: auroc(scores[k][m], label[m]) for k in ("v_grad", "placebo", "v_act", "advantage")},
                               random_median=float(np.median([auroc(s[m], label[m]) for d in range(a.k)
                                                              for s in (scores[f"random {d}"], -scores[f"random {d}"])]))))
    res = dict(
        command="python scripts/screen_directions.py " + " ".join(sys.argv[1:] if argv is None else argv),
        organism=dict(spec=a.model, sha256=sha),
        vhack={k: dict(path=p, sha256=file_sha256(Path(p)), v_grad_tensors_sha256=tensors_sha256(loaded[k][0]),
                       pairs=loaded[k][1]["pairs"], pairset_hash=loaded[k][1]["pairset_hash"]) for k, p in paths.items()},
        route_frac=frac,
        pool=dict(runs=[str(r) for r in runs], run_model_sha256=sha, steps=sum(p["steps"] for p in pools),
                  n=int(len(label)), n_hack=int(label.sum()), hack_share=float(label.mean()),
                  grad_norm_rel_dev_max=float(max(x for p in pools for x in p["grad_norm_rel_dev"])),
                  grad_norm_rel_dev_median=float(np.median([x for p in pools for x in p["grad_norm_rel_dev"]])),
                  ids_approximate=sum(p["ids_approximate"] for p in pools),
                  steps_resampled=sum(p["steps_resampled"] for p in pools)),
        scorers=rows,
        random=dict(k=a.k, auroc_mean=float(ra.mean()), auroc_sd=float(ra.std(ddof=1)), auroc_min=float(ra.min()),
                    auroc_max=float(ra.max()), auroc_q05=float(np.percentile(ra, 5)),
                    auroc_q95=float(np.percentile(ra, 95)), precision_mean=float(rp.mean()),
                    precision_min=float(rp.min()), precision_max=float(rp.max()),
                    abs_cos_max=float(max(abs(r["cos_v_grad"]) for r in rand)),
                    auroc_unsigned_sd=float(np.std([r["auroc_unsigned"] for r in rand], ddof=1)),
                    auroc_unsigned_min=float(min(r["auroc_unsigned"] for r in rand)),
                    auroc_unsigned_max=float(max(r["auroc_unsigned"] for r in rand))),
        v_grad_percentile=float(100 * (ra < vg).mean()),
        v_grad_percentile_unsigned=float(100 * (np.array([r["auroc_unsigned"] for r in rand]) < rows[0]["auroc_unsigned"]).mean()),
        v_grad_percentile_ci=[float(np.percentile(pct_boot, 2.5)), float(np.percentile(pct_boot, 97.5))],
        phases=phases, n_boot=a.boot, seconds=round(time.time() - t0, 1))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "screen.json").write_text(json.dumps(res, indent=1))
    (out / "screen.md").write_text(markdown(res))
    plot(res, out / "screen.png")
    print(markdown(res))
    return res


if __name__ == "__main__":
    main()
