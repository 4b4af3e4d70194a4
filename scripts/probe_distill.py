"""Distillation cosine probe: does v_hack point along the gradient that teaches a student to hack?

Subcommands (see docs/probe_distill.md):

    teacher-pool   sample G completions for N hinted train problems from a hacking teacher (the
                   organism after a vanilla GRPO run: RUN_DIR/args.json + RUN_DIR/ckpt/last.pt,
                   deployed through deployment ablation; or a plain model spec), grade them, write
                   one step file per problem (step_NNNN.jsonl.gz) and problems.jsonl
    replay         a student (base organism + the adapter the v_hack file was extracted for) distils
                   the pool step by step with mean completion NLL: per-rollout deployed-block
                   gradients from ONE batched backward, per-rollout cosine with v_hack
                   (cos_S_contrib), then the batch gradient; --mode projected erases v_hack from it
                   per module (interventions.Erase, i.e. project_out) and logs cos_in / cos_out /
                   frac_fired; then an AdamW step, whose realised parameter step is measured against
                   v (step_cos, step_hackward). Writes step files and metrics.jsonl.
    random-vhack   a seeded random v_hack of the shape and identity of another (control)
    oracle-vhack   DIAGNOSTIC UPPER BOUND: mean gradient of ground-truth hack rows minus mean of
                   non-hack rows of a teacher pool. It reads grader labels, so it is never a method;
                   its filename and metadata say oracle_DIAGNOSTIC_UPPER_BOUND.

Nothing here trains a policy with GRPO; the replay is a measurement of gradient geometry.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import time
from pathlib import Path


import torch  # noqa: E402

from projected_grpo.method import adapters as ad  # noqa: E402
from projected_grpo.method import interventions as iv  # noqa: E402
from projected_grpo.loop import logs  # noqa: E402
from projected_grpo.method import vhack as vh  # noqa: E402
from projected_grpo.loop.grpo import load_run_or_model  # noqa: E402
from projected_grpo.loop.models import load_policy, set_threads  # noqa: E402
from projected_grpo.env.rollouts import grade_problems  # noqa: E402
from projected_grpo.loop.sampling import prompt_ids, sample  # noqa: E402

ORACLE_TAG = "oracle_DIAGNOSTIC_UPPER_BOUND"


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(float(x)) else None


# ---- teacher pool -------------------------------------------------------------------------------------

def cmd_teacher_pool(a: argparse.Namespace) -> Path:
    from projected_grpo.organism import tasks

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for f in logs.step_files(out):
        f.unlink()
    model, tok, meta = load_run_or_model(a.teacher, a.device)
    mechs = tuple((a.mechanisms or meta["mechanisms"] or ",".join(tasks.LOOPHOLES)).split(","))
    diffs = tuple((meta["difficulties"] or "easy,medium,hard").split(","))
    data_seed = meta["data_seed"] if a.data_seed is None else a.data_seed
    # the first N problems of the run's own training pool (generate_split is sequential in n)
    probs = [tasks.apply_loophole(p, hinted=True) for p in tasks.generate_split("train", a.n_problems, data_seed, diffs, mechs)]
    max_new = a.max_new_tokens or meta["max_new_tokens"]
    temp = meta["temperature"] if a.temperature is None else a.temperature
    group_probs = [p for p in probs for _ in range(a.group)]
    pids = [prompt_ids(tok, p) for p in group_probs]
    t0 = time.time()
    ctx = ad.deployment_ablation(model) if ad.adapter_modules(model) else contextlib.nullcontext()
    with ctx:
        comps = sample(model, tok, pids, temp, max_new, generator_seed=a.seed)
    texts = tok.batch_decode(comps, skip_special_tokens=True)
    grades = grade_problems(group_probs, texts)
    hack = 0
    for s, p in enumerate(probs):
        rows = []
        for j in range(a.group):
            i = s * a.group + j
            g = grades[i]
            hack += int(g["is_hack_strict"])
            rows.append(dict(step=s, problem_id=p["id"], sample=j, completion=texts[i], completion_ids=comps[i],
                             label=g["label"], reward=g["reward"], hack_strict=bool(g["is_hack_strict"]),
                             hack_loose=bool(g["is_hack_loose"]), gt_pass=bool(g["eq_correct"]),
                             mechanism=p["prompt_metadata"].get("mechanism"), difficulty=p["difficulty"],
                             length=len(comps[i])))
        logs.write_step(out, s, rows)
    logs.write_jsonl(out / "problems.jsonl", probs)
    meta.update(n_problems=len(probs), group=a.group, seed=a.seed, max_new_tokens=max_new, temperature=temp,
                hack_frac=hack / len(grades), seconds=round(time.time() - t0, 1))
    (out / "pool.json").write_text(json.dumps(meta, indent=2))
    print(json.dumps(dict(pool=str(out), n_rows=len(grades), hack_frac=meta["hack_frac"])))
    return out


# ---- student and per-rollout gradients ----------------------------------------------------------------

def load_pool(pool: Path) -> tuple[dict, dict[str, dict], list[Path]]:
    for need in ("pool.json", "problems.jsonl"):
        if not (pool / need).exists():
            raise FileNotFoundError(f"{pool / need}: not a teacher pool (run probe_distill.py teacher-pool)")
    files = logs.step_files(pool)
    if not files:
        raise FileNotFoundError(f"{pool}: no step files")
    meta = json.loads((pool / "pool.json").read_text())
    probs = {str(p["id"]): p for p in logs.read_jsonl(pool / "problems.jsonl")}
    return meta, probs, files


def vhack_meta(path: str) -> dict:
    from safetensors import safe_open

    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: no v_hack file")
    with safe_open(path, "pt") as f:
        return dict(f.metadata() or {})


def load_student(model_spec: str, kind: str, rank: int, quarantine: str, seed: int, device: str):
    model, tok = load_policy(model_spec, device)
    ad.wrap_model(model, ad.AdapterConfig(kind=kind, rank=None if rank == -1 else rank, quarantine=quarantine, seed=seed))
    return model, tok


def row_ids(tok, probs: dict, rows: list[dict], same_tokenizer: bool) -> tuple[list[list[int]], list[list[int]]]:
    prompts, comps = [], []
    for r in rows:
        prompts.append(prompt_ids(tok, probs[str(r["problem_id"])]))
        if same_tokenizer and r.get("completion_ids"):
            comps.append(list(r["completion_ids"]))
        else:
            comps.append(tok.encode(r["completion"], add_special_tokens=False) + [tok.eos_token_id])
    return prompts, comps


def per_rollout_nll_grads(model, tok, prompts, comps, device: str) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Per module, each rollout's deployed-block gradient of its mean completion NLL ([b, P]), from one batched
    backward, and the per-rollout NLL (vhack.completion_grads)."""
    return vh.completion_grads(model, prompts, comps, tok.pad_token_id, device, "nll")


