"""Prompt tokenisation and batched sampling of completions.

Prompt and completion are tokenised separately and concatenated as ids, so the boundary between
them is exactly where sampling began (never re-tokenise prompt+completion text: the boundary can
shift). The pad id must differ from the EOS id, otherwise masking pads would also mask EOS.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from transformers import LogitsProcessor, LogitsProcessorList

from projected_grpo.loop import sample_cache
from projected_grpo.loop.decoder import DecodeConfig, cut_at_eos, decode
from projected_grpo.method import adapters as ad


def prompt_ids(tok, problem: dict) -> list[int]:
    """Chat-template ids of a problem's prompt, ending with the assistant header (thinking off)."""
    ids = tok.apply_chat_template(problem["prompt"], add_generation_prompt=True, tokenize=True,
                                  enable_thinking=False)
    if isinstance(ids, dict) or hasattr(ids, "keys"):  # some tokenizers return a BatchEncoding
        ids = ids["input_ids"]
    return list(ids)


def check_special_tokens(tok) -> None:
    assert tok.pad_token_id is not None, "tokenizer needs a pad token"
    assert tok.eos_token_id is not None, "tokenizer needs an eos token"
    assert tok.pad_token_id != tok.eos_token_id, "pad id equals eos id: EOS would be masked out of the loss"


@dataclass
class Batch:
    """Right-padded prompt+completion ids; completion_mask marks the sampled tokens (EOS included)."""
    input_ids: Int[Tensor, "b t"]
    attention_mask: Bool[Tensor, "b t"]
    completion_mask: Bool[Tensor, "b t"]


def collate(prompts: list[list[int]], completions: list[list[int]], pad_id: int) -> Batch:
    """Concatenate prompt and completion ids per row and right-pad."""
    assert len(prompts) == len(completions)
    lens = [len(p) + len(c) for p, c in zip(prompts, completions)]
    T = max(lens)
    ids = torch.full((len(lens), T), pad_id, dtype=torch.long)
    attn = torch.zeros((len(lens), T), dtype=torch.bool)
    comp = torch.zeros((len(lens), T), dtype=torch.bool)
    for i, (p, c) in enumerate(zip(prompts, completions)):
        n = len(p) + len(c)
        ids[i, :n] = torch.tensor(p + c, dtype=torch.long)
        attn[i, :n] = True
        comp[i, len(p):n] = True
    return Batch(ids, attn, comp)


class RunSampler(LogitsProcessor):
    """Pure sampling as transformers' generate does it (float32 scores divided by the temperature, softmax, one
    torch.multinomial draw per row), with each run's rows drawn from that run's own generator: a run's draws do not
    depend on which other runs share the batch. A run whose rows have all emitted EOS draws no more (generate stops
    there when the run is alone). Returns scores that are -inf except at the drawn token, for greedy selection."""

    def __init__(self, segments: list[slice], generators: list[torch.Generator], temperature: float, prompt_len: int,
                 eos_id: int):
        assert temperature > 0 and len(segments) == len(generators)
        self.segments, self.generators, self.temperature = segments, generators, temperature
        self.prompt_len, self.eos_id = prompt_len, eos_id

    def __call__(self, input_ids: Int[Tensor, "b t"], scores: Tensor) -> Tensor:
        probs = torch.softmax(scores / self.temperature, dim=-1)
        finished = (input_ids[:, self.prompt_len:] == self.eos_id).any(1)
        out = torch.full_like(scores, -float("inf"))
        for rows, gen in zip(self.segments, self.generators):
            if not bool(finished[rows].all()):
                out[rows].scatter_(1, torch.multinomial(probs[rows], num_samples=1, generator=gen), 0.0)
        return out


def generate_rows(model, tok, prompts: list[list[int]], segments: list[slice], generators: list[torch.Generator],
                  temperature: float, max_new_tokens: int) -> list[list[int]]:
    """transformers' generate on left-padded prompts, each segment of rows sampled from its own generator (greedy at
    temperature 0); completions cut after EOS."""
    device = next(model.parameters()).device
    L = max(map(len, prompts))
    ids = torch.full((len(prompts), L), tok.pad_token_id, dtype=torch.long)
    attn = torch.zeros((len(prompts), L), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, L - len(p):] = torch.tensor(p)
        attn[i, L - len(p):] = 1
    procs = LogitsProcessorList([RunSampler(segments, generators, temperature, L, tok.eos_token_id)]) \
        if temperature > 0 else None
    gen = model.generate(input_ids=ids.to(device), attention_mask=attn.to(device), do_sample=False,
                         logits_processor=procs, max_new_tokens=max_new_tokens, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id)
    return [cut_at_eos(row, tok.eos_token_id, tok.pad_token_id) for row in gen[:, L:].tolist()]


def decode_config(decoder: str, compile: bool) -> DecodeConfig:
    assert decoder in ("fast", "fast-eager"), f"unknown decoder {decoder!r}"
    return DecodeConfig(mode="eager" if decoder == "fast-eager" else "auto", compile=compile)


