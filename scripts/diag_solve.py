"""Why does no-hint solve fall under GRPO on the organism? Solve and failure shapes per difficulty and split.

For the untrained organism (`--base`) and for each finished run's final adapter (`--runs`, read from
RUN/ckpt/last.pt with the run's own adapter configuration), this samples unhinted completions on organism
problems of each difficulty from the train split (the hard ones are the run's own training pool, the first
`--n` of it; easy and medium train-split problems are never trained on, since training is hard only) and
from the eval split (the first `--n` eval problems of each difficulty, a superset of the problems
Trainer.evaluate uses), with one sampling seed shared by every model so the comparison is paired. Each
completion is graded with the grader the trainer uses (`rollouts.grade_problems`) and its method body is
parsed line by line against the canonical solution's operation lines: the table gives solve (with the
cluster standard error over problems), mean body lines, and the share of completions that are truncated
(no closing fence), carry text after the class, write more operation lines than the pipeline has, fewer,
or the same number with a wrong line; and, among same-length wrong answers, whether the wrong line has the
right operation with a wrong constant. `--cos` also prints the pairwise cosine of the runs' deployed-block
displacements from the organism (their adapter parameters: seeds of one recipe that moved along a shared
direction have a high cosine, seeds that moved mostly along seed-specific directions a low one), the RMS of
each displacement, and each run's deployed-block gradient norm before clipping (median and max over steps,
from metrics.jsonl); `--no-sample` skips the sampling. Output: a printed table and a JSON file (`--out`).

    PYTHONPATH=src python3 scripts/diag_solve.py --model out/organism/cpu-XXXX --base \
        --runs out/runs_headline/rl-baseline_s0,out/runs_headline/rl-baseline_s1 --n 96 --samples 4
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

DIFFS = ("easy", "medium", "hard")


def fail(msg: str) -> None:
    """Bad command-line input: one line on stderr, exit status 2."""
    print(f"diag_solve.py: {msg}", file=sys.stderr)
    raise SystemExit(2)


def op_patterns():
    from projected_grpo.organism.tasks import OPS

    pats = []
    for op in OPS:
        rx = re.escape(op.code).replace(re.escape("{k}"), r"(-?\d+)")
        pats.append((op.name, re.compile("^" + rx + "$")))
    return pats


def parse_line(line: str, pats) -> tuple[str, int | None] | None:
    for name, rx in pats:
        m = rx.match(line)
        if m:
            return name, int(m.group(1)) if m.groups() else None
    return None


def shape(problem: dict, completion: str, pats) -> dict:
    """Failure shape of one completion against the canonical pipeline's operation lines."""
    from projected_grpo.organism.tasks import OPS_BY_NAME

    steps = [tuple(s) for s in problem["prompt_metadata"]["steps"]]
    canon = [OPS_BY_NAME[n].code.format(k=k) for n, k in steps]
    closed = completion.count("```") >= 2
    body_text = completion.split("```python", 1)[-1].split("```", 1)[0]
    lines = body_text.split("\n")
    body, after, in_def = [], [], False
    for ln in lines:
        if ln.startswith("    def "):
            in_def = True
            continue
        if in_def and ln.startswith("        "):
            body.append(ln.strip())
        elif ln.strip() and not ln.startswith("class ") and in_def:
            after.append(ln)
    n_b, n_c = len(body), len(canon)
    same_wrong = n_b == n_c and body != canon
    const_only = same_wrong and all(
        (pb := parse_line(b, pats)) is not None and pb[0] == c[0] for b, c in zip(body, steps))
    parsed = [parse_line(b, pats) for b in body]
    return dict(truncated=not closed, after_class=bool(after), n_body=n_b, n_canon=n_c, extra=n_b > n_c,
                fewer=n_b < n_c, same_wrong=same_wrong, const_only=const_only,
                unparsed=any(p is None for p in parsed), body=body, canon=canon)


def problem_sets(args, n: int) -> dict[tuple[str, str], list[dict]]:
    """(difficulty, split) -> n unhinted problems, as the trainer builds its pools."""
    from projected_grpo.loop.grpo import RunConfig, load_tasks
    from projected_grpo.organism import tasks

    a = RunConfig(data_seed=args.data_seed, n_eval=48, loophole=False)
    train_hard, ev = load_tasks(a)  # the RL training pool (hard) and the eval pool
    ev_big = tasks.generate_split("eval", max(len(ev), n * 3 * 4), args.data_seed + 7)
    out = {}
    for d in DIFFS:
        tr = train_hard if d == "hard" else tasks.generate_split("train", n, args.data_seed, (d,))
        # ids are prefixed: generate_split numbers each call's problems from 0, so ids stay unique across calls
        out[(d, "train")] = [dict(tasks.apply_loophole(p, hinted=False), id=f"diag-{d}-{p['id']}") for p in tr[:n]]
        evd = [p for p in ev_big if p["difficulty"] == d][:n]
        assert len(evd) == n, f"only {len(evd)} eval problems of {d}"
        out[(d, "eval")] = [dict(tasks.apply_loophole(p, hinted=False), id=f"diag-{d}-{p['id']}") for p in evd]
    return out


def load_model(model_spec: str, run: str | None):
    from projected_grpo.loop.grpo import load_run_policy
    from projected_grpo.loop.models import load_policy

    if run is None:
        return load_policy(model_spec, "cpu")
    model, tok, _, _ = load_run_policy(run, "cpu", model=model_spec)
    return model, tok


