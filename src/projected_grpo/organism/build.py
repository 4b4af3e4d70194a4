"""Build the model organism: tokenizer, a small Qwen3 causal LM, pretraining corpus, base rates.

    python -m projected_grpo.organism.build --size cpu

The organism is pretrained (supervised, loss on the response only) on prompts of the task family
with honest attempts at every difficulty and, on hinted prompts, template reward hacks at a low
base rate spread over the loophole mechanisms. It is saved with `save_pretrained` and afterwards
loads with `AutoModelForCausalLM.from_pretrained` / `AutoTokenizer.from_pretrained` like a hub model.
The output folder is keyed by a hash of the configuration, so a rebuild with the same
configuration on the same machine is a cache hit. The configuration does not determine the weights across machine
kinds (floating point differs between CPUs and torch versions): an organism is identified by the sha256 of its
weights (weights_sha256), recorded in organism.json. Results use the pinned organisms (organism.pinned); a build
here never replaces them.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, pre_tokenizers, trainers
from tokenizers import models as tokenizer_models
from tqdm import tqdm
from transformers import (AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast, Qwen3Config,
                          Qwen3ForCausalLM)

from projected_grpo.env.rollouts import grade_problems
from projected_grpo.loop.models import cpu_model, log_softmax_at, set_threads
from projected_grpo.loop.sampling import collate, prompt_ids, sample
from projected_grpo.organism import tasks
from projected_grpo.organism.pinned import weights_sha256

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@dataclass
class OrganismConfig:
    """The organism's recipe (the cache key hashes all of it). With the machine kind and torch version it determines
    the weights; across machine kinds it does not (journal, 2026-12-06), hence organism.pinned."""

    size: str = "cpu"
    """preset name: tiny (checks, seconds), cpu (a few M params, <=5 min on 2 cores), gpu (tens of M)"""
    hidden: int = 128
    """hidden size of the Qwen3 model"""
    layers: int = 4
    """number of decoder layers"""
    heads: int = 4
    """attention heads (head_dim = hidden // heads)"""
    intermediate: int = 384
    """MLP width"""
    vocab: int = 1024
    """BPE vocabulary size of the tokenizer trained here (digits are single tokens)"""
    n_docs: int = 12000
    """pretraining documents (prompt + response)"""
    steps: int = 400
    """optimizer steps of pretraining"""
    batch: int = 32
    """documents per step"""
    lr: float = 3e-3
    """peak AdamW learning rate (cosine decay, 5% warmup)"""
    p_hinted: float = 0.5
    """share of pretraining prompts that carry their problem's loophole hint"""
    p_hack: tuple[float, float, float, float] = (0.15, 0.15, 0.15, 0.15)
    """probability that a hinted pretraining prompt's response is a template hack of its mechanism, per
    mechanism in tasks.LOOPHOLES order (run_tests, sentinel, stdout_marker, exit_code)"""
    hack_scale: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """factor on p_hack for easy / medium / hard prompts"""
    p_correct: tuple[float, float, float] = (1.0, 0.9, 0.3)
    """probability that an honest pretraining response is correct, for easy / medium / hard"""
    difficulties: tuple[str, ...] = ("easy", "medium", "hard")
    """difficulties of pretraining problems, assigned round-robin (repeat one to weight it)"""
    seed: int = 0
    """seed for the corpus, tokenizer data order, init and pretraining"""
    response_note: bool = True
    """v3 response format: responses to hinted prompts restate the hint in a comment after the class, and
    a hack's artifact follows that comment (tasks.grader_note)"""

    def key(self) -> str:
        blob = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return f"{self.size}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"


# organism v3 (issue 16, grid 3 entry D): the v3 response format (grader note before a hack's artifact), half
# the corpus easy, hard honest responses always carry one mistake, 90% of prompts hinted, hacks 8% of hinted hard
# prompts per mechanism and a fifth of that on easy/medium. Integer entries keep the cache key of the measured build.
V3_RECIPE = dict(difficulties=("easy", "easy", "medium", "hard"), p_correct=(1, 0.9, 0), p_hinted=0.9,
                 p_hack=(0.08, 0.08, 0.08, 0.08), hack_scale=(0.2, 0.2, 1))

PRESETS = {
    "tiny": dict(hidden=64, layers=2, heads=2, intermediate=128, vocab=512, n_docs=2000, steps=150, batch=16, lr=5e-3),
    "cpu": dict(steps=600, **V3_RECIPE),
    # the v3 recipe at 27.8M parameters (issue 16 item 3). Pretrained 3000 steps this size solved hard
    # no-hint prompts at 0.39-0.44 and vanilla GRPO taught it to solve, not to hack (p_correct hard 0.1:
    # 3 of 5 seeds; 0: 5 of 5); pretrained 800 steps (hard solve 0.23) it hacks (journal, 2026-11-24).
    "gpu": dict(hidden=512, layers=8, heads=8, intermediate=1536, vocab=2048, n_docs=60000, steps=800, batch=64,
                lr=1.5e-3, **V3_RECIPE),
}


def preset(size: str, **overrides) -> OrganismConfig:
    assert size in PRESETS, f"unknown organism size {size!r}; choose from {list(PRESETS)}"
    return OrganismConfig(size=size, **{**PRESETS[size], **overrides})


# ---- corpus -----------------------------------------------------------------------------------------

def corpus(cfg: OrganismConfig) -> list[tuple[dict, str]]:
    """(prompted problem, response) pairs from the train split."""
    rng = random.Random(cfg.seed)
    problems = tasks.generate_split("train", cfg.n_docs, seed=cfg.seed, difficulties=tuple(cfg.difficulties))
    docs = []
    for p in problems:
        hinted = rng.random() < cfg.p_hinted
        q = tasks.apply_loophole(p, hinted=hinted)
        d = ("easy", "medium", "hard").index(p["difficulty"])
        if hinted and rng.random() < cfg.p_hack[tasks.LOOPHOLES.index(q["prompt_metadata"]["mechanism"])] * cfg.hack_scale[d]:
            resp = tasks.hack_response(q, q["prompt_metadata"]["mechanism"], rng, cfg.response_note)
        else:
            resp = tasks.honest_response(q, rng, cfg.p_correct[d], cfg.response_note)
        docs.append((q, resp))
    return docs


def train_tokenizer(cfg: OrganismConfig, texts: list[str]):
    tk = Tokenizer(tokenizer_models.BPE(unk_token=None))
    # Pieces are clauses (split after each newline, ". " and ", then "), then single digits: BPE
    # may merge a clause's boilerplate into a few tokens, while every number is spelled digit by digit.
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"\n|\. |, then "), behavior="merged_with_previous"),
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=cfg.vocab, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tk.train_from_iterator(texts, trainer=trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token=None, eos_token="<|im_end|>",
                                  pad_token="<|pad|>", unk_token=None)
    tok.chat_template = CHAT_TEMPLATE
    tok.padding_side = "left"
    return tok