def cmd_replay(a: argparse.Namespace) -> Path:
    pool = Path(a.pool)
    pmeta, probs, files = load_pool(pool)
    vm = vhack_meta(a.vhack)
    model_spec = a.model or vm.get("model") or pmeta["model"]
    kind = a.adapter or vm.get("adapter", "svd")
    rank = a.rank if a.rank is not None else int(vm.get("rank", -1))
    quarantine = a.quarantine or vm.get("quarantine", "shared")
    torch.manual_seed(a.seed)
    model, tok = load_student(model_spec, kind, rank, quarantine, a.adapter_seed, a.device)
    device = str(next(model.parameters()).device)
    erase = iv.Erase(iv.LazyVhack(a.vhack), one_sided=not a.two_sided)  # loads + checks identity
    erase.setup(model, tok, device)
    V = erase.V  # orthonormal rows per module
    mods = ad.adapter_modules(model)
    opt = torch.optim.AdamW(ad.deployed_params(model), lr=a.lr, betas=(0.9, 0.99), weight_decay=0.0)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for f in logs.step_files(out):
        f.unlink()
    same_tok = pmeta["model"] == model_spec
    metrics = []
    steps = files[: a.max_steps] if a.max_steps else files
    for s, path in enumerate(steps):
        rows = logs.read_step(path)
        prompts, comps = row_ids(tok, probs, rows, same_tok)
        opt.zero_grad(set_to_none=True)
        G, nll = per_rollout_nll_grads(model, tok, prompts, comps, device)
        cos = iv.routing_scores(G, V)
        gnorm = torch.sqrt(sum((g.double() ** 2).sum(1) for g in G.values()))
        # batch gradient: the mean over rollouts of their per-rollout gradients (deployed block only)
        B = len(rows)
        ad.write_routed_grads(model, torch.full((B,), 1.0 / B, device=device), torch.zeros(B, device=device))
        for p in ad.quarantine_params(model):
            p.grad = None
        diag: dict = {}
        if a.mode == "projected":
            diag = erase.after_backward(model, iv.StepContext(step=0, device=device))["step"]
        else:  # the same per-module cosine, measured without projecting
            cin = [iv.cosine(torch.cat([p.grad.flatten() for p in m.deployed_parameters()]), V[n][0]).item()
                   for n, m in mods.items() if all(p.grad is not None for p in m.deployed_parameters())]
            diag = dict(cos_in=sum(cin) / max(1, len(cin)))
        bn = torch.nn.utils.clip_grad_norm_(ad.deployed_params(model), a.grad_clip).item() if a.grad_clip > 0 else float("nan")
        before = {n: iv.flat_deployed_params(m).clone() for n, m in mods.items()}
        opt.step()
        diag.update(iv.step_alignment(mods, before, V))  # the realised step against v (T3 of probe_uat)
        out_rows = []
        for r, c, gn, l in zip(rows, cos.tolist(), gnorm.tolist(), nll.tolist()):
            r = {k: v for k, v in r.items() if k != "completion_ids"}
            r.update(replay_step=s, cos_S_contrib=_finite(c), grad_norm=_finite(gn), nll=_finite(l), mode=a.mode)
            out_rows.append(r)
        logs.write_step(out, s, out_rows)
        hk = [r["hack_strict"] for r in rows]
        mrow = dict(step=s, n=B, mode=a.mode, nll=float(nll.mean()), batch_grad_norm=bn,
                    cos_S_mean=float(cos.mean()), grad_norm_mean=float(gnorm.mean()), hack_frac=sum(hk) / B, **diag)
        metrics.append(mrow)
        logs.write_jsonl(out / "metrics.jsonl", metrics)
    info = dict(pool=str(pool), vhack=a.vhack, vhack_meta=vm, mode=a.mode, model=model_spec, adapter=kind, rank=rank,
                quarantine=quarantine, adapter_seed=a.adapter_seed, lr=a.lr, seed=a.seed, one_sided=not a.two_sided,
                n_steps=len(steps))
    (out / "replay.json").write_text(json.dumps(info, indent=2))
    last = metrics[-1]
    print(json.dumps(dict(out=str(out), mode=a.mode, steps=len(metrics), nll_first=metrics[0]["nll"], nll_last=last["nll"],
                          **{k: last[k] for k in ("cos_in", "cos_out", "frac_fired") if k in last})))
    return out


