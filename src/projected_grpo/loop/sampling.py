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

from projected_grpo.loop.decoder import DecodeConfig, cut_at_eos, decode


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


@torch.no_grad()
def sample(model, tok, prompts: list[list[int]], temperature: float, max_new_tokens: int,
           generator_seed: int, batch_size: int = 256, decoder: str = "hf", compile: bool = False) -> list[list[int]]:
    """One completion per prompt (repeat prompts for groups). Returns completion ids, cut after EOS.

    Pure sampling (top_k=0, top_p=1) so the sampled distribution is the policy's distribution at
    `temperature`. decoder "hf": transformers' generate with left padding, `batch_size` rows per
    call; "fast": projected_grpo.loop.decoder (CUDA graphs on CUDA), "fast-eager": the same without
    graphs; the fast decoder sizes its own waves to the free memory. `compile`: the fast decoder's
    DecodeConfig.compile.
    """
    check_special_tokens(tok)
    device = next(model.parameters()).device
    torch.manual_seed(generator_seed)
    if decoder != "hf":
        assert decoder in ("fast", "fast-eager"), f"unknown decoder {decoder!r}"
        cfg = DecodeConfig(mode="eager" if decoder == "fast-eager" else "auto", compile=compile)
        return decode(model, prompts, temperature, max_new_tokens, tok.eos_token_id, tok.pad_token_id, cfg=cfg).tokens
    out: list[list[int]] = []
    was_training = model.training
    model.eval()
    for s in range(0, len(prompts), batch_size):
        chunk = prompts[s:s + batch_size]
        L = max(map(len, chunk))
        ids = torch.full((len(chunk), L), tok.pad_token_id, dtype=torch.long)
        attn = torch.zeros((len(chunk), L), dtype=torch.long)
        for i, p in enumerate(chunk):
            ids[i, L - len(p):] = torch.tensor(p)
            attn[i, L - len(p):] = 1
        gen = model.generate(
            input_ids=ids.to(device), attention_mask=attn.to(device), do_sample=temperature > 0,
            temperature=temperature if temperature > 0 else None, top_k=0 if temperature > 0 else None,
            top_p=1.0 if temperature > 0 else None,
            max_new_tokens=max_new_tokens, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        )
        for row in gen[:, L:].tolist():
            out.append(cut_at_eos(row, tok.eos_token_id, tok.pad_token_id))
    model.train(was_training)
    return out
