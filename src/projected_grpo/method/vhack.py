"""The hack direction v_hack, extracted before training from hand-authored (hack, clean) pairs.

v_grad, per wrapped module: stack over pairs the difference of per-completion gradients
grad(loss(prompt + hack)) - grad(loss(prompt + clean)) over the module's deployed block, take the
top-k right singular vectors of the stack, and orient each one hack-ward (the majority of pair
differences project positively on it). Gradients are gradients of the loss being minimised, so a
GRPO update that teaches the hack (a rewarded hack rollout) has a positive cosine with v_grad.

Losses:
    nll   mean negative log-likelihood over the completion's tokens (length-normalised)
    grpo  the GRPO-contrastive loss: advantage +1 on the hack, -1 on the clean completion, summed
          over tokens with a fixed denominator, as the training loss is (no length normalisation)

v_act, per layer: mean over completion tokens of the residual stream, hack minus clean, averaged
over pairs.

The trusted span (the TDGA-style projection's basis), per wrapped module: the top-k right singular vectors
(orthonormal rows) of the stack of the pairs' clean completions' deployed-block gradients (mean NLL), one row per
pair, not centred; saved as `trusted.<module>` in a file of its own (`content` = trusted-span).

All per-completion gradients come from one batched backward (adapters.capture_per_sample_grads).
The saved file carries metadata (pair-set hash, model and adapter identity, loss, k) and
`load_vhack` / `load_trusted` refuse a file made for another model or adapter, or of the other content.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from jaxtyping import Float
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from projected_grpo.loop.models import load_policy, log_softmax_at, resolve, weights_id
from projected_grpo.loop.sampling import collate, prompt_ids
from projected_grpo.method import adapters as ad
from projected_grpo.method.pairs import load_pairs, pairset_hash


class VhackMismatch(ValueError):
    """A v_hack file saved for another model or adapter."""


IDENTITY_EXCLUDED = ("transformers_version", "_name_or_path")  # config fields that name where, not what


def model_identity(model) -> str:
    """Hash of the base model's config (without the transformers release that wrote it, so a file stays valid
    under another release, and without the folder it was loaded from, so a file stays valid in another checkout)
    and of its first wrapped weight (tells organisms apart)."""
    cfg = json.dumps({k: v for k, v in model.config.to_dict().items() if k not in IDENTITY_EXCLUDED}, sort_keys=True,
                     default=str)
    first = next(iter(ad.adapter_modules(model).values())).base.weight
    h = hashlib.sha256(cfg.encode())
    h.update(first.detach().float().cpu().numpy().tobytes()[:1 << 20])
    return h.hexdigest()[:16]


def adapter_identity(model) -> str:
    return hashlib.sha256(ad.identity(model).encode()).hexdigest()[:16]


def tokenize_pairs(tok, pairs) -> tuple[list[list[int]], list[list[int]]]:
    """Prompt ids and completion ids for [hack_0, clean_0, hack_1, clean_1, ...]."""
    prompts, comps = [], []
    for p in pairs:
        pid = prompt_ids(tok, p.problem)
        for text in (p.hack, p.clean):
            prompts.append(pid)
            comps.append(tok.encode(text, add_special_tokens=False) + [tok.eos_token_id])
    return prompts, comps


def completion_grads(model, prompts: list[list[int]], comps: list[list[int]], pad_id: int, device: str,
                     loss: str = "nll", sign: Tensor | None = None) -> tuple[dict[str, Float[Tensor, "b p"]], Tensor]:
    """Per module, each completion's deployed-block gradient of its loss, from one batched backward ([b, P]), and the
    per-completion losses. nll: mean NLL over the completion's tokens; grpo: -sign * summed log-probs / 512 (the
    contrastive loss, sign +1 on a hack, -1 on a clean completion). The captured per-rollout state is left in place
    (adapters.write_routed_grads reads it; adapters.clear_captured clears it)."""
    b = collate(prompts, comps, pad_id)
    ids, attn, mask = b.input_ids.to(device), b.attention_mask.to(device), b.completion_mask.to(device)
    mask[:, 0] = False
    with ad.capture_per_sample_grads(model) as mods:
        logits = model(input_ids=ids, attention_mask=attn.long()).logits.float()
        lp = log_softmax_at(logits[:, :-1], ids[:, 1:])
        m = mask[:, 1:].float()
        if loss == "nll":
            per = -(lp * m).sum(1) / m.sum(1).clamp(min=1)
        else:  # contrastive: -advantage * sum log p / fixed denominator
            per = -sign * (lp * m).sum(1) / 512.0
        per.sum().backward()
    return {n: mod.per_sample_grads()["deployed"].detach() for n, mod in mods.items()}, per.detach()


def per_completion_grads(model, tok, pairs, loss: str, device: str, batch_size: int = 32
                         ) -> dict[str, Float[Tensor, "n2 p"]]:
    """Per module, the deployed-block gradient of each completion's loss ([2 * n_pairs, P])."""
    assert loss in ("nll", "grpo"), loss
    prompts, comps = tokenize_pairs(tok, pairs)
    sign = torch.tensor([1.0 if i % 2 == 0 else -1.0 for i in range(len(prompts))], device=device)
    return batched_grads(model, prompts, comps, tok.pad_token_id, device, loss, sign, batch_size)


