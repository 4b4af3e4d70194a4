"""Gate: per-rollout gradients from one batched backward equal one backward per rollout; their
sum equals autograd's .grad; the routed-gradient writer leaves an unrouted block bit-identical
through an AdamW step with weight decay; with the decoder layers torch.compile'd, the capture gives the
same per-rollout gradients as eager, and micro-batched .grad equals eager's.

The compiled checks run torch.compile's aot_eager backend (dynamo's capture and AOTAutograd's functionalized
forward and backward; _gate_common.cheap_cpu_compile), except the micro-batched .grad check of the own_grad hook,
which runs inductor on a one-layer model with one adapted module: aot_eager does not reproduce the defect that hook
mends (without the hook: rel 0.0 under aot_eager, 1.01 under inductor). PGRPO_COMPILE_BACKEND=inductor runs every
compiled check with inductor. The compiled per-rollout capture runs on the SVD adapter in `just smoke`, on the LoRA
adapter as well in `just smoke-full` (PGRPO_SMOKE_FULL=1), where a second sequence length (dynamo's recompile with
dynamic shapes; smoke_gpu checks it under inductor too) and the micro-batched .grad under the gate's backend are
added.

    python scripts/verify_per_sample_grads.py
"""

import copy
import sys
import tempfile
import time

import torch
import torch.nn.functional as F
from transformers import Qwen3Config, Qwen3ForCausalLM

from projected_grpo.method.adapters import (
    AdapterConfig, capture_per_sample_grads, deployed_params, per_sample_grad_matrix, quarantine_params,
    wrap_model, write_routed_grads,
)
from projected_grpo.loop.grpo import completion_start, token_logprobs
from projected_grpo.loop.models import compile_backend, compile_layers, log_softmax_at, selected_logprobs

from _gate_common import cheap_cpu_compile, compiled_graphs, full_tier, tier

T_ROWS = (14, 11, 9)  # micro-batch lengths of check_compiled_accumulation (the gate's backend)
# the own_grad check under inductor: one length (one compile), one layer, one adapted module. Cold, a process running
# only this check took 27 CPU-s (about 8 of them importing); with the gate's 2-layer model, every projection adapted,
# 55 CPU-s. Both failed without the hook (rel 0.99 and 1.01)
INDUCTOR_ROWS, INDUCTOR_TARGETS = (14, 14, 14), r"layers\.0\.mlp\.down_proj$"
VARIANTS = [("svd", 8, "shared"), ("svd", 8, "own"), ("svd", None, "shared"), ("lora", 8, "shared"),
            ("lora", 8, "own")]
B, T, V = 6, 14, 100
# the compiled per-rollout capture: the SVD adapter (own quarantine) in `just smoke`, LoRA too in `just smoke-full`
# (each adapter kind is about 25 CPU-s of dynamo capture on the 2-core machine)
COMPILED_VARIANTS = (("svd", 8, "own"), ("lora", 8, "own")) if full_tier() else (("svd", 8, "own"),)


def tiny_model(dtype: torch.dtype, layers: int = 2) -> Qwen3ForCausalLM:
    cfg = Qwen3Config(hidden_size=64, intermediate_size=128, num_hidden_layers=layers, num_attention_heads=4,
                      num_key_value_heads=2, head_dim=16, vocab_size=V, max_position_embeddings=64)
    torch.manual_seed(0)
    return Qwen3ForCausalLM(cfg).to(dtype)


def wrapped_tiny(dtype: torch.dtype, kind: str, rank: int | None, quarantine: str, cache, layers: int = 2,
                 targets: str | None = None) -> Qwen3ForCausalLM:
    """The tiny model wrapped with an adapter whose blocks are random (nonzero) and differ from each other."""
    model = tiny_model(dtype, layers)
    wrap_model(model, AdapterConfig(kind=kind, rank=rank, quarantine=quarantine, cache_dir=cache,
                                    **({"targets": targets} if targets else {})))
    randomize(deployed_params(model), 1)
    randomize(quarantine_params(model), 2)
    return model


def make_batch(gen: torch.Generator):
    """Right-padded rollouts: prompt of 4 tokens, completions of random length; loss mask on the
    completion tokens only."""
    ids = torch.randint(0, V, (B, T), generator=gen)
    lengths = torch.randint(6, T + 1, (B,), generator=gen)
    attn = (torch.arange(T)[None] < lengths[:, None]).long()
    ids = ids * attn  # pad id 0
    mask = attn[:, 1:].clone()
    mask[:, :3] = 0  # the prompt's next-token predictions are not trained
    adv = torch.randn(B, generator=gen)
    return ids, attn, mask, adv


