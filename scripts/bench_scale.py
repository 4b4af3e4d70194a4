"""Bench: one GRPO step's phases at the environment's scale on a randomly initialised Qwen3-4B-shaped model.

    python scripts/bench_scale.py                                   # 16 x 16 rollouts, 600 + 1536 tokens
    python scripts/bench_scale.py --gen-len 512 --fb-len 1536       # decode 512 tokens, train on 1536

Qwen3-4B's configuration (hidden 2560, 36 layers, 32 heads, 8 kv heads, head_dim 128, intermediate
9728, vocab 151936) with random weights in bf16 (no download). Prompts are random token ids. A random
model practically never emits EOS, so generation runs the full --gen-len. Phases, each timed with
CUDA synchronisation and its own peak memory:

    plain_generate   projected_grpo.sampling.sample (transformers' generate) on the unwrapped model
    wrap             SVD adapter (deployed + quarantine block) on every attention/MLP linear layer
    generate         the same sampling through the wrapped model
    fwd_bwd          token log-probs + Dr.GRPO loss + backward in micro-batches of --fb-batch rollouts,
                     per-rollout gradient capture on; completions are the generated ids, extended with
                     random ids to --fb-len when --fb-len > --gen-len (so training cost is measured at
                     the full completion length even when decode is run shorter)
    erase            projection of a random direction out of every deployed block's gradient
    route            routing scores (cosine of each rollout's gradient with a random v_grad), top
                     --route-frac routed, routed gradients written
    optimizer        grad-norm clip + AdamW step over both blocks

Full-rank SVD of every 4B weight is slow; --svd lowrank (default) takes the top 2r singular triplets
with torch.svd_lowrank (q = 2r + 8, 2 power iterations), --svd full uses the package's exact path.
The generator is transformers' generate (the only generator in the package); no static KV cache.
Prints numbers, asserts nothing but that losses are finite.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402

from projected_grpo import adapters as ad  # noqa: E402
from projected_grpo import grpo  # noqa: E402
from projected_grpo import interventions as iv  # noqa: E402
from projected_grpo.sampling import collate, sample  # noqa: E402

RESULTS: dict = {}


class Phase:
    def __init__(self, name: str, dev: str):
        self.name, self.dev = name, dev

    def __enter__(self):
        if self.dev == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        self.t = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.dev == "cuda":
            torch.cuda.synchronize()
        s = time.perf_counter() - self.t
        peak = torch.cuda.max_memory_allocated() / 2**30 if self.dev == "cuda" else float("nan")
        RESULTS[self.name] = dict(seconds=round(s, 2), peak_gib=round(peak, 2))
        print(f"{self.name:16s} {s:8.2f} s   peak {peak:6.2f} GiB", flush=True)
        return False


def lowrank_svd(w, k, cache_dir, digest):
    q = min(k + 8, min(w.shape))
    u, s, v = torch.svd_lowrank(w.detach().float(), q=q, niter=2)
    return u[:, :k].contiguous(), s[:k].contiguous(), v[:, :k].T.contiguous(), False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hidden", type=int, default=2560)
    ap.add_argument("--layers", type=int, default=36)
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--kv-heads", type=int, default=8)
    ap.add_argument("--head-dim", type=int, default=128)
    ap.add_argument("--intermediate", type=int, default=9728)
    ap.add_argument("--vocab", type=int, default=151936)
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--group", type=int, default=16)
    ap.add_argument("--prompt-len", type=int, default=600)
    ap.add_argument("--gen-len", type=int, default=1536)
    ap.add_argument("--fb-len", type=int, default=0, help="completion length trained on (0 = --gen-len)")
    ap.add_argument("--gen-batch", type=int, default=256, help="rollouts per generate call")
    ap.add_argument("--fb-batch", type=int, default=2, help="rollouts per forward-backward micro-batch")
    ap.add_argument("--rank", type=int, default=64)
    ap.add_argument("--quarantine", default="own", choices=("shared", "own"))
    ap.add_argument("--svd", default="lowrank", choices=("lowrank", "full"))
    ap.add_argument("--route-frac", type=float, default=0.25)
    ap.add_argument("--skip-plain", action="store_true", help="skip the unwrapped-model generate")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--json", default="", help="also write the results here")
    a = ap.parse_args()
    from transformers import Qwen3Config, Qwen3ForCausalLM

    dev = a.device
    fb_len = a.fb_len or a.gen_len
    n = a.prompts * a.group
    dtype = torch.bfloat16 if dev == "cuda" else torch.float32
    RESULTS["config"] = {k: v for k, v in vars(a).items()}
    RESULTS["config"]["fb_len"] = fb_len
    if dev == "cuda":
        RESULTS["device"] = torch.cuda.get_device_name(0)
        print(f"device {RESULTS['device']}, torch {torch.__version__}", flush=True)
    cfg = Qwen3Config(vocab_size=a.vocab, hidden_size=a.hidden, intermediate_size=a.intermediate,
                      num_hidden_layers=a.layers, num_attention_heads=a.heads, num_key_value_heads=a.kv_heads,
                      head_dim=a.head_dim, max_position_embeddings=max(4096, a.prompt_len + fb_len + 8),
                      tie_word_embeddings=True, eos_token_id=a.vocab - 1, pad_token_id=a.vocab - 2, bos_token_id=None)
    with Phase("init", dev):
        torch.manual_seed(0)
        prev = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        with torch.device(dev):
            model = Qwen3ForCausalLM(cfg)
        torch.set_default_dtype(prev)
        for p in model.parameters():
            p.requires_grad_(False)
        model.eval()
    n_params = sum(p.numel() for p in model.parameters())
    RESULTS["n_params"] = n_params
    print(f"model: {n_params / 1e9:.2f} B parameters, {dtype}", flush=True)
    tok = SimpleNamespace(pad_token_id=a.vocab - 2, eos_token_id=a.vocab - 1)
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(0, a.vocab - 2, (a.prompt_len,), generator=g).tolist() for _ in range(a.prompts)]
    pids = [p for p in prompts for _ in range(a.group)]

    def decode(name: str) -> list[list[int]]:
        with Phase(name, dev):
            comps = sample(model, tok, pids, 1.0, a.gen_len, generator_seed=0, batch_size=a.gen_batch)
        toks = sum(map(len, comps))
        RESULTS[name].update(tokens=toks, tokens_per_s=round(toks / RESULTS[name]["seconds"], 1),
                             steps_per_s=round(a.gen_len * -(-n // a.gen_batch) / RESULTS[name]["seconds"], 2))
        print(f"{'':16s} {toks} tokens, {toks / RESULTS[name]['seconds']:.0f} tokens/s", flush=True)
        return comps

    sample(model, tok, pids[:2], 1.0, 4, generator_seed=0)  # warm-up (CUDA context, kernels)
    if not a.skip_plain:
        decode("plain_generate")
    if a.svd == "lowrank":
        ad.svd_top_k = lowrank_svd
    with Phase("wrap", dev):
        ad.wrap_model(model, ad.AdapterConfig(kind="svd", rank=a.rank, quarantine=a.quarantine, cache_dir=None))
    mods = ad.adapter_modules(model)
    n_adapt = sum(p.numel() for p in ad.deployed_params(model) + ad.quarantine_params(model))
    RESULTS["adapters"] = dict(modules=len(mods), trainable=n_adapt)
    print(f"{len(mods)} adapted linear layers, {n_adapt} trainable parameters", flush=True)
    # a nonzero adapter so the branch is not a no-op
    with torch.no_grad():
        for p in ad.deployed_params(model):
            p.normal_(0, 1e-3)
    comps = decode("generate")
    comps = [c + torch.randint(0, a.vocab - 2, (max(0, fb_len - len(c)),), generator=g).tolist() for c in comps]
    comps = [c[:fb_len] for c in comps]
    adv = torch.randn(n, generator=g)
    opt = torch.optim.AdamW([dict(params=ad.deployed_params(model)), dict(params=ad.quarantine_params(model))],
                            lr=1e-3, betas=(0.9, 0.99))
    denom = float(n * fb_len)
    losses = []
    with Phase("fwd_bwd", dev):
        opt.zero_grad(set_to_none=True)
        with ad.capture_per_sample_grads(model):
            for s in range(0, n, a.fb_batch):
                b = collate(pids[s:s + a.fb_batch], comps[s:s + a.fb_batch], tok.pad_token_id)
                ids, attn, mask = b.input_ids.to(dev), b.attention_mask.to(dev), b.completion_mask.to(dev)
                logp = grpo.token_logprobs(model, ids, attn)
                loss, _ = grpo.grpo_loss(logp, logp.detach(), None, adv[s:s + a.fb_batch].to(dev), mask, denom, 0.2, 0.0)
                loss.backward()
                losses.append(loss.item())
    assert all(map(lambda x: x == x and abs(x) < float("inf"), losses)), losses
    RESULTS["fwd_bwd"].update(tokens=n * (a.prompt_len + fb_len), micro_batches=len(losses))
    trainer = SimpleNamespace(model=model, device=dev, labels=None)
    gv = torch.Generator().manual_seed(2)
    V = {nm: torch.randn(1, sum(p.numel() for p in m.deployed_parameters()), generator=gv) for nm, m in mods.items()}
    ctx = dict(step=0, iter=0, rows=list(range(n)), adv=adv.to(dev))
    erase = iv.Erase(V)
    erase.setup(trainer)
    with Phase("erase", dev):
        hook_e = erase.after_backward(model, ctx)
    route = iv.Route(V, gate="grad", route_frac=a.route_frac)
    route.setup(trainer)
    with Phase("route", dev):
        hook_r = route.after_backward(model, ctx)
    with Phase("optimizer", dev):
        gn = torch.nn.utils.clip_grad_norm_([p for grp in opt.param_groups for p in grp["params"]], 1.0).item()
        opt.step()
    RESULTS["diag"] = dict(loss_sum=sum(losses), grad_norm=gn, cos_in=hook_e["step"]["cos_in"],
                           routed_frac=hook_r["step"]["routed_frac"])
    phases = ("generate", "fwd_bwd", "erase", "route", "optimizer")
    RESULTS["step_seconds"] = round(sum(RESULTS[p]["seconds"] for p in phases), 1)
    if dev == "cuda":
        RESULTS["max_memory_reserved_gib"] = round(torch.cuda.max_memory_reserved() / 2**30, 2)
    print("RESULT " + json.dumps(RESULTS), flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(RESULTS, indent=2))


if __name__ == "__main__":
    main()