def batched_grads(model, prompts: list[list[int]], comps: list[list[int]], pad_id: int, device: str, loss: str,
                  sign: Tensor, batch_size: int = 32) -> dict[str, Float[Tensor, "b _p"]]:
    """completion_grads over batches of `batch_size` completions, concatenated in order; the captured state cleared."""
    out: dict[str, list[Tensor]] = {}
    for s in range(0, len(prompts), batch_size):
        G, _ = completion_grads(model, prompts[s:s + batch_size], comps[s:s + batch_size], pad_id, device, loss,
                                sign[s:s + batch_size])
        for name, g in G.items():
            out.setdefault(name, []).append(g)
        ad.clear_captured(model)
        model.zero_grad(set_to_none=True)
    return {n: torch.cat(v) for n, v in out.items()}


def clean_grads(model, tok, pairs, device: str) -> dict[str, Float[Tensor, "n _p"]]:
    """Per module, the deployed-block gradient of each pair's clean completion's mean NLL ([n_pairs, P])."""
    prompts, comps = tokenize_pairs(tok, pairs)
    prompts, comps = prompts[1::2], comps[1::2]
    return batched_grads(model, prompts, comps, tok.pad_token_id, device, "nll", torch.ones(len(prompts), device=device))


def top_k_span(G: Float[Tensor, "n p"], k: int) -> tuple[Float[Tensor, "k p"], Float[Tensor, " k"]]:
    """The top-k right singular vectors of G (orthonormal rows; not centred, signs as the SVD gives them) and their
    singular values."""
    assert k <= min(G.shape), f"a rank-{k} span of a {tuple(G.shape)} gradient stack"
    _, s, vh = torch.linalg.svd(G.double(), full_matrices=False)
    return vh[:k].float(), s[:k].float()


def extract_trusted(model, tok, pairs, k: int, device: str = "cpu") -> tuple[dict[str, Tensor], dict]:
    """The trusted span per module: top_k_span of the pairs' clean completions' gradients (clean_grads); reports the
    share of the stack's squared Frobenius norm the span holds (mean over modules)."""
    G = clean_grads(model, tok, pairs, device)
    U, share = {}, []
    for n, g in G.items():
        U[n], s = top_k_span(g, k)
        share.append(float((s.double() ** 2).sum() / (g.double() ** 2).sum().clamp(min=1e-300)))
    return U, dict(n_clean=len(pairs), span_energy_share=sum(share) / len(share))


def pair_differences(grads: dict[str, Tensor], loss: str) -> dict[str, Float[Tensor, "n p"]]:
    """Hack minus clean per pair (for grpo the clean row already carries the -1 advantage)."""
    return {n: (g[0::2] + g[1::2]) if loss == "grpo" else (g[0::2] - g[1::2]) for n, g in grads.items()}


def top_k_oriented(D: Float[Tensor, "n p"], k: int) -> Float[Tensor, "k p"]:
    """Top-k right singular vectors of the pair-difference stack, each oriented so that most pair
    differences project positively on it."""
    _, _, vh = torch.linalg.svd(D.double(), full_matrices=False)
    V = vh[: min(k, vh.shape[0])]
    signs = torch.sign((D.double() @ V.T > 0).double().sum(0) - (D.double() @ V.T < 0).double().sum(0))
    signs[signs == 0] = 1
    return (V * signs[:, None]).float()