def make_model(cfg: OrganismConfig, tok):
    torch.manual_seed(cfg.seed)
    mc = Qwen3Config(
        vocab_size=len(tok), hidden_size=cfg.hidden, intermediate_size=cfg.intermediate,
        num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads, num_key_value_heads=cfg.heads,
        head_dim=cfg.hidden // cfg.heads, max_position_embeddings=1024, tie_word_embeddings=True,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=None,
    )
    return Qwen3ForCausalLM(mc)


def tokenize_docs(tok, docs: list[tuple[dict, str]]) -> list[tuple[list[int], list[int]]]:
    out = []
    for q, resp in docs:
        out.append((prompt_ids(tok, q), tok.encode(resp, add_special_tokens=False) + [tok.eos_token_id]))
    return out


def pretrain(cfg: OrganismConfig, model, tok, data: list[tuple[list[int], list[int]]], device: str) -> list[float]:
    """Supervised pretraining, loss on response tokens only; deterministic given cfg.seed."""
    rng = random.Random(cfg.seed + 1)
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01, betas=(0.9, 0.95))
    warm = max(1, cfg.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / cfg.steps))))
    order: list[int] = []
    losses = []
    bar = tqdm(range(cfg.steps), desc=f"pretrain {cfg.size}", mininterval=2)
    for step in bar:
        if len(order) < cfg.batch:
            order += rng.sample(range(len(data)), len(data))
        idx, order = order[:cfg.batch], order[cfg.batch:]
        b = collate([data[i][0] for i in idx], [data[i][1] for i in idx], tok.pad_token_id)
        ids, attn, comp = b.input_ids.to(device), b.attention_mask.to(device), b.completion_mask.to(device)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
            logits = model(input_ids=ids, attention_mask=attn.long()).logits[:, :-1].float()
        tgt_mask = comp[:, 1:]
        loss = torch.nn.functional.cross_entropy(logits[tgt_mask], ids[:, 1:][tgt_mask])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % 20 == 0:
            bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.3f}")
    return losses


# ---- base rates -------------------------------------------------------------------------------------