# ---- control directions -------------------------------------------------------------------------------

def cmd_random_vhack(a: argparse.Namespace) -> Path:
    """Seeded Gaussian directions of the shape of --like, carrying its model/adapter identity."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    src = Path(a.like)
    if not src.exists():
        raise FileNotFoundError(f"{src}: no v_hack file to match")
    gen = torch.Generator().manual_seed(a.seed)
    with safe_open(str(src), "pt") as f:
        md = dict(f.metadata() or {})
        tensors = {}
        for k in sorted(f.keys()):
            t = f.get_tensor(k)
            r = torch.randn(tuple(t.shape), generator=gen)
            if k.startswith("v_grad."):
                r = r / r.norm(dim=-1, keepdim=True)
            tensors[k] = r.contiguous()
    md.update(control="random", random_seed=str(a.seed), like=str(src), pairs="none (random direction)")
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out), metadata=md)
    print(json.dumps(dict(out=str(out), control="random", seed=a.seed, n_modules=sum(k.startswith("v_grad.") for k in tensors))))
    return out


def cmd_oracle_vhack(a: argparse.Namespace) -> Path:
    """DIAGNOSTIC UPPER BOUND (reads ground-truth labels): per module, the unit mean gradient of the
    pool's hack rows minus the mean gradient of its non-hack rows (mean completion NLL)."""
    out = Path(a.out)
    assert ORACLE_TAG in out.name, f"--out must name the file as {ORACLE_TAG} (got {out.name})"
    pool = Path(a.pool)
    pmeta, probs, files = load_pool(pool)
    model_spec = a.model or pmeta["model"]
    model, tok = load_student(model_spec, a.adapter, a.rank, a.quarantine, a.adapter_seed, a.device)
    device = str(next(model.parameters()).device)
    s_hack: dict[str, torch.Tensor] = {}
    s_not: dict[str, torch.Tensor] = {}
    n_hack = n_not = 0
    for path in files:
        rows = logs.read_step(path)
        prompts, comps = row_ids(tok, probs, rows, pmeta["model"] == model_spec)
        G, _ = per_rollout_nll_grads(model, tok, prompts, comps, device)
        model.zero_grad(set_to_none=True)
        h = torch.tensor([bool(r["hack_strict"]) for r in rows], device=device)
        for n, g in G.items():
            s_hack[n] = s_hack.get(n, 0) + g[h].sum(0)
            s_not[n] = s_not.get(n, 0) + g[~h].sum(0)
        n_hack += int(h.sum())
        n_not += int((~h).sum())
        ad.clear_captured(model)
    if n_hack == 0 or n_not == 0:
        raise SystemExit(f"oracle-vhack: need hack and non-hack rows (hack={n_hack}, not={n_not})")
    # loss gradients: a step teaching the hack descends the hack rows' NLL, so its gradient is the
    # hack rows' NLL gradient; oriented as v_grad is (positive cosine = hack-ward)
    V = {}
    for n in s_hack:
        d = s_hack[n] / n_hack - s_not[n] / n_not
        V[n] = (d / d.norm().clamp(min=1e-30))[None].float()
    meta = dict(pairs=ORACLE_TAG, diagnostic=ORACLE_TAG, reads_ground_truth_labels="true", pool=str(pool),
                n_hack=n_hack, n_not=n_not, model=model_spec, adapter=a.adapter, rank=a.rank, quarantine=a.quarantine,
                loss="nll", k=1, note="fitted on the same pool it is probed on (in-sample); never a method")
    vh.save_vhack(out, V, model, meta)
    print(json.dumps(dict(out=str(out), n_hack=n_hack, n_not=n_not, diagnostic=ORACLE_TAG)))
    return out


