"""Completions decoded once per (model function, prompts, sampling settings) and read back by the other processes of
one driver call (issue 28).

Every arm of a seed starts from the same organism, and every adapter starts with a zero update: before training, each
run of one seed decodes the same evaluation prompts through the same weights from the same generator seed, and so
does its first training step. With PGRPO_SAMPLE_CACHE=<folder>, `sampling.sample` on the CPU with the fast decoder
(which decodes through the merged weights, adapters.merged_weights) looks its key up there before decoding and stores
what it decoded. The key (`key`) is the sha256 of

    the weights the decoder multiplies by: every adapted layer's merged weight (adapters.merged_weight: W plus its
    active blocks' update) and bias, every other parameter and buffer of the model; the model's config;
    the prompts' token ids, temperature, max_new_tokens, the generator seed, the decoder, compile, the EOS and pad
    ids; torch's version, its CPU capability and thread count; a fingerprint of the sources a decode runs through.

Two runs whose adapters differ in structure but not in their update (vanilla's shared quarantine block at zero and
route's own one at zero; scorda's seeded axis piece, whose output is exactly zero) share a key; a run whose update
differs in one bit does not. The decode is deterministic for a key on one machine and commit (one thread, one wave on
the CPU), and it draws from its own generator, not the global one (verify_sample_cache checks a read equals a decode
token for token and leaves the global generator where a decode leaves it). The drivers (scripts/_runner.run_all) set
the folder to one of their own call and remove it when the call ends (a driver killed before its end leaves it under
RUNS/_logs; no later call reads it). A folder set by hand persists; the key's code fingerprint keeps other code from
reading its entries, the machine's torch version, kernels and threads other machines.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

import torch
from torch import nn

from projected_grpo.method import adapters as ad

STATS = {"read": 0, "written": 0}
"""samplings read from the folder, and decoded and written to it, in this process"""


def folder() -> Path | None:
    path = os.environ.get("PGRPO_SAMPLE_CACHE")
    return Path(path) if path else None


def _update(h, name: str, t: torch.Tensor) -> None:
    t = t.detach().cpu().contiguous()
    h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
    h.update(t.view(torch.uint8).numpy().tobytes())


@torch.no_grad()
def model_digest(model: nn.Module) -> str:
    """sha256 of the function the fast decoder computes: each adapted layer as its merged weight and bias (the base
    weight where both blocks are off), tagged merged or off (an unwrapped Linear's weight is hashed untagged, so a
    wrapped model never shares a digest with its base model: the decoder fuses projections only where every one is
    merged), every other parameter and buffer as it is, and the model's config."""
    h = hashlib.sha256(model.config.to_json_string(use_diff=False).encode())
    adapted = ad.adapter_modules(model)
    inside = tuple(f"{n}." for n in adapted)
    for name, mod in model.named_modules():
        if inside and name.startswith(inside):
            continue  # an adapted layer's own tensors: its merged weight stands for them
        if name in adapted:  # tagged merged or off: the decoder fuses projections only where all are merged
            m = adapted[name]
            on = m.deployed_on or m.quarantine_on
            tag = "merged" if on else "adapted-off"
            _update(h, f"{name}.{tag}.weight", ad.merged_weight(m) if on else m.base.weight)
            if m.base.bias is not None:
                _update(h, f"{name}.{tag}.bias", m.base.bias)
            continue
        for pname, t in [*mod.named_parameters(recurse=False), *mod.named_buffers(recurse=False)]:
            if t is not None:
                _update(h, f"{name}.{pname}", t)
    return h.hexdigest()


@functools.cache
def code_fingerprint() -> str:
    """sha256 of the sources a decode runs through (the decoder, sampling, the adapters, model loading, this file):
    a folder a user keeps across commits never serves a decode from other code."""
    here = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for f in (here / "decoder.py", here / "sampling.py", here / "models.py", here / "sample_cache.py",
              Path(ad.__file__).resolve()):
        h.update(f.read_bytes())
    return h.hexdigest()


def key(model: nn.Module, prompts: list[list[int]], **settings) -> str:
    """The cache key of a sampling call (module docstring); settings: every argument of the decode but the model and
    the prompts, by name."""
    h = hashlib.sha256(model_digest(model).encode())
    h.update(json.dumps(prompts, separators=(",", ":")).encode())
    env = dict(torch=torch.__version__, capability=torch.backends.cpu.get_cpu_capability(),
               threads=torch.get_num_threads(), code=code_fingerprint())
    h.update(json.dumps(dict(sorted(settings.items()), **env), sort_keys=True).encode())
    return h.hexdigest()


def get(k: str) -> list[list[int]] | None:
    path = folder() / f"{k}.json"
    if not path.is_file():
        return None
    STATS["read"] += 1
    return json.loads(path.read_text())


def put(k: str, completions: list[list[int]]) -> None:
    """Write atomically (two processes that decoded one key write the same completions)."""
    d = folder()
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / f".{k}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(completions, separators=(",", ":")))
    tmp.replace(d / f"{k}.json")
    STATS["written"] += 1
