"""Gate: the fast decoder (projected_grpo.loop.decoder, eager mode on the CPU) against transformers' generate.

Tiny random Qwen3 (GQA, q_norm/k_norm, tied embeddings) and Llama (GQA, untied) built from configs,
vocab 64 so that EOS (id 1) is drawn often enough to stop rows at different steps. Prompts of mixed
length (left padding inside both decoders). For each architecture, on the bare model and through
SVD and LoRA adapters (quarantine own, and SVD with a shared quarantine; both blocks nonzero) with the quarantine block kept and
ablated (deployment ablation):

1. greedy decoding gives the same tokens as generate
2. sampling with the same seed (temperature 1, and temperature 0.7 with top-k 8 and top-p 0.9; one seed each,
   8 rows of up to 24 tokens) gives the same tokens as generate
3. the decoder's per-token log-probs equal the training path's (grpo.token_logprobs on the
   right-padded prompt+completion batch) within 1e-3
4. EOS stops rows individually (some rows end with EOS before the cap, some run to the cap)
5. several waves (max_batch 3 for 9 prompts) give the same tokens as generate in chunks of 3
6. deployment ablation changes the decoded tokens (the adapter conditions are not vacuous)
7. checks 1-3 hold with the adapters merged into the weights (the default), unmerged with the matmul
   attention kernel, and merged with the matmul kernel; the merged decode really runs the merged
   weights (and the unmerged one does not), each layer's q/k/v and gate/up as one fused matmul each (the
   modules they replace not called; checks 1-3 also on a tiny Qwen2 whose q/k/v carry random biases);
   switching blocks inside adapters.merged_weights is refused
8. waves whose rows all stop early (waves of 1 row) still give generate's tokens in chunks of 1: the
   decoder draws nothing after a wave's last row has ended, as generate does
9. adapters.merged_weights gives the same logits as the unmerged forward for every adapter structure
   (svd and lora, own and shared quarantine, svd with the axis piece in either block), with blocks kept,
   ablated and off, within 1e-4 in float32
10. shared prompts (GRPO groups: each of 4 prompts repeated 3 times): the decoder runs them as groups of 3
   (one prefill and one prompt KV per group, each row its own new tokens, cascade attention) and gives generate's tokens,
   greedy and sampled, in one wave and in waves of 2 groups (generate in chunks of 6), with log-probs
   within 1e-3 of the training path, for both attention kernels; also (greedy) 5 groups in waves of 2
   groups with a filler group, prefilled one group at a time; two adjacent groups with the same prompt
   stay groups of 3 (runs of 6 and 3); unequal runs (3, 3, 3, 2) fall back to a group of 1. With blocks kept:
   merged on the SVD adapter (own quarantine; merged, every adapter structure decodes with plain weights), unmerged
   with the matmul kernel on every adapter. (CPU only: the
   CUDA kernels and graph replay across waves are checked by smoke_gpu, graph against eager.)
11. with the layers' work around the attention torch.compile'd (DecodeConfig.compile), on the SVD adapter
   (own quarantine) of each architecture: checks 1-3 and 10 hold, greedy tokens equal the eager ones, and
   dynamo really compiled (its graph count grew). The backend is aot_eager (dynamo's capture and AOTAutograd's
   graphs, eager kernels; _gate_common.cheap_cpu_compile); PGRPO_COMPILE_BACKEND=inductor runs inductor's code
   generation too (smoke_gpu does, on the GPU)

`just smoke` runs the fast tier (adapter_plan: every adapter structure on qwen3, the SVD adapter with its own quarantine
on llama; the shared-prompt checks on the conditions whose code path they add; one of the two sampling settings per
adapter condition, in turn; the compiled decoder, which only CUDA runs use, in smoke-full and smoke_gpu); `just smoke-full`
(PGRPO_SMOKE_FULL=1) runs the whole matrix above.

transformers' generate runs once per model condition and setting: the decoder variants of one condition are
compared with its memoized output (hf).
"""

from __future__ import annotations

import contextlib
import functools
import sys
import time
from types import SimpleNamespace


import torch  # noqa: E402

from projected_grpo.method import adapters as ad  # noqa: E402
from projected_grpo.loop.decoder import DecodeConfig, decode  # noqa: E402
from projected_grpo.loop.models import shape_checks_off  # noqa: E402
from projected_grpo.loop.grpo import token_logprobs  # noqa: E402
from projected_grpo.loop.decoder import cut_at_eos  # noqa: E402
from projected_grpo.loop.sampling import collate  # noqa: E402