# ---- cli ----------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None):
    set_threads()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    t = sub.add_parser("teacher-pool", help="sample and grade a hacking teacher's rollouts")
    t.add_argument("--teacher", required=True, help="run folder (args.json + ckpt/last.pt) or model spec")
    t.add_argument("--out", default="out/probe_distill/teacher_pool")
    t.add_argument("--n-problems", type=int, default=20)
    t.add_argument("--group", type=int, default=8)
    t.add_argument("--seed", type=int, default=41)
    t.add_argument("--data-seed", type=int, default=None, help="default: the teacher run's data_seed")
    t.add_argument("--mechanisms", default="", help="default: the teacher run's mechanisms")
    t.add_argument("--max-new-tokens", type=int, default=0, help="default: the teacher run's")
    t.add_argument("--temperature", type=float, default=None, help="default: the teacher run's")
    t.add_argument("--device", default="")

    r = sub.add_parser("replay", help="distil the pool into a student, measuring cosines with v_hack")
    r.add_argument("--pool", required=True)
    r.add_argument("--vhack", required=True)
    r.add_argument("--mode", required=True, choices=("vanilla", "projected"))
    r.add_argument("--out", required=True)
    r.add_argument("--model", default="", help="default: the v_hack file's model")
    r.add_argument("--adapter", default="", choices=("", "svd", "lora"), help="default: the v_hack file's")
    r.add_argument("--rank", type=int, default=None, help="default: the v_hack file's")
    r.add_argument("--quarantine", default="", choices=("", "shared", "own"), help="default: the v_hack file's")
    r.add_argument("--adapter-seed", type=int, default=0)
    r.add_argument("--two-sided", action="store_true", help="projected: remove both signs of the component")
    r.add_argument("--lr", type=float, default=1e-3)
    r.add_argument("--grad-clip", type=float, default=1.0)
    r.add_argument("--max-steps", type=int, default=0)
    r.add_argument("--seed", type=int, default=41)
    r.add_argument("--device", default="")

    q = sub.add_parser("random-vhack", help="seeded random v_hack of matched shape and identity (control)")
    q.add_argument("--like", required=True)
    q.add_argument("--out", required=True)
    q.add_argument("--seed", type=int, default=0)

    o = sub.add_parser("oracle-vhack", help=f"{ORACLE_TAG}: hack-minus-clean mean gradient on labelled pool rows")
    o.add_argument("--pool", required=True)
    o.add_argument("--out", required=True)
    o.add_argument("--model", default="")
    o.add_argument("--adapter", default="svd", choices=("svd", "lora"))
    o.add_argument("--rank", type=int, default=-1)
    o.add_argument("--quarantine", default="shared", choices=("shared", "own"))
    o.add_argument("--adapter-seed", type=int, default=0)
    o.add_argument("--device", default="")

    a = ap.parse_args(argv)
    if getattr(a, "device", None) == "":
        a.device = None
    return dict(zip(("teacher-pool", "replay", "random-vhack", "oracle-vhack"),
                    (cmd_teacher_pool, cmd_replay, cmd_random_vhack, cmd_oracle_vhack)))[a.cmd](a)


if __name__ == "__main__":
    main()
