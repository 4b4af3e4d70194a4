"""Benchmark (not a gate): per-rollout routing scores from one batched backward vs one backward
per rollout, and the cost of capture in a training step.

    python scripts/bench_route.py [--rollouts 64] [--seq 128] [--threads 2]
"""

import argparse
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F
from transformers import Qwen3Config, Qwen3ForCausalLM

from projected_grpo.method.adapters import (
    AdapterConfig, capture_per_sample_grads, deployed_params, per_sample_grad_matrix, quarantine_params,
    wrap_model, write_routed_grads,
)

VOCAB = 1000


def small_model(args) -> Qwen3ForCausalLM:
    h = args.hidden
    cfg = Qwen3Config(hidden_size=h, intermediate_size=2 * h, num_hidden_layers=args.layers,
                      num_attention_heads=h // 64, num_key_value_heads=max(1, h // 128), head_dim=64,
                      vocab_size=VOCAB, max_position_embeddings=max(512, args.seq))
    torch.manual_seed(0)
    return Qwen3ForCausalLM(cfg).to(args.device, getattr(torch, args.dtype))


def loss_fn(model, ids, adv):
    """Dr.GRPO-shaped: sum_b sum_t adv_b * logp_bt / D, fixed D."""
    logp = torch.log_softmax(model(input_ids=ids).logits[:, :-1].float(), -1)
    logp = logp.gather(-1, ids[:, 1:, None])[..., 0]
    return -(adv[:, None] * logp).sum() / logp.numel()


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn, reps: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(reps):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench(kind, rank, quarantine, args, cache):
    model = small_model(args)
    wrap_model(model, AdapterConfig(kind=kind, rank=rank, quarantine=quarantine, cache_dir=cache))
    with torch.no_grad():
        for p in deployed_params(model) + quarantine_params(model):
            p.normal_(0, 0.01)
    dep = deployed_params(model)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, VOCAB, (args.rollouts, args.seq), generator=g).to(args.device)
    adv = torch.randn(args.rollouts, generator=g).to(args.device)
    P = sum(p.numel() for p in dep)
    v = F.normalize(torch.randn(P, generator=g), dim=0).to(args.device)

    def scores_batched():
        model.zero_grad(set_to_none=True)
        with capture_per_sample_grads(model):
            loss_fn(model, ids, adv).backward()
        return F.normalize(per_sample_grad_matrix(model)["deployed"], dim=1) @ v

    def scores_looped():
        rows = []
        for b in range(args.rollouts):
            model.zero_grad(set_to_none=True)
            loss_fn(model, ids[b : b + 1], adv[b : b + 1]).backward()
            rows.append(torch.cat([p.grad.flatten() for p in dep]))
        return F.normalize(torch.stack(rows), dim=1) @ v

    opt = torch.optim.AdamW(deployed_params(model) + quarantine_params(model), lr=1e-6, weight_decay=0.1)

    def step_plain():
        opt.zero_grad(set_to_none=True)
        loss_fn(model, ids, adv).backward()
        opt.step()

    def step_routed():
        opt.zero_grad(set_to_none=True)
        with capture_per_sample_grads(model):
            loss_fn(model, ids, adv).backward()
        s = F.normalize(per_sample_grad_matrix(model)["deployed"], dim=1) @ v
        route = (s > s.median()).float()
        write_routed_grads(model, 1 - route, route)
        opt.step()

    sb, sl = scores_batched(), scores_looped()
    err = (sb - sl).abs().max().item()
    t_b, t_l = timed(scores_batched, args.reps), timed(scores_looped, 1)
    t_plain, t_routed = timed(step_plain, args.reps), timed(step_routed, args.reps)
    return dict(adapter=f"{kind} r={rank or 'full'} {quarantine}", P=P, err=err, t_b=t_b, t_l=t_l,
                t_plain=t_plain, t_routed=t_routed)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rollouts", type=int, default=64)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"model hidden {args.hidden}, {args.layers} layers, {args.rollouts} rollouts x {args.seq} tokens, "
          f"{args.threads} threads, {args.dtype} on {args.device}; medians of {args.reps} (looped: 1)")
    print(f"{'adapter':22s} {'P_dep':>7s} {'1 bwd s':>8s} {'B bwds s':>9s} {'speedup':>8s} "
          f"{'step off s':>10s} {'step on s':>10s} {'ratio':>6s} {'max|ds|':>8s}")
    with tempfile.TemporaryDirectory() as cache:
        for kind, rank, quarantine in (("svd", None, "shared"), ("svd", 64, "own"), ("lora", 16, "shared"),
                                       ("lora", 16, "own")):
            r = bench(kind, rank, quarantine, args, cache)
            print(f"{r['adapter']:22s} {r['P']:7d} {r['t_b']:8.2f} {r['t_l']:9.2f} "
                  f"{r['t_l'] / r['t_b']:7.1f}x {r['t_plain']:10.2f} {r['t_routed']:10.2f} "
                  f"{r['t_routed'] / r['t_plain']:6.2f} {r['err']:8.1e}",
                  flush=True)


if __name__ == "__main__":
    main()