from _gate_common import cheap_cpu_compile, compiled_graphs, full_tier, tier  # noqa: E402

FULL = full_tier()

VOCAB, EOS, PAD, NEW = 64, 1, 0, 24
TOK = SimpleNamespace(eos_token_id=EOS, pad_token_id=PAD)


def build(kind: str):
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(0 if kind == "qwen3" else 1)
    common = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                  eos_token_id=EOS, pad_token_id=PAD, bos_token_id=None)
    if kind == "qwen3":
        model = Qwen3ForCausalLM(Qwen3Config(head_dim=16, tie_word_embeddings=True, **common))
    else:
        model = LlamaForCausalLM(LlamaConfig(tie_word_embeddings=False, **common))
    for p in model.parameters():
        p.requires_grad_(False)
    with torch.no_grad():  # larger logits: sharper distributions, greedy margins well above float noise
        model.lm_head.weight.mul_(8.0)
    return model.eval()


def biased_qwen2():
    """A tiny Qwen2 (q/k/v projections with biases), its biases random, wrapped with the SVD adapter (own
    quarantine), both blocks moved off zero: the fused q/k/v matmul must carry the concatenated biases."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(2)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                                         eos_token_id=EOS, pad_token_id=PAD, bos_token_id=None))
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        model.lm_head.weight.mul_(8.0)
        for layer in model.model.layers:
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                proj.bias.copy_(0.5 * torch.randn(proj.bias.shape, generator=g))
    for p in model.parameters():
        p.requires_grad_(False)
    ad.wrap_model(model, ad.AdapterConfig(kind="svd", rank=4, quarantine="own", cache_dir=None))
    with torch.no_grad():
        for p in ad.deployed_params(model) + ad.quarantine_params(model):
            p.add_(torch.randn(p.shape, generator=g))
    return model.eval()


def prompts(n: int, seed: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(2, VOCAB, (int(torch.randint(3, 13, (1,), generator=g)),), generator=g).tolist()
            for _ in range(n)]


HF_MEMO: dict[tuple, list[list[int]]] = {}  # hf's outputs by (model fingerprint, arguments)
HF_CALLS = {False: 0, True: 0}  # hf calls that ran generate (False) and that reused its output (True)


def fingerprint(model) -> bytes:
    """The model's logits on a fixed input (every token id once), as bytes: equal for two calls only when the model
    (weights, blocks kept or ablated) computes the same function there."""
    with torch.no_grad():
        return model(input_ids=torch.arange(VOCAB)[None], use_cache=False).logits.numpy().tobytes()


def hf(model, ps: list[list[int]], temperature: float, top_k: int, top_p: float, seed: int,
       chunk: int = 1000) -> list[list[int]]:
    """transformers' generate, left-padded, in chunks of `chunk` prompts, global seed `seed`. Memoized on the model's
    fingerprint and the arguments: the decoder variants of one model condition (merged, unmerged+matmul,
    merged+matmul, compiled) are compared with one generate call per setting (generate is deterministic on the
    CPU given the seed; a changed model misses the memo)."""
    key = (fingerprint(model), tuple(map(tuple, ps)), temperature, top_k, top_p, seed, chunk)
    HF_CALLS[key in HF_MEMO] += 1
    if key not in HF_MEMO:
        HF_MEMO[key] = _hf(model, ps, temperature, top_k, top_p, seed, chunk)
    return [list(r) for r in HF_MEMO[key]]


def _hf(model, ps: list[list[int]], temperature: float, top_k: int, top_p: float, seed: int,
        chunk: int) -> list[list[int]]:
    torch.manual_seed(seed)
    out = []
    for s in range(0, len(ps), chunk):
        part = ps[s:s + chunk]
        L = max(map(len, part))
        ids = torch.full((len(part), L), PAD)
        attn = torch.zeros((len(part), L), dtype=torch.long)
        for i, p in enumerate(part):
            ids[i, L - len(p):], attn[i, L - len(p):] = torch.tensor(p), 1
        kw = dict(do_sample=True, temperature=temperature, top_k=top_k, top_p=top_p) if temperature > 0 \
            else dict(do_sample=False, temperature=None, top_k=None, top_p=None)
        gen = model.generate(input_ids=ids, attention_mask=attn, max_new_tokens=NEW, eos_token_id=EOS,
                             pad_token_id=PAD, **kw)
        out += [cut_at_eos(r, EOS, PAD) for r in gen[:, L:].tolist()]
    return out


ADAPTERS = (("svd", 4, "own"), ("lora", 4, "own"), ("svd", 4, "shared"))  # kind, rank, quarantine structure
VARIANT = dict(merge=True, attention="sdpa", compile=False)  # decoder settings under test (main() switches them)


SHAPE_CHECKED: set[tuple] = set()  # decoder code paths (settings, waves, prefill, shared groups) already shape-checked


def fast(model, ps, temperature, top_k, top_p, seed, max_batch=0, prefill_rows=16):
    """The decoder under test. Under BEARTYPE=1 its shapes are checked on the first decode of each code path (the
    decoder settings, sampling or greedy, waves, prefill rows, shared-prompt groups); repeats of a path run with the
    checks off (the same shapes again: a third of the gate's time, for nothing new)."""
    path = (tuple(VARIANT.items()), temperature > 0, top_k > 0, max_batch, prefill_rows,
            len(ps) != len(set(map(tuple, ps))))
    checks = contextlib.nullcontext() if path not in SHAPE_CHECKED else shape_checks_off()
    SHAPE_CHECKED.add(path)
    with checks:
        return _fast(model, ps, temperature, top_k, top_p, seed, max_batch, prefill_rows)


def _fast(model, ps, temperature, top_k, top_p, seed, max_batch, prefill_rows):
    torch.manual_seed(seed)
    return decode(model, ps, temperature, NEW, EOS, PAD, top_k=top_k, top_p=top_p,
                  cfg=DecodeConfig(mode="eager", max_batch=max_batch, logprobs=True, bucket=8, prefill_rows=prefill_rows,
                                   **VARIANT))


def logprob_err(model, ps, out) -> float:
    """Largest |decoder log-prob - training-path log-prob| over all completion tokens."""
    b = collate(ps, out.tokens, PAD)
    with torch.no_grad():
        lp = token_logprobs(model, b.input_ids, b.attention_mask)
    err = 0.0
    for i, (p, lps) in enumerate(zip(ps, out.logprobs)):
        ref = lp[i, len(p):len(p) + len(lps)]
        err = max(err, (ref - torch.tensor(lps)).abs().max().item())
    return err


def check_condition(model, name: str, stats: dict) -> list[list[int]]:
    """Checks 1-4 on one model condition; returns its greedy tokens."""
    ps = prompts(8, 11)
    greedy_hf = hf(model, ps, 0.0, 0, 1.0, 0)
    greedy = fast(model, ps, 0.0, 0, 1.0, 0)
    assert greedy.tokens == greedy_hf, f"{name}: greedy tokens differ from generate"
    settings = ((1.0, 0, 1.0), (0.7, 8, 0.9))
    if not FULL and "/" in name.split("/", 1)[1]:  # fast tier, adapter conditions: one sampling setting each, in turn
        settings = settings[stats["conditions"] % 2:][:1]
    for temp, k, p in settings:
        for seed in (5,):  # a second seed (6) compared the same code paths again (cut for the smoke's time)
            ref = hf(model, ps, temp, k, p, seed)
            out = fast(model, ps, temp, k, p, seed)
            assert out.tokens == ref, f"{name}: sampled tokens (T={temp}, top_k={k}, top_p={p}, seed {seed}) differ"
            err = logprob_err(model, ps, out)
            assert err < 1e-3, f"{name}: log-prob error {err}"
            stats["lp_err"] = max(stats["lp_err"], err)
            stats["tokens"] += sum(map(len, out.tokens))
            stats["eos_rows"] += sum(t[-1] == EOS and len(t) < NEW for t in out.tokens)
            stats["full_rows"] += sum(len(t) == NEW and t[-1] != EOS for t in out.tokens)
    stats["conditions"] += 1
    return greedy.tokens


def check_waves(model, name: str) -> int:
    ps = prompts(9, 12)
    for temp in (0.0, 1.0):
        ref = hf(model, ps, temp, 0, 1.0, 7, chunk=3)
        out = fast(model, ps, temp, 0, 1.0, 7, max_batch=3)
        assert out.waves == 3 and out.batch == 3, (out.waves, out.batch)
        assert out.tokens == ref, f"{name}: waves of 3 (T={temp}) differ from generate in chunks of 3"
    return 3


def check_shared(model, name: str, stats: dict) -> int:
    """Check 10 on one model condition; returns the number of shared-prompt decodes compared."""
    ps = [list(p) for p in prompts(4, 14) for _ in range(3)]  # equal prompts as separate lists, as GRPO builds them
    n = 0
    for temp, k, p in ((0.0, 0, 1.0), (1.0, 0, 1.0), (0.7, 8, 0.9)):
        for max_batch, chunk in ((0, 1000), (6, 6)):
            ref = hf(model, ps, temp, k, p, 9, chunk=chunk)
            out = fast(model, ps, temp, k, p, 9, max_batch=max_batch)
            assert out.group == 3, f"{name}: groups of equal prompts not shared (group {out.group})"
            assert (out.waves, out.batch) == ((1, 12) if not max_batch else (2, 6)), (out.waves, out.batch)
            assert out.tokens == ref, f"{name}: shared prompts (T={temp}, waves of {max_batch or 12}) differ from generate"
            err = logprob_err(model, ps, out)
            assert err < 1e-3, f"{name}: shared prompts: log-prob error {err}"
            stats["lp_err"] = max(stats["lp_err"], err)
            n += 1
    # 5 groups in waves of 2 groups (the last filled up with a filler group), prefilled one group at a time: greedy
    five = [list(p) for p in prompts(5, 15) for _ in range(3)]
    out = fast(model, five, 0.0, 0, 1.0, 9, max_batch=6, prefill_rows=1)
    assert (out.group, out.waves, out.batch) == (3, 3, 6), (out.group, out.waves, out.batch)
    assert out.tokens == hf(model, five, 0.0, 0, 1.0, 9), f"{name}: shared prompts with a filler group differ (greedy)"
    # two adjacent groups with the same prompt (runs of 6 and 3): still groups of 3
    twin = ps[:3] + ps[:3] + ps[3:6]
    out = fast(model, twin, 1.0, 0, 1.0, 9)
    assert out.group == 3 and out.tokens == hf(model, twin, 1.0, 0, 1.0, 9), f"{name}: adjacent equal groups"
    uneven = ps[:-1]  # runs of 3, 3, 3, 2: no common group size
    out = fast(model, uneven, 1.0, 0, 1.0, 9)
    assert out.group == 1 and out.tokens == hf(model, uneven, 1.0, 0, 1.0, 9), f"{name}: unequal runs"
    return n + 3


def refuses_stale_merge(model) -> int:
    """1 if switching a block inside adapters.merged_weights fails loudly at the next forward."""
    ids = torch.tensor([prompts(1, 3)[0]])
    with ad.merged_weights(model), ad.deployment_ablation(model):
        try:
            model(input_ids=ids)
        except RuntimeError as e:
            return int("stale" in str(e))
    return 0


def merge_is_used(model) -> int:
    """1 if decoding with merge=True runs every adapted layer on its merged weight, with each layer's q/k/v and
    gate/up fused into one matmul each (the modules those replace not called), and merge=False none of that."""
    seen: dict[bool, list[bool]] = {True: [], False: []}
    called: dict[bool, set[str]] = {True: set(), False: set()}
    fused: dict[bool, int] = {}
    mods = ad.adapter_modules(model)

    def hook(mod, _i, _o, merge):
        seen[merge].append(mod.merged is not None)
        called[merge].add(mod.name.rsplit(".", 1)[-1])

    for merge in (True, False):
        hooks = [m.register_forward_hook(functools.partial(hook, merge=merge)) for m in mods.values()]
        try:
            fused[merge] = decode(model, prompts(2, 4), 1.0, 3, EOS, PAD,
                                  cfg=DecodeConfig(mode="eager", merge=merge)).fused
        finally:
            for h in hooks:
                h.remove()
    groups = 2 * len(model.model.layers)
    assert fused == {True: groups, False: 0}, f"fused projection groups {fused}, expected {groups} merged, 0 unmerged"
    assert called[True] == {"o_proj", "down_proj"} and len(called[False]) == 7, called
    return int(seen[True] and all(seen[True]) and seen[False] and not any(seen[False]))


def check_early_waves(model, name: str) -> int:
    """Waves of one row against generate in chunks of one; returns how many waves that have a later wave (where
    an extra draw would show) ended before the cap."""
    import copy
    from collections import Counter

    ps = prompts(9, 13)
    model = copy.deepcopy(model)  # EOS made as likely as the most common greedy token, so rows end early
    common = Counter(t for row in hf(model, ps, 0.0, 0, 1.0, 0) for t in row if t != EOS).most_common(1)[0][0]
    with torch.no_grad():
        model.lm_head.weight[EOS] = model.lm_head.weight[common]
    early = 0
    for seed in range(8, 12):
        ref = hf(model, ps, 1.0, 0, 1.0, seed, chunk=1)
        out = fast(model, ps, 1.0, 0, 1.0, seed, max_batch=1)
        assert out.tokens == ref, f"{name}: waves of 1 (seed {seed}) differ from generate in chunks of 1"
        early += sum(len(t) < NEW for t in out.tokens[:-1])
    return early


def merged_logit_err() -> tuple[float, int]:
    """Largest |logit(merged) - logit(unmerged)| over adapter structures and block states (float32)."""
    ps = torch.tensor(prompts(3, 21)[0])[None]
    worst, cases = 0.0, 0
    for adapter, quarantine, axis in (("svd", "own", "none"), ("svd", "shared", "none"), ("lora", "own", "none"),
                                      ("lora", "shared", "none"), ("svd", "own", "quarantine"), ("svd", "own", "deployed")):
        model = build("qwen3")
        ad.wrap_model(model, ad.AdapterConfig(kind=adapter, rank=4, quarantine=quarantine, axis=axis, cache_dir=None))
        g = torch.Generator().manual_seed(4)
        with torch.no_grad():
            if axis != "none":
                ad.seed_axis(model, {n: torch.randn(m.d_in, generator=g) for n, m in ad.adapter_modules(model).items()})
            for p in ad.deployed_params(model) + ad.quarantine_params(model):
                p.add_(0.3 * torch.randn(p.shape, generator=g))
            for state in (contextlib.nullcontext, lambda: ad.deployment_ablation(model), lambda: ad.reference_policy(model)):
                with state():
                    ref = model(input_ids=ps).logits
                    with ad.merged_weights(model):
                        got = model(input_ids=ps).logits
                worst, cases = max(worst, (got - ref).abs().max().item()), cases + 1
    assert worst < 1e-4, f"merged weights differ from the unmerged forward by {worst} in logits"
    return worst, cases


def adapter_plan(kind: str) -> tuple:
    """The adapter structures checked on architecture `kind`: all of them on qwen3; on llama only the SVD adapter with
    its own quarantine in the fast tier (the adapters' code is architecture-independent; llama adds untied
    embeddings and no q/k norms, which the bare and svd-own conditions exercise). The full tier: every structure."""
    return ADAPTERS if FULL or kind == "qwen3" else (("svd", 4, "own"),)


def wrapped(kind: str, adapter: str, rank: int, quarantine: str):
    """The tiny model of `kind` wrapped with an adapter whose two blocks are random, nonzero and different."""
    model = build(kind)
    ad.wrap_model(model, ad.AdapterConfig(kind=adapter, rank=rank, quarantine=quarantine, cache_dir=None))
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        scale = 1.0 if adapter == "svd" else 0.3
        for p in ad.deployed_params(model):
            p.add_(scale * torch.randn(p.shape, generator=g))
        for p in ad.quarantine_params(model):
            p.add_(2 * scale * torch.randn(p.shape, generator=g))
    return model


def main() -> int:
    t0 = time.time()
    torch.set_num_threads(1)
    backend = cheap_cpu_compile()
    stats = dict(lp_err=0.0, tokens=0, eos_rows=0, full_rows=0, conditions=0)
    ablation_changed = stale_refused = merge_used = early_waves = shared = compiled_shared = n = 0
    for kind in ("qwen3", "llama"):
        model = build(kind)
        check_condition(model, f"{kind}/bare", stats)
        check_waves(model, f"{kind}/bare")
        if FULL or kind == "qwen3":  # waves of one row: the decoder's wave loop, architecture-independent
            n_early = check_early_waves(model, f"{kind}/bare")
            assert n_early > 0, f"{kind}: no wave before the last ended early: check 8 is vacuous"
            early_waves += n_early
        for adapter, rank, quarantine in adapter_plan(kind):
            n += 1
            model = wrapped(kind, adapter, rank, quarantine)
            svd_own = (adapter, quarantine) == ("svd", "own")
            kept = check_condition(model, f"{kind}/{adapter}/kept", stats)
            if svd_own:  # merged, every structure decodes with plain (fused) weights:
                # one code path, whose weights checks 1-3 and 9 compare per structure; unmerged, each is checked below
                shared += check_shared(model, f"{kind}/{adapter}/kept", stats)
            with ad.deployment_ablation(model):  # (shared prompts are checked kept only: ablated, the merged decode
                # runs plain weights as well)
                ablated = check_condition(model, f"{kind}/{adapter}/ablated", stats)
                if FULL or svd_own:
                    check_waves(model, f"{kind}/{adapter}/ablated")
            ablation_changed += int(kept != ablated)
            VARIANT.update(merge=False, attention="matmul")
            try:
                assert check_condition(model, f"{kind}/{adapter}/kept/unmerged+matmul", stats) == kept
                if FULL or kind == "qwen3":  # unmerged with an ablated quarantine: each structure's ablation path
                    with ad.deployment_ablation(model):
                        check_condition(model, f"{kind}/{adapter}/ablated/unmerged+matmul", stats)
                if FULL or (kind == "qwen3" and svd_own):  # the matmul kernel's cascade attention: adapter-independent
                    shared += check_shared(model, f"{kind}/{adapter}/kept/unmerged+matmul", stats)
                VARIANT.update(merge=True, attention="matmul")
                assert check_condition(model, f"{kind}/{adapter}/kept/merged+matmul", stats) == kept
                if svd_own and FULL:  # dynamo's capture of the decoder (aot_eager here; inductor and CUDA graphs in
                    # smoke_gpu, where the compiled decoder runs): 10-14 cold CPU-s, smoke-full only
                    VARIANT.update(merge=True, attention="sdpa", compile=True)
                    graphs = compiled_graphs()
                    assert check_condition(model, f"{kind}/{adapter}/kept/compiled", stats) == kept
                    if FULL:  # each shared-prompt layout recompiles (13 of the fast tier's CPU-s): smoke-full
                        compiled_shared += check_shared(model, f"{kind}/{adapter}/kept/compiled", stats)
                    assert compiled_graphs() > graphs, f"{kind}: DecodeConfig.compile compiled no graph"
            finally:
                VARIANT.update(merge=True, attention="sdpa", compile=False)
            stale_refused += refuses_stale_merge(model)
            merge_used += merge_is_used(model)
            print(f"{kind}/{adapter}: ablation changed greedy tokens: {kept != ablated}", flush=True)
    qwen2 = biased_qwen2()  # fused q/k/v with biases
    check_condition(qwen2, "qwen2/svd/kept/biases", stats)
    fused_qwen2 = decode(qwen2, prompts(2, 4), 1.0, 3, EOS, PAD, cfg=DecodeConfig(mode="eager")).fused
    assert fused_qwen2 == 2 * len(qwen2.model.layers), f"qwen2: {fused_qwen2} fused groups"
    assert stats["eos_rows"] > 0 and stats["full_rows"] > 0, f"EOS check vacuous: {stats}"
    merge_err, merge_cases = merged_logit_err()
    assert n == sum(len(adapter_plan(k)) for k in ("qwen3", "llama")), n
    assert ablation_changed == n, f"deployment ablation changed greedy tokens in {ablation_changed}/{n} adapters"
    assert stale_refused == n, f"a block switch inside merged_weights was refused in {stale_refused}/{n} adapters"
    assert merge_used == n, f"merge=True ran merged weights (and merge=False did not) in {merge_used}/{n} adapters"
    assert early_waves > 0, "no wave stopped early: check 8 is vacuous"
    want_shared = 2 * (1 + len(ADAPTERS)) * 9 if FULL else 3 * 9  # merged per architecture, + unmerged per structure
    assert shared == want_shared, f"shared-prompt decodes compared: {shared}, expected {want_shared}"
    want_compiled = 2 * 9 if FULL else 0
    assert compiled_shared == want_compiled, f"compiled shared-prompt decodes compared: {compiled_shared}"
    dt = time.time() - t0
    print(f"PASS decoder ({tier()} tier): {stats['conditions']} conditions (qwen3, llama x bare and {n} adapter structures "
          f"x kept/ablated) greedy and "
          f"sampled tokens identical to generate ({stats['tokens']} sampled tokens, {stats['eos_rows']} rows stopped "
          f"at EOS, {stats['full_rows']} ran to the cap), adapters merged (default), unmerged+matmul, merged+matmul{f' and compiled ({backend}, svd-own)' if FULL else ''}, merged weights used only when asked, q/k/v and gate/up fused when merged (qwen2: with biases); waves of 3 "
          f"and {early_waves} early-ending waves of 1 identical; {shared} shared-prompt decodes (groups of 3) "
          f"identical; max log-prob err "
          f"{stats['lp_err']:.1e}; ablation changed tokens in {ablation_changed}/{n}; merged = unmerged logits within "
          f"{merge_err:.1e} over {merge_cases} adapter structures x block states; generate ran {HF_CALLS[False]} times, "
          f"its output reused {HF_CALLS[True]} times; {dt:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
