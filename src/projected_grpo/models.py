"""Loading policies: the organism (built here) or any transformers causal LM by hub id or path.

    "organism:cpu"        the CPU-size organism (built under out/organism if missing)
    "organism:tiny"       the tiny organism used by checks
    "Qwen/Qwen3-4B"       a hub id (needs network) or a local folder

bf16 on a GPU, fp32 on the CPU. A hacking teacher can be a peft LoRA adapter on the base model,
merged into it (`load_teacher`).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable, Iterator

import torch


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve(spec: str) -> str:
    """Model spec -> a folder or hub id that from_pretrained accepts."""
    if spec.startswith("organism:"):
        from projected_grpo.organism.build import organism_path

        return str(organism_path(spec.split(":", 1)[1]))
    return spec


def load_policy(spec: str, device: str | None = None, dtype: torch.dtype | None = None):
    """(model, tokenizer) for `spec`, model on `device` in eval mode with every weight frozen."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = device or default_device()
    dtype = dtype or (torch.bfloat16 if device.startswith("cuda") else torch.float32)
    path = resolve(spec)
    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token_id is None or tok.pad_token_id == tok.eos_token_id:
        # a distinct pad token keeps EOS inside the loss mask
        tok.add_special_tokens({"pad_token": "<|pad|>"}) if "<|pad|>" not in tok.get_vocab() else None
        tok.pad_token = "<|pad|>"
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device)
    if len(tok) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tok))
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()
    return model, tok


@contextlib.contextmanager
def shape_checks_off() -> Iterator[None]:
    """BEARTYPE=1's runtime shape checks off inside (dynamo does not trace jaxtyping's checker, so compiled
    code runs unchecked; eager runs of the same code keep the checks)."""
    import jaxtyping

    was = jaxtyping.config.jaxtyping_disable
    jaxtyping.config.update("jaxtyping_disable", True)
    try:
        yield
    finally:
        jaxtyping.config.update("jaxtyping_disable", was)


def compile_layers(model) -> Callable[[], None]:
    """torch.compile every decoder layer's forward in place (regional compilation: the layers share one
    compiled graph, since their weights enter as inputs; a second sequence length recompiles it with
    dynamic shapes). Fuses the norms, rotary embedding, activations and the adapters' elementwise work of
    the training and log-prob forwards and their backward; the fast decoder calls the layers' parts, not
    their forward, so it is unaffected. Per-rollout capture works through it (adapters: probes, no
    hooks). Forwards must pass use_cache=False (a KV cache indexes layers and would recompile per
    layer). Shape checks are off until restore (shape_checks_off). Returns a function that restores
    eager layers and the checks."""
    import torch._dynamo

    layers, checks = model.model.layers, shape_checks_off()
    checks.__enter__()
    # grad on/off, capture on/off, blocks on/off and two lengths each make a guarded graph: room for them
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
    for layer in layers:
        layer.compile()

    def restore() -> None:
        for layer in layers:
            layer._compiled_call_impl = None
        checks.__exit__(None, None, None)

    return restore


def load_teacher(base_spec: str, adapter_path: str, device: str | None = None):
    """A hacking teacher: base model with a peft LoRA adapter merged in (e.g. the environment's
    `ariahw/rl-rewardhacking-leetcode-rh-s65` on Qwen3-4B)."""
    from peft import PeftModel

    model, tok = load_policy(base_spec, device)
    merged = PeftModel.from_pretrained(model, adapter_path).merge_and_unload()
    for p in merged.parameters():
        p.requires_grad_(False)
    return merged.eval(), tok


def is_local(spec: str) -> bool:
    return spec.startswith("organism:") or Path(spec).exists()