def extract(model, tok, pairs, loss: str = "nll", k: int = 1, device: str = "cpu", heldout_every: int = 4
            ) -> tuple[dict[str, Tensor], dict]:
    """v_grad per module from the fit pairs; reports sign accuracy on held-out pairs (every
    `heldout_every`-th pair is held out)."""
    held = [p for i, p in enumerate(pairs) if heldout_every and i % heldout_every == heldout_every - 1]
    fit = [p for p in pairs if p not in held]
    assert len(fit) >= 2, "need at least two pairs to fit v_hack"
    D_fit = pair_differences(per_completion_grads(model, tok, fit, loss, device), loss)
    V = {n: top_k_oriented(D, k) for n, D in D_fit.items()}
    report = dict(n_fit=len(fit), n_heldout=len(held), fit_sign_acc=sign_accuracy(D_fit, V))
    if held:
        D_held = pair_differences(per_completion_grads(model, tok, held, loss, device), loss)
        report["heldout_sign_acc"] = sign_accuracy(D_held, V)
    return V, report


def sign_accuracy(D: dict[str, Tensor], V: dict[str, Tensor]) -> float:
    """Share of pairs whose difference, concatenated over modules, projects positively on v
    (first direction per module, concatenated)."""
    proj = sum(D[n].double() @ V[n][0].double() for n in D)
    return float((proj > 0).double().mean())


def extract_vact(model, tok, pairs, device: str = "cpu") -> Float[Tensor, "l d"]:
    """v_act: per layer, mean completion-token residual activation of hack minus clean."""
    prompts, comps = tokenize_pairs(tok, pairs)
    b = collate(prompts, comps, tok.pad_token_id)
    with torch.no_grad():
        hs = model(input_ids=b.input_ids.to(device), attention_mask=b.attention_mask.long().to(device),
                   output_hidden_states=True).hidden_states
    m = b.completion_mask.to(device).float()[..., None]
    means = torch.stack([(h.float() * m).sum(1) / m.sum(1) for h in hs[1:]])  # [l, 2n, d]
    return (means[:, 0::2] - means[:, 1::2]).mean(1)


def layer_input_contrast(model, tok, pairs, device: str = "cpu") -> dict[str, Float[Tensor, " d_in"]]:
    """Per adapted linear layer: the mean over pairs of (mean completion-token input of the hack completion
    minus that of the clean one), read from the reference policy (both blocks off, i.e. the base model)."""
    prompts, comps = tokenize_pairs(tok, pairs)
    b = collate(prompts, comps, tok.pad_token_id)
    m = b.completion_mask.to(device).float()[..., None]
    means: dict[str, Tensor] = {}

    def hook(name):
        def f(_mod, inp):
            x = inp[0].float()
            means[name] = (x * m).sum(1) / m.sum(1)  # [2n, d_in]
        return f

    mods = ad.adapter_modules(model)
    handles = [mod.register_forward_pre_hook(hook(n)) for n, mod in mods.items()]
    try:
        with torch.no_grad(), ad.reference_policy(model):
            model(input_ids=b.input_ids.to(device), attention_mask=b.attention_mask.long().to(device))
    finally:
        for h in handles:
            h.remove()
    assert set(means) == set(mods), "some adapted layers saw no input"
    return {n: (x[0::2] - x[1::2]).mean(0) for n, x in means.items()}


VHACK, TRUSTED = "v_hack", "trusted-span"
"""The two contents of a direction file (metadata `content`; files written before the trusted span have none: v_hack)."""


def save_vhack(path: str | Path, V: dict[str, Tensor], model, meta: dict, vact: Tensor | None = None) -> None:
    tensors = {f"v_grad.{n}": v.contiguous().cpu() for n, v in V.items()}
    if vact is not None:
        tensors["v_act"] = vact.contiguous().cpu()
    save_tensors(path, tensors, model, dict(meta, content=VHACK))


def save_trusted(path: str | Path, U: dict[str, Tensor], model, meta: dict) -> None:
    save_tensors(path, {f"trusted.{n}": u.contiguous().cpu() for n, u in U.items()}, model, dict(meta, content=TRUSTED))


def save_tensors(path: str | Path, tensors: dict[str, Tensor], model, meta: dict) -> None:
    """tensors and meta (json-encoded where not a string, with the model's and adapter's identity) to `path`,
    atomically."""
    md = {k: json.dumps(v) if not isinstance(v, str) else v for k, v in meta.items()}
    md.update(model_identity=model_identity(model), adapter_identity=adapter_identity(model))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=md)
    tmp.replace(path)