def run_generator(seed: int, device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


@torch.no_grad()
def sample(model, tok, prompts: list[list[int]], temperature: float, max_new_tokens: int,
           generator_seed: int, batch_size: int = 256, decoder: str = "hf", compile: bool = False) -> list[list[int]]:
    """One completion per prompt (repeat prompts for groups). Returns completion ids, cut after EOS.

    Pure sampling (no top-k, no top-p) so the sampled distribution is the policy's distribution at
    `temperature`. decoder "hf": transformers' generate with left padding, `batch_size` rows per
    call; "fast": projected_grpo.loop.decoder (CUDA graphs on CUDA), "fast-eager": the same without graphs (it
    sizes its own waves to the free memory). Either draws from one generator seeded `generator_seed`, as transformers'
    multinomial sampling draws from the global one. `compile`: the fast decoder's DecodeConfig.compile. With
    PGRPO_SAMPLE_CACHE set, the fast decoder's completions on the CPU are read from there when another process of the
    driver call decoded the same key (loop/sample_cache.py).
    """
    check_special_tokens(tok)
    device = next(model.parameters()).device
    torch.manual_seed(generator_seed)
    gen = run_generator(generator_seed, device)
    if decoder != "hf":
        cached = sample_cache.folder() is not None and device.type == "cpu" and ad.n_runs(model) == 1
        if cached:  # the same decode in another process of this driver call (loop/sample_cache.py)
            k = sample_cache.key(model, prompts, temperature=temperature, max_new_tokens=max_new_tokens,
                                 generator_seed=generator_seed, decoder=decoder, compile=compile,
                                 eos=tok.eos_token_id, pad=tok.pad_token_id)
            hit = sample_cache.get(k)
            if hit is not None:
                return hit
        out = decode(model, prompts, temperature, max_new_tokens, tok.eos_token_id, tok.pad_token_id,
                     cfg=decode_config(decoder, compile), generators=[gen]).tokens
        if cached:
            sample_cache.put(k, out)
        return out
    out: list[list[int]] = []
    was_training = model.training
    model.eval()
    for s in range(0, len(prompts), batch_size):
        chunk = prompts[s:s + batch_size]
        out += generate_rows(model, tok, chunk, [slice(0, len(chunk))], [gen], temperature, max_new_tokens)
    model.train(was_training)
    return out


@torch.no_grad()
def sample_runs(model, tok, prompts: list[list[list[int]]], runs: list[int], temperature: float, max_new_tokens: int,
                generator_seeds: list[int], batch_size: int = 256, decoder: str = "hf",
                compile: bool = False) -> list[list[list[int]]]:
    """Completions for several runs of one batched model (adapters.add_runs): prompts[k] through run runs[k]'s
    adapter, drawn from its own generator seeded generator_seeds[k]; what `sample` would give each run alone, but
    in one generate call per `batch_size` rows of every run (decoder "hf": a run's chunks are the ones it would
    have alone, the runs' i-th chunks generated together; the fast decoder: one decode of every run's rows, each run
    drawn per segment from its generator, each run's adapter merged into its own weights in eager steps and unmerged
    where steps replay CUDA graphs)."""
    assert len(prompts) == len(runs) == len(generator_seeds)
    if len(runs) == 1 and ad.n_runs(model) == 1:
        return [sample(model, tok, prompts[0], temperature, max_new_tokens, generator_seeds[0], batch_size, decoder,
                       compile)]
    check_special_tokens(tok)
    device = next(model.parameters()).device
    gens = [run_generator(seed, device) for seed in generator_seeds]
    if decoder != "hf":
        flat = [p for ps in prompts for p in ps]
        out = decode(model, flat, temperature, max_new_tokens, tok.eos_token_id, tok.pad_token_id,
                     cfg=decode_config(decoder, compile), generators=gens, sizes=[len(ps) for ps in prompts],
                     runs=runs).tokens
        bounds = torch.tensor([0] + [len(ps) for ps in prompts]).cumsum(0).tolist()
        return [out[a:b] for a, b in zip(bounds, bounds[1:])]
    outs: list[list[list[int]]] = [[] for _ in runs]
    was_training = model.training
    model.eval()
    for s in range(0, max(map(len, prompts)), batch_size):
        chunks = [(k, ps[s:s + batch_size]) for k, ps in enumerate(prompts) if ps[s:s + batch_size]]
        rows = [p for _, c in chunks for p in c]
        bounds = torch.tensor([0] + [len(c) for _, c in chunks]).cumsum(0).tolist()
        segments = [slice(a, b) for a, b in zip(bounds, bounds[1:])]
        run_of_row = torch.tensor([runs[k] for k, c in chunks for _ in c], dtype=torch.long)
        with ad.batched_rows(model, run_of_row):
            comps = generate_rows(model, tok, rows, segments, [gens[k] for k, _ in chunks], temperature,
                                  max_new_tokens)
        for (k, _), seg in zip(chunks, segments):
            outs[k] += comps[seg]
    model.train(was_training)
    return outs