def drgrpo_loss(model, ids, attn, mask, adv, D: float):
    """sum_b sum_t mask_bt * adv_b * logp_bt / D with a fixed denominator D (negated for descent)."""
    logits = model(input_ids=ids, attention_mask=attn, use_cache=False).logits[:, :-1]
    logp = torch.log_softmax(logits.double(), -1).gather(-1, ids[:, 1:, None])[..., 0]
    return -(mask * adv[:, None] * logp).sum() / D


def trainer_loss(model, ids, attn, mask, adv, D: float):
    """drgrpo_loss through the trainer's log-probs: grpo.token_logprobs from the completion start (the lm_head on
    completion positions only; under compiled layers the compiled log-softmax, models.selected_logprobs)."""
    full = F.pad(mask, (1, 0)).bool()  # mask over token positions 0..T-1
    logp = token_logprobs(model, ids, attn.bool(), completion_start(full))
    return -(full * adv[:, None] * logp).sum() / D


def flat_grads(params):
    return torch.cat([p.grad.flatten() if p.grad is not None else torch.zeros(p.numel()) for p in params])


def randomize(params, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in params:
            p.copy_(0.05 * torch.randn(p.shape, generator=g, dtype=p.dtype))


def check_variant(kind, rank, quarantine, cache):
    tag = f"{kind}/r={rank}/{quarantine}"
    model = wrapped_tiny(torch.float32, kind, rank, quarantine, cache)
    dep, quar = deployed_params(model), quarantine_params(model)
    ids, attn, mask, adv = make_batch(torch.Generator().manual_seed(3))
    D = float(mask.numel())
    # one batched backward with capture
    with capture_per_sample_grads(model):
        drgrpo_loss(model, ids, attn, mask, adv, D).backward()
    G = per_sample_grad_matrix(model)
    auto = dict(deployed=flat_grads(dep), quarantine=flat_grads(quar))
    # one backward per rollout
    rel = 0.0
    for b in range(B):
        model.zero_grad(set_to_none=True)
        sl = slice(b, b + 1)
        drgrpo_loss(model, ids[sl], attn[sl], mask[sl], adv[sl], D).backward()
        for block, params in (("deployed", dep), ("quarantine", quar)):
            ref = flat_grads(params)
            rel = max(rel, ((G[block][b] - ref).norm() / ref.norm()).item())
    assert rel < 1e-5, f"{tag}: per-rollout relative error {rel:.2e}"
    # sum over rollouts == autograd's batched .grad
    rel_sum = max(((G[k].sum(0) - auto[k]).norm() / auto[k].norm()).item() for k in auto)
    assert rel_sum < 1e-5, f"{tag}: sum of per-rollout grads vs .grad {rel_sum:.2e}"
    # writer with all weights 1 reproduces .grad
    ones, zeros = torch.ones(B), torch.zeros(B)
    write_routed_grads(model, ones, ones)
    rel_w = max(((flat_grads(p) - auto[k]).norm() / auto[k].norm()).item()
                for k, p in (("deployed", dep), ("quarantine", quar)))
    assert rel_w < 1e-5, f"{tag}: writer(all ones) vs .grad {rel_w:.2e}"
    # writer with a keep mask == backward of the loss over kept rollouts only
    keep = (torch.arange(B) % 2 == 0).double()
    write_routed_grads(model, keep, 1 - keep)
    routed = flat_grads(dep)
    model.zero_grad(set_to_none=True)
    drgrpo_loss(model, ids, attn, mask * keep[:, None], adv, D).backward()
    rel_keep = ((routed - flat_grads(dep)).norm() / flat_grads(dep).norm()).item()
    assert rel_keep < 1e-5, f"{tag}: masked writer vs masked loss {rel_keep:.2e}"
    # routing everything to one block leaves the other bit-identical through AdamW(wd=0.1)
    for w_dep, w_quar, frozen, moved, what in ((zeros, ones, dep, quar, "route all"),
                                               (ones, zeros, quar, dep, "keep all")):
        m2 = copy.deepcopy(model)
        with capture_per_sample_grads(m2):
            drgrpo_loss(m2, ids, attn, mask, adv, D).backward()
        d2, q2 = deployed_params(m2), quarantine_params(m2)
        groups = [dict(params=d2, weight_decay=0.1), dict(params=q2, weight_decay=0.1)]
        opt = torch.optim.AdamW(groups, lr=1e-2)
        frozen2, moved2 = (d2, q2) if frozen is dep else (q2, d2)
        before = [p.detach().clone() for p in frozen2 + moved2]
        write_routed_grads(m2, w_dep, w_quar)
        assert all(p.grad is None for p in frozen2), f"{tag}/{what}: unrouted block has a grad"
        opt.step()
        n = len(frozen2)
        assert all(torch.equal(p, q) for p, q in zip(frozen2, before[:n])), f"{tag}/{what}: unrouted moved"
        assert all(not torch.equal(p, q) for p, q in zip(moved2, before[n:])), f"{tag}/{what}: routed still"
    return tag, rel, rel_sum, rel_keep, G["deployed"].shape[1], G["quarantine"].shape[1]


def check_bf16(cache) -> float:
    """bf16 model: capture runs and the per-rollout sum matches autograd's bf16 .grad loosely."""
    worst = 0.0
    for kind, rank, quarantine in (("svd", 8, "own"), ("lora", 8, "own")):
        model = wrapped_tiny(torch.bfloat16, kind, rank, quarantine, cache)
        ids, attn, mask, adv = make_batch(torch.Generator().manual_seed(3))
        with capture_per_sample_grads(model):
            drgrpo_loss(model, ids, attn, mask, adv, float(mask.numel())).backward()
        G = per_sample_grad_matrix(model)
        for k, params in (("deployed", deployed_params(model)), ("quarantine", quarantine_params(model))):
            assert G[k].dtype == torch.float32 and all(p.grad.dtype == torch.float32 for p in params)
            ref = flat_grads(params)
            worst = max(worst, ((G[k].sum(0) - ref).norm() / ref.norm()).item())
    assert worst < 5e-2, f"bf16: sum of per-rollout grads vs .grad {worst:.2e}"
    return worst


def check_compiled(cache) -> float:
    """Decoder layers compiled (models.compile_layers): the probes capture the same per-rollout gradients as
    the eager layers, over two batches of different lengths (the second recompiles with dynamic shapes), and a
    no-grad forward with the model's defaults gives the same logits without building a KV cache; dynamo
    really compiled (its graph count grew). The same through the trainer's log-probs (compiled log-softmax, lm_head
    on completions only)."""
    worst = 0.0
    for kind, rank, quarantine in COMPILED_VARIANTS:
        model = wrapped_tiny(torch.float32, kind, rank, quarantine, cache)
        batches = [make_batch(torch.Generator().manual_seed(s)) for s in (3, 4)]
        batches[1] = tuple(t[:, :-3] if t.ndim == 2 else t for t in batches[1])  # a shorter sequence length
        batches = batches if full_tier() else batches[:1]  # the dynamic-shape recompile: smoke-full and smoke_gpu
        G, graphs = {}, compiled_graphs()
        for compiled in (False, True):
            restore = compile_layers(model) if compiled else (lambda: None)
            for j, (ids, attn, mask, adv) in enumerate(batches):
                with capture_per_sample_grads(model):
                    drgrpo_loss(model, ids, attn, mask, adv, float(mask.numel())).backward()
                G[compiled, j] = per_sample_grad_matrix(model)
                model.zero_grad(set_to_none=True)
                assert (selected_logprobs(model) is log_softmax_at) != compiled, "log-softmax not compiled with layers"
                with capture_per_sample_grads(model):
                    trainer_loss(model, ids, attn, mask, adv, float(mask.numel())).backward()
                G[compiled, j].update({f"trainer_{k}": v for k, v in per_sample_grad_matrix(model).items()})
                model.zero_grad(set_to_none=True)
                with torch.no_grad():  # a forward with the model's defaults (no use_cache=False): no KV cache
                    out = model(input_ids=ids, attention_mask=attn)
                assert out.past_key_values is None or not compiled, "compiled layers with a KV cache"
                G[compiled, j]["logits"] = out.logits[:, :, :8].flatten(1)
            restore()
        assert compiled_graphs() > graphs, f"{kind}: compile_layers compiled no graph (eager fallback?)"
        for j in range(len(batches)):
            for k in ("deployed", "quarantine", "logits", "trainer_deployed", "trainer_quarantine"):
                ref = G[False, j][k]
                worst = max(worst, ((G[True, j][k] - ref).norm() / ref.norm()).item())
    # micro-batched .grad: under inductor (the defect's backend) always; under the gate's backend in smoke-full
    acc = {backend: check_compiled_accumulation(cache, backend, rows, **kw) for backend, rows, kw in (
        (compile_backend(), T_ROWS, {}), ("inductor", INDUCTOR_ROWS, dict(layers=1, targets=INDUCTOR_TARGETS)))
        if full_tier() or backend == "inductor"}
    for backend, rel in acc.items():
        assert rel < 1e-5, f"compiled layers ({backend}): micro-batched .grad vs eager rel err {rel:.2e}"
    worst = max(worst, *acc.values())
    assert worst < 1e-5, f"compiled layers: per-rollout grads (or micro-batched .grad) vs eager rel err {worst:.2e}"
    return worst


def check_compiled_accumulation(cache, backend: str, lengths: tuple[int, ...], layers: int = 2,
                                targets: str | None = None) -> float:
    """Plain .grad accumulated over micro-batches of `lengths` (no capture), SVD with the shared
    quarantine (equal gradients for both blocks), compiled by `backend` against eager: a compiled backward (inductor)
    returned one buffer for both blocks' gradients, which the next micro-batch then added into twice (seen: norm
    0.0329 vs 0.0178)."""
    if backend == "inductor":
        import torch._inductor.config as inductor_config

        inductor_config.compile_threads = 1  # compile in this process: no pool of workers to start
    model = wrapped_tiny(torch.float32, "svd", None, "shared", cache, layers, targets)
    ids, attn, mask, adv = make_batch(torch.Generator().manual_seed(5))
    grads, graphs = {}, compiled_graphs()
    for compiled in (False, True):
        restore = compile_layers(model, backend) if compiled else (lambda: None)
        for _ in range(2):
            model.zero_grad(set_to_none=True)
            for rows, T in zip((slice(0, 2), slice(2, 4), slice(4, 6)), lengths):
                drgrpo_loss(model, ids[rows, :T], attn[rows, :T], mask[rows, :T - 1], adv[rows], 100.0).backward()
        grads[compiled] = {k: flat_grads(ps) for k, ps in (("deployed", deployed_params(model)),
                                                              ("quarantine", quarantine_params(model)))}
        restore()
    assert compiled_graphs() > graphs, f"{backend}: compile_layers compiled no graph (eager fallback?)"
    return max(((grads[True][k] - grads[False][k]).norm() / grads[False][k].norm()).item() for k in grads[False])


def main() -> int:
    torch.set_num_threads(1)  # tiny ops on 2 shared cores: 2 threads ran ~100x slower under load
    backend = cheap_cpu_compile()
    t0 = time.time()
    worst = 0.0
    with tempfile.TemporaryDirectory() as cache:
        for variant in VARIANTS:
            tag, rel, rel_sum, rel_keep, pd, pq = check_variant(*variant, cache)
            worst = max(worst, rel, rel_sum, rel_keep)
            print(f"  ok {tag:20s} P_dep={pd:6d} P_quar={pq:6d} per-rollout rel={rel:.1e} "
                  f"sum rel={rel_sum:.1e} masked rel={rel_keep:.1e}")
        bf16 = check_bf16(cache)
        print(f"  ok bf16 svd/lora own: sum of per-rollout grads vs bf16 .grad rel={bf16:.1e} (< 5e-2)")
        comp = check_compiled(cache)
        print(f"  ok compiled decoder layers ({backend}), {'/'.join(v[0] for v in COMPILED_VARIANTS)} own, {2 if full_tier() else 1} length(s): per-rollout grads, and svd shared: "
              f".grad over 3 micro-batches ({backend + ' and ' if full_tier() else ''}inductor, 1 layer, 1 module), vs eager rel={comp:.1e} (< 1e-5)")
    print(f"PASS verify_per_sample_grads ({tier()} tier): {len(VARIANTS)} variants x {B} rollouts, worst rel err {worst:.1e} "
          f"(< 1e-5), unrouted blocks bit-identical after AdamW(wd=0.1); compiled ({backend}; own_grad check inductor) "
          f"= eager within {comp:.1e}; {time.time() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