def load_vact(path: str | Path, model) -> Float[Tensor, "l d"]:
    """v_act of a v_hack file (checked against the model and adapter as load_vhack does)."""
    _, md = load_vhack(path, model)
    with safe_open(str(path), "pt") as f:
        assert "v_act" in f.keys(), f"{path}: no v_act (extracted by an older extract_vhack_grad.py)"
        return f.get_tensor("v_act")


def load_vhack(path: str | Path, model) -> tuple[dict[str, Tensor], dict]:
    """(v_grad per module, metadata); raises VhackMismatch if saved for another model/adapter or not a v_hack."""
    return load_tensors(path, model, VHACK, "v_grad.")


def load_trusted(path: str | Path, model) -> tuple[dict[str, Tensor], dict]:
    """(trusted span per module, metadata); raises VhackMismatch as load_vhack does."""
    return load_tensors(path, model, TRUSTED, "trusted.")


def load_tensors(path: str | Path, model, content: str, prefix: str) -> tuple[dict[str, Tensor], dict]:
    """(the file's `prefix` tensors per module, metadata), checked: its content, model and adapter are these."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no {content} file (run scripts/extract_vhack_grad.py)")
    with safe_open(str(path), "pt") as f:
        md = f.metadata() or {}
        V = {k.removeprefix(prefix): f.get_tensor(k) for k in f.keys() if k.startswith(prefix)}
    if md.get("content", VHACK) != content:
        raise VhackMismatch(f"{path}: a {md.get('content')} file, not a {content} file")
    for key, ours in (("model_identity", model_identity(model)), ("adapter_identity", adapter_identity(model))):
        if md.get(key) != ours:
            raise VhackMismatch(f"{path}: {content} was extracted for another {key.split('_')[0]} "
                                f"({md.get(key)} != {ours}); re-extract for this model and adapter")
    return V, md


def extract_to_file(out: str | Path, pairs: str, model: str, adapter: str = "svd", rank: int = -1,
                    quarantine: str = "shared", adapter_seed: int = 0, loss: str = "nll", k: int = 1,
                    heldout_every: int = 4, device: str = "") -> dict:
    """v_grad and v_act of the pair set `pairs` for `model` wrapped with the given adapter, saved to `out` with their
    metadata (scripts/extract_vhack_grad.py); returns the metadata."""
    pair_list = load_pairs(pairs)
    policy, tok, dev = wrapped_policy(model, adapter, rank, quarantine, adapter_seed, device)
    V, report = extract(policy, tok, pair_list, loss=loss, k=k, device=dev, heldout_every=heldout_every)
    vact = extract_vact(policy, tok, pair_list, device=dev)
    meta = dict(file_meta(pairs, pair_list, model, adapter, rank, quarantine), loss=loss, k=k, **report)
    save_vhack(Path(out), V, policy, meta, vact)
    return meta


def extract_trusted_to_file(out: str | Path, pairs: str, model: str, adapter: str = "svd", rank: int = -1,
                            quarantine: str = "shared", adapter_seed: int = 0, k: int = 5, device: str = "") -> dict:
    """The trusted span (extract_trusted: rank k, from the clean sides of the pair set `pairs`) for `model` wrapped
    with the given adapter, saved to `out` with its metadata (scripts/extract_vhack_grad.py --trusted-span); returns
    the metadata."""
    pair_list = load_pairs(pairs)
    policy, tok, dev = wrapped_policy(model, adapter, rank, quarantine, adapter_seed, device)
    U, report = extract_trusted(policy, tok, pair_list, k, dev)
    meta = dict(file_meta(pairs, pair_list, model, adapter, rank, quarantine), loss="nll", k=k, **report)
    save_trusted(Path(out), U, policy, meta)
    return meta


def wrapped_policy(model: str, adapter: str, rank: int, quarantine: str, adapter_seed: int, device: str):
    """(policy wrapped with the adapter, tokenizer, its device)."""
    policy, tok = load_policy(model, device or None)
    ad.wrap_model(policy, ad.AdapterConfig(kind=adapter, rank=None if rank == -1 else rank, quarantine=quarantine,
                                           seed=adapter_seed))
    return policy, tok, str(next(policy.parameters()).device)


def file_meta(pairs: str, pair_list, model: str, adapter: str, rank: int, quarantine: str) -> dict:
    """What a direction file records of its pairs (spec and hash), model (spec, folder, weights' sha256) and adapter."""
    return dict(pairs=pairs, pairset_hash=pairset_hash(pair_list), n_pairs=len(pair_list), model=model,
                model_source=resolve(model), model_sha256=weights_id(model), adapter=adapter, rank=rank,
                quarantine=quarantine)