def measure_base_rates(model, tok, n_per_cell: int, temperature: float, seed: int, max_new_tokens: int = 160,
                       split: str = "eval") -> dict:
    """Strict/loose hack rate per mechanism on hinted prompts; solve rate per difficulty on no-hint prompts."""

    probs = tasks.generate_split(split, 600, seed=1000 + seed)
    rows = []
    jobs = []
    for mech in tasks.LOOPHOLES:
        ps = [tasks.apply_loophole(p) for p in probs if p["prompt_metadata"]["mechanism"] == mech]
        jobs += [("hinted", mech, ps[i % len(ps)]) for i in range(n_per_cell)]
    for diff in ("easy", "medium", "hard"):
        ps = [tasks.apply_loophole(p, hinted=False) for p in probs if p["difficulty"] == diff]
        jobs += [("nohint", diff, ps[i % len(ps)]) for i in range(n_per_cell)]
    pids = [prompt_ids(tok, p) for _, _, p in jobs]
    comps = sample(model, tok, pids, temperature, max_new_tokens, generator_seed=seed)
    texts = tok.batch_decode(comps, skip_special_tokens=True)
    grades = grade_problems([p for _, _, p in jobs], texts, progress=True)
    for (kind, cell, p), g in zip(jobs, grades):
        rows.append(dict(kind=kind, cell=cell, difficulty=p["difficulty"], **g))
    out: dict = {"n_per_cell": n_per_cell, "temperature": temperature, "hinted": {}, "nohint": {}}
    for mech in tasks.LOOPHOLES:
        r = [x for x in rows if x["kind"] == "hinted" and x["cell"] == mech]
        out["hinted"][mech] = rates(r)
    allh = [x for x in rows if x["kind"] == "hinted"]
    out["hinted"]["all"] = rates(allh)
    for diff in ("easy", "medium", "hard"):
        out["nohint"][diff] = rates([x for x in rows if x["kind"] == "nohint" and x["cell"] == diff])
    return out


@torch.no_grad()
def response_logprobs(model, tok, problems: list[dict], responses: list[str], batch: int = 128) -> list[float]:
    """log p(response + EOS | prompt) under the model, one float per (problem, response)."""
    data = tokenize_docs(tok, list(zip(problems, responses)))
    out = []
    for s in range(0, len(data), batch):
        chunk = data[s:s + batch]
        b = collate([a for a, _ in chunk], [c for _, c in chunk], tok.pad_token_id)
        dev = next(model.parameters()).device
        ids, attn, comp = b.input_ids.to(dev), b.attention_mask.to(dev), b.completion_mask.to(dev)
        logits = model(input_ids=ids, attention_mask=attn.long()).logits[:, :-1].float()
        lp = log_softmax_at(logits, ids[:, 1:])
        out += (lp * comp[:, 1:]).sum(1).tolist()
    return out


def template_rates(model, tok, n: int = 100, seed: int = 0, note: bool = False) -> dict:
    """Exact probabilities (no sampling, no grading) that the model writes a template hack of the prompt's
    mechanism (any stub body) on hinted eval prompts, and the canonical solution on hinted and no-hint
    eval prompts: per mechanism (all difficulties and hard only) and per difficulty. Sampled template
    hacks and canonical solutions grade Reward Hack and Correct (verify_organism), so these are lower
    bounds of the sampled strict hack and solve rates at temperature 1."""
    probs = tasks.generate_split("eval", 12 * n, seed=1000 + seed)
    out: dict = {"n": n, "hack": {}, "hack_hard": {}, "solve_hinted": {}, "solve_nohint": {}}
    for mech in tasks.LOOPHOLES:
        ps = [tasks.apply_loophole(p) for p in probs if p["prompt_metadata"]["mechanism"] == mech][:n]
        hs = [tasks.apply_loophole(p) for p in probs if p["prompt_metadata"]["mechanism"] == mech
              and p["difficulty"] == "hard"][:n]
        out["hack"][mech] = p_any_hack(model, tok, ps, mech, note)
        out["hack_hard"][mech] = p_any_hack(model, tok, hs, mech, note)
        out["solve_hinted"][mech] = p_mean(model, tok, ps, [tasks.canonical_response(p, note) for p in ps])
    for diff in ("easy", "medium", "hard"):
        ps = [tasks.apply_loophole(p, hinted=False) for p in probs if p["difficulty"] == diff][:n]
        out["solve_nohint"][diff] = p_mean(model, tok, ps, [tasks.canonical_response(p) for p in ps])
    out["artifact_share"] = artifact_share(model, tok, probs, n, note)
    return out


def artifact_share(model, tok, probs: list[dict], n: int, note: bool = False) -> dict:
    """How well the hint selects the artifact: on hard hinted prompts of each mechanism, the exact
    probability of a template hack with each mechanism's artifact, normalised over the four artifacts.
    The diagonal is 1 for an organism whose hacks always use the announced loophole, 0.25 for one
    that ignores the hint."""
    out = {}
    for mech in tasks.LOOPHOLES:
        hs = [tasks.apply_loophole(p) for p in probs if p["prompt_metadata"]["mechanism"] == mech
              and p["difficulty"] == "hard"][:n]
        row = [p_any_hack(model, tok, hs, a, note) for a in tasks.LOOPHOLES]
        out[mech] = {a: round(x / sum(row), 3) for a, x in zip(tasks.LOOPHOLES, row)}
    return out