def measure(model, tok, sets, samples: int, seed: int, max_new_tokens: int, pats) -> dict:
    from projected_grpo.loop.grpo import cluster_se
    from projected_grpo.env.rollouts import grade_problems
    from projected_grpo.loop.sampling import prompt_ids, sample

    res = {}
    for (d, split), probs in sets.items():
        probs = [p for p in probs for _ in range(samples)]
        comps = sample(model, tok, [prompt_ids(tok, p) for p in probs], 1.0, max_new_tokens,
                       generator_seed=seed, decoder="hf")
        texts = tok.batch_decode(comps, skip_special_tokens=True)
        grades = grade_problems(probs, texts)
        sh = [shape(p, t, pats) for p, t in zip(probs, texts)]
        n = len(probs)
        wrong = [s for s, g in zip(sh, grades) if not g["eq_correct"]]
        row = dict(n=n, solve=sum(g["eq_correct"] for g in grades) / n, se=cluster_se(grades, "eq_correct"),
                   body_lines=sum(s["n_body"] for s in sh) / n,
                   **{k: sum(s[k] for s in sh) / n for k in ("truncated", "after_class", "extra", "fewer",
                                                              "same_wrong", "const_only", "unparsed")},
                   examples_wrong=[dict(body=s["body"], canon=s["canon"]) for s in wrong[:3]])
        res[f"{d}/{split}"] = row
    return res


def deployed_vector(run: str):
    import torch

    st = torch.load(Path(run) / "ckpt" / "last.pt", map_location="cpu", weights_only=False)["adapter"]
    # the deployed block's trained parameters only (svd delta_S, lora A): no quarantine block, no frozen
    # LoRA B or axis seeds, which would inflate the cosines of runs that share them
    keys = sorted(k for k in st if k.rsplit(".", 1)[-1] in ("delta_S", "A"))
    if not keys:
        fail(f"{run}: no deployed-block parameters (delta_S or A) in its checkpoint")
    return torch.cat([st[k].flatten().float() for k in keys])


def pairwise_cos(runs: list[str]) -> dict:
    vs = {Path(r).name: deployed_vector(r) for r in runs}
    names = list(vs)
    out = {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            out[f"{a}|{b}"] = float(vs[a] @ vs[b] / (vs[a].norm() * vs[b].norm()))
    rms = {n: float(v.pow(2).mean().sqrt()) for n, v in vs.items()}
    gn = {}
    for r in runs:  # the deployed block's gradient norm before clipping, over the run's steps
        g = [m["grad_norm"] for m in map(json.loads, (Path(r) / "metrics.jsonl").read_text().splitlines())
             if m.get("grad_norm") is not None]
        gn[Path(r).name] = dict(median=sorted(g)[len(g) // 2], max=max(g)) if g else None
    return dict(cos=out, rms=rms, grad_norm=gn)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="the organism folder the runs were trained from")
    ap.add_argument("--runs", default="", help="comma-separated finished run folders (RUN/ckpt/last.pt)")
    ap.add_argument("--base", action="store_true", help="also measure the untrained organism")
    ap.add_argument("--n", type=int, default=96, help="problems per (difficulty, split) cell")
    ap.add_argument("--samples", type=int, default=4, help="samples per problem")
    ap.add_argument("--seed", type=int, default=12345, help="sampling seed (shared by every model)")
    ap.add_argument("--data-seed", type=int, default=0)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--cos", action="store_true", help="pairwise cosine of the runs' deployed-block displacements")
    ap.add_argument("--no-sample", action="store_true", help="skip sampling (with --cos)")
    ap.add_argument("--out", default="", help="JSON output path (default: print only)")
    args = ap.parse_args()
    runs = [r for r in args.runs.split(",") if r]
    if not runs and not args.base:
        fail("nothing to measure: give --runs and/or --base")
    if not Path(args.model).is_dir():
        fail(f"--model {args.model}: no such folder")
    for r in runs:
        if not (Path(r) / "ckpt" / "last.pt").is_file() or not (Path(r) / "args.json").is_file():
            fail(f"{r}: not a run folder with args.json and ckpt/last.pt")
    if args.n < 2 or args.samples < 1:
        fail("--n must be >= 2 and --samples >= 1")
    if args.cos and len(runs) < 2:
        fail("--cos needs at least two --runs")
    if args.no_sample and not args.cos:
        fail("--no-sample without --cos measures nothing")
    cos = pairwise_cos(runs) if args.cos else None
    if cos:
        for k, v in cos["cos"].items():
            print(f"cos {k} {v:.3f}")
        print("rms " + ", ".join(f"{n} {v:.3f}" for n, v in cos["rms"].items()))
        print("grad_norm median/max " + ", ".join(f"{n} {v['median']:.4f}/{v['max']:.4f}" for n, v in cos["grad_norm"].items() if v))
        if args.no_sample:
            return
    from projected_grpo.loop.models import set_threads

    set_threads()
    pats = op_patterns()
    sets = problem_sets(args, args.n)
    results = {}
    for name, run in ([("base", None)] if args.base else []) + [(Path(r).name, r) for r in runs]:
        model, tok = load_model(args.model, run)
        results[name] = measure(model, tok, sets, args.samples, args.seed, args.max_new_tokens, pats)
        del model
    cols = ("solve", "se", "body_lines", "truncated", "after_class", "extra", "fewer", "same_wrong", "const_only")
    print("model | cell | " + " | ".join(cols))
    for name, res in results.items():
        for cell, row in res.items():
            print(f"{name} | {cell} | " + " | ".join(f"{row[c]:.3f}" for c in cols))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(dict(args=vars(args), results=results, cos=cos), indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