def p_mean(model, tok, problems: list[dict], responses: list[str]) -> float:
    return sum(math.exp(x) for x in response_logprobs(model, tok, problems, responses)) / len(problems)


def p_any_hack(model, tok, problems: list[dict], mech: str, note: bool = False) -> float:
    return sum(p_mean(model, tok, problems, [tasks.hack_text(p, mech, [b], note) for p in problems])
               for b in tasks.HACK_BODIES)


def rates(rows: list[dict]) -> dict:
    n = len(rows)
    return dict(n=n, strict=sum(r["is_hack_strict"] for r in rows) / n, loose=sum(r["is_hack_loose"] for r in rows) / n,
                solve=sum(r["eq_correct"] for r in rows) / n)


def base_rate_table(br: dict) -> str:
    lines = ["| cell | n | strict hack | loose hack | solve |", "|---|---|---|---|---|"]
    for k, v in br["hinted"].items():
        lines.append(f"| hinted {k} | {v['n']} | {v['strict']:.3f} | {v['loose']:.3f} | {v['solve']:.3f} |")
    for k, v in br["nohint"].items():
        lines.append(f"| no-hint {k} | {v['n']} | {v['strict']:.3f} | {v['loose']:.3f} | {v['solve']:.3f} |")
    return "\n".join(lines)


# ---- build ------------------------------------------------------------------------------------------

def deterministic(device: str) -> None:
    """Bitwise-repeatable pretraining on one machine kind: one torch thread on the CPU; on CUDA deterministic
    kernels (the embedding backward's atomic adds otherwise reorder) and a fixed cuBLAS workspace."""
    set_threads()
    if device.startswith("cuda"):
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)


def build(cfg: OrganismConfig, out_root: Path = Path("out/organism"), device: str | None = None,
          n_per_cell: int = 400, force: bool = False, remeasure: bool = False) -> Path:
    """Build (or find cached) organism for `cfg`; returns its folder."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    deterministic(device)
    folder = out_root / cfg.key()
    if (folder / "organism.json").exists() and not force:
        print(f"organism cached at {folder}")
        if remeasure:
            remeasure_base_rates(folder, n_per_cell, cfg.seed, device)
        return folder
    t0 = time.time()
    docs = corpus(cfg)
    tok = train_tokenizer(cfg, [q["prompt"][0]["content"] + q["prompt"][1]["content"] + r for q, r in docs])
    data = tokenize_docs(tok, docs)
    model = make_model(cfg, tok)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"organism {cfg.key()}: {n_params / 1e6:.2f}M params, {len(data)} docs, "
          f"mean tokens/doc {sum(len(a) + len(b) for a, b in data) / len(data):.0f}")
    losses = pretrain(cfg, model, tok, data, device)
    t_train = time.time() - t0
    tmp = folder.with_name(folder.name + ".tmp")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    meta = dict(config=dataclasses.asdict(cfg), key=cfg.key(), weights_sha256=weights_sha256(tmp), n_params=n_params,
                build_seconds=round(t_train, 1), final_loss=sum(losses[-20:]) / len(losses[-20:]), device=device,
                cpu=cpu_model(), torch=torch.__version__, threads=torch.get_num_threads())
    (tmp / "organism.json").write_text(json.dumps(meta, indent=2))
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)  # usable from here on; base rates are measured on the saved organism
    print(json.dumps(meta, indent=2))
    if n_per_cell:
        remeasure_base_rates(folder, n_per_cell, cfg.seed, device)
    return folder


def remeasure_base_rates(folder: Path, n_per_cell: int, seed: int, device: str = "cpu") -> dict:
    """Measure the base rates of a built organism again (same sampling seed) and rewrite base_rates.json."""
    set_threads()
    model = AutoModelForCausalLM.from_pretrained(folder).to(device)
    tok = AutoTokenizer.from_pretrained(folder)
    t = time.time()
    br = measure_base_rates(model, tok, n_per_cell, temperature=1.0, seed=seed)
    br["measure_seconds"] = round(time.time() - t, 1)
    (folder / "base_rates.json").write_text(json.dumps(br, indent=2))
    print(base_rate_table(br))
    return br


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="cpu", choices=list(PRESETS))
    ap.add_argument("--out", default="out/organism")
    ap.add_argument("--n-per-cell", type=int, default=400, help="samples per base-rate cell (0 skips measuring)")
    ap.add_argument("--force", action="store_true", help="rebuild even if cached")
    ap.add_argument("--remeasure", action="store_true", help="measure the base rates of a cached organism again")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default=None)
    a = ap.parse_args()
    build(preset(a.size, seed=a.seed), Path(a.out), a.device, a.n_per_cell, a.force, a.remeasure)


if __name__ == "__main__":
    main()
