"""Bench: one GRPO step's phases at the environment's scale on a randomly initialised Qwen3-4B-shaped model.

    python scripts/bench_scale.py --json $OUT/bench.json     # 16 x 16 rollouts, 600 + 1536 tokens, H100
    python scripts/bench_scale.py --small                    # tiny config on the CPU, seconds (checks the script)

Qwen3-4B's configuration (hidden 2560, 36 layers, 32 heads, 8 kv heads, head_dim 128, intermediate
9728, vocab 151936) with random weights in bf16 (no download). Prompts are random token ids. A random
model practically never emits EOS, so decoding runs the full length. Phases, each timed with CUDA
synchronisation and its own peak memory:

    machine          measured copy bandwidth (bytes read + written per second, 1 GiB tensors) and
                     bf16 matmul throughput (8192^3 GEMMs); the floors below use these numbers
    wrap             SVD adapter (deployed + quarantine block) on every attention/MLP linear layer
    fast_<mode>      projected_grpo.loop.decoder through the adapter, --gen-len new tokens, one phase per
                     --modes entry (graph: CUDA graphs; eager: no graphs, run at --hf-len tokens
                     since its Python overhead makes the full length slow; a "+matmul" suffix
                     decodes with the matmul attention kernel, "+unmerged" without folding the
                     adapter into the weights, "+unfused" merged but with q/k/v and gate/up as separate
                     matmuls (DecodeConfig.fuse off), "+noshare" with a KV copy of the prompt per row instead
                     of one per group of rollouts, "+mem<f>" with DecodeConfig.mem_frac f, "+b<k>" with attention buckets of k tokens,
                     "+efficient" with the memory-efficient kernel for shared prompts' two parts,
                     "+compile" with DecodeConfig.compile, after a warm-up decode of two groups that compiles
                     (timed apart as fast_<mode>_compile_warmup));
                     --short-modes run only at --hf-len; each mode in its
                     own try/except, so a failing mode prints its error and the bench goes on
    fast_<mode>_short   the same decoder at --hf-len tokens (same setting as hf_generate)
    hf_generate      transformers' generate through the adapter (sampling.sample, decoder hf) at
                     --hf-len new tokens in batches of --hf-batch: its dynamic KV cache of 256 x 2136
                     tokens does not fit beside the weights, so it runs shorter; compare it with
                     fast_<mode>_short, which runs the same setting
    fwd_bwd          token log-probs + Dr.GRPO loss + backward in micro-batches of --fb-batch rollouts,
                     per-rollout gradient capture on; --compile: decoder layers compiled (models.compile_layers,
                     as the trainer does on CUDA); completions are the decoded ids, extended with
                     random ids to --gen-len where a decode ran shorter
    fwd_bwd_mb<k>    (--fb-sweep) the same over the first --sweep-rollouts rollouts in micro-batches
                     of k, with its own floor ratio (a failing size, e.g. out of memory, is reported);
                     an entry "<k>c" runs with the model's RMSNorm, MLP activation and rotary embedding
                     replaced by torch.compile'd versions of the same functions, "<k>k" with every decoder
                     layer compiled (models.compile_layers; --compile does it for fwd_bwd); compile time is
                     included, so a second such entry shows the compiled steady state
    erase            projection of a random direction out of every deployed block's gradient
    route            routing scores (cosine with a random v_grad), top --route-frac routed, written
    optimizer        grad-norm clip + AdamW step over both blocks

Floors (seconds at the measured machine numbers; the ratio printed is measured / floor):
    decode           prefill FLOPs / matmul rate + for every decode step (weights + the filled KV
                     cache of the wave) bytes / bandwidth, summed over steps and waves; with shared
                     prompts the filled cache holds each group's prompt once and one prefill runs per
                     group, and the floor of the same waves with a prompt copy per row is printed too
    fwd_bwd          (4 x linear parameters x tokens + 6 x causal attention FLOPs) / matmul rate
                     (forward, and backward to activations only: base weights are frozen)
    erase, route, optimizer   bytes of the per-rollout gradient matrices / bandwidth (a lower bound
                     that ignores their small matmuls)
With --profile the bench instead profiles (torch.profiler) a few eager decode steps of one wave at
--profile-prompt tokens of context and one forward-backward micro-batch, and prints the kernels that
take the most device time in each (where a phase's time over its floor goes).
Prints numbers, asserts nothing but that losses are finite.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
import traceback
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]

import torch  # noqa: E402

from projected_grpo.method import adapters as ad  # noqa: E402
from projected_grpo.loop import grpo  # noqa: E402
from projected_grpo.method import interventions as iv  # noqa: E402
from projected_grpo.loop.models import compile_layers  # noqa: E402
from projected_grpo.loop.decoder import DecodeConfig, arch_of, decode, kv_bytes_per_token  # noqa: E402
from projected_grpo.loop.sampling import collate, sample  # noqa: E402

RESULTS: dict = {}
SIZES: dict = {}  # model_sizes of the unwrapped model, set in main
SMALL = dict(hidden=64, layers=2, heads=4, kv_heads=2, head_dim=16, intermediate=128, vocab=512, prompts=2, group=2,
             prompt_len=16, gen_len=16, hf_len=8, rank=4, device="cpu", modes="eager", hf_batch=4)


class Phase:
    def __init__(self, name: str, dev: str):
        self.name, self.dev = name, dev

    def __enter__(self):
        if self.dev == "cuda":
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        self.t = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.dev == "cuda":
            torch.cuda.synchronize()
        s = time.perf_counter() - self.t
        peak = torch.cuda.max_memory_allocated() / 2**30 if self.dev == "cuda" else float("nan")
        RESULTS[self.name] = dict(seconds=round(s, 3), peak_gib=round(peak, 2), ok=exc[0] is None)
        print(f"{self.name:22s} {s:8.2f} s   peak {peak:6.2f} GiB{'' if exc[0] is None else '   FAILED'}", flush=True)
        return False


def sync(dev: str) -> None:
    if dev == "cuda":
        torch.cuda.synchronize()


def measure_machine(dev: str, dtype: torch.dtype) -> tuple[float, float]:
    """(copy bandwidth in bytes/s counting read + write, matmul FLOP/s) on `dev`."""
    n_bytes = 2**30 if dev == "cuda" else 2**26
    x = torch.empty(n_bytes // 2, dtype=torch.bfloat16, device=dev)
    y = torch.empty_like(x)
    y.copy_(x)
    sync(dev)
    t = time.perf_counter()
    reps = 20 if dev == "cuda" else 3
    for _ in range(reps):
        y.copy_(x)
    sync(dev)
    bw = 2 * n_bytes * reps / (time.perf_counter() - t)
    del x, y
    n = 8192 if dev == "cuda" else 512
    a = torch.randn(n, n, dtype=dtype, device=dev)
    b = torch.randn(n, n, dtype=dtype, device=dev)
    a @ b
    sync(dev)
    t = time.perf_counter()
    reps = 20 if dev == "cuda" else 3
    for _ in range(reps):
        a @ b
    sync(dev)
    flops = 2 * n**3 * reps / (time.perf_counter() - t)
    return bw, flops


def weight_bytes(model) -> int:
    """Bytes of the parameters (a tied tensor once). Called on the model before it is wrapped: the merged
    decode reads these and not the adapters' frozen bases (buffers, not counted)."""
    return sum(p.numel() * p.element_size() for p in model.parameters())


def model_sizes(model) -> dict:
    """What the decode floors need of the (unwrapped) model."""
    arch = arch_of(model)
    return dict(weight_bytes=weight_bytes(model), kv_per_token=kv_bytes_per_token(arch, arch.embed.weight.dtype),
                linear_params=linear_params(model))


def linear_params(model) -> int:
    """Parameters that a token's forward multiplies (every weight but the embedding lookup; lm_head once)."""
    emb = model.get_input_embeddings().weight
    n = sum(p.numel() for p in model.parameters() if p is not emb and p.ndim >= 2)
    return n + model.lm_head.weight.numel() * (model.lm_head.weight is emb)


def attention_flops(cfg, seq: int) -> float:
    """Forward FLOPs of causal attention scores and values for one sequence of `seq` tokens."""
    return 4 * cfg.num_hidden_layers * cfg.num_attention_heads * cfg.head_dim * seq * seq / 2


def decode_floor(sizes: dict, cfg, n: int, P: int, new: int, waves: int, b: int, bw: float, flops: float,
                 group: int = 1, prefills: int | None = None) -> float:
    """Prefill FLOPs at the matmul rate + decode steps' weight and filled-KV bytes at the bandwidth. With
    shared prompts (group G > 1) a wave's b rows are b / G groups: one prompt KV per group; `prefills` prompts
    are prefilled (default n / G)."""
    kv, wb = sizes["kv_per_token"], sizes["weight_bytes"]
    prefills = n // group if prefills is None else prefills
    prefill = prefills * (2 * sizes["linear_params"] * P + attention_flops(cfg, P)) / flops
    steps = sum(wb + b // group * (P + group * (t + 1)) * kv for t in range(new - 1)) * waves
    return prefill + steps / bw


def decode_floors(sizes: dict, cfg, n: int, P: int, new: int, waves: int, b: int, group: int, bw: float,
                  flops: float) -> tuple[float, float | None]:
    """(floor of what this decode must do, and for shared prompts the issue's floor: every row reading its own
    whole KV cache at every step, same waves, with this decode's prefills)."""
    own = decode_floor(sizes, cfg, n, P, new, waves, b, bw, flops, group)
    issue = decode_floor(sizes, cfg, n, P, new, waves, b, bw, flops, 1, prefills=n // group) if group > 1 else None
    return own, issue


def record_decode(name: str, comps: list[list[int]], new: int, floor: float, waves: int, batch: int,
                  floor_unshared: float | None = None, group: int = 1) -> None:
    r = RESULTS[name]
    toks = sum(map(len, comps))
    r.update(tokens=toks, new_tokens=new, tokens_per_s=round(toks / r["seconds"], 1), waves=waves, batch=batch,
             group=group, decode_steps_per_s=round(new * waves / r["seconds"], 2), floor_s=round(floor, 3),
             ratio_to_floor=round(r["seconds"] / floor, 2))
    extra = ""
    if floor_unshared is not None:  # the issue's floor: every row reads its own whole cache (decode_floors)
        r.update(floor_unshared_s=round(floor_unshared, 3), ratio_to_floor_unshared=round(r["seconds"] / floor_unshared, 2))
        extra = f"; unshared (issue's) floor {floor_unshared:.2f} s, ratio {r['seconds'] / floor_unshared:.2f}"
    print(f"{'':22s} {toks} tokens, {toks / r['seconds']:.0f} tokens/s, {waves} wave(s) of {batch} "
          f"(groups of {group}), floor {floor:.2f} s, ratio {r['seconds'] / floor:.2f}{extra}", flush=True)


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true", help="tiny config on the CPU (checks the script in seconds)")
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
    ap.add_argument("--gen-len", type=int, default=1536, help="new tokens of the fast decoder (graph mode)")
    ap.add_argument("--hf-len", type=int, default=256, help="new tokens of hf_generate, eager and *_short decodes")
    ap.add_argument("--hf-batch", type=int, default=256, help="rollouts per transformers generate call")
    ap.add_argument("--modes", default="graph+compile,graph,eager", help="fast decoder modes to time, in order (graph, eager, "
                    "with optional +matmul / +unmerged suffixes)")
    ap.add_argument("--short-modes", default="", help="fast decoder modes timed only at --hf-len tokens")
    ap.add_argument("--fb-sweep", default="4k", help="micro-batch sizes for fwd_bwd_mb<k> phases, e.g. 2,4,8 "
                    "(the default, one compiled entry over --sweep-rollouts, compiles before the timed fwd_bwd)")
    ap.add_argument("--sweep-rollouts", type=int, default=8, help="rollouts per fwd_bwd_mb<k> phase")
    ap.add_argument("--bucket", type=int, default=128, help="fast decoder attention bucket (new tokens per row)")
    ap.add_argument("--mem-frac", type=float, default=DecodeConfig.mem_frac,
                    help="fraction of the free GPU memory the fast decoder's KV cache may take (DecodeConfig.mem_frac)")
    ap.add_argument("--skip-hf", action="store_true")
    ap.add_argument("--skip-train", action="store_true", help="decode phases only")
    ap.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True,
                    help="fwd_bwd with compiled decoder layers (models.compile_layers, as the trainer on CUDA), after the "
                    "--fb-sweep entries; its compile time is included unless a compiled sweep entry ran first")
    ap.add_argument("--fb-batch", type=int, default=4, help="rollouts per forward-backward micro-batch")
    ap.add_argument("--rank", type=int, default=64)
    ap.add_argument("--quarantine", default="own", choices=("shared", "own"))
    ap.add_argument("--svd", default="lowrank", choices=("lowrank", "full"))
    ap.add_argument("--route-frac", type=float, default=0.25)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--json", default="", help="also write the results here")
    ap.add_argument("--profile", action="store_true", help="only profile decode steps and one fwd_bwd micro-batch")
    ap.add_argument("--profile-prompt", type=int, default=1400, help="--profile: context length of the decode steps")
    ap.add_argument("--profile-rows", type=int, default=128, help="--profile: rows of the profiled decode wave")
    ap.add_argument("--refloor", default="", help="recompute a bench JSON's decode floors with this script's "
                    "floor (its config and machine numbers; model sizes from a meta-device build) and exit")
    ap.add_argument("--profile-diff", default="", help="print the per-decode-step rows of a --profile JSON and exit")
    a = ap.parse_args()
    if a.small:
        for k, v in SMALL.items():
            setattr(a, k, v)
    modes = [m for m in (a.modes + "," + a.short_modes).split(",") if m]
    if len(modes) != len(set(modes)):
        ap.error(f"a decoder mode is listed twice in --modes/--short-modes: {modes}")
    return a


def lowrank_svd(w, k, cache_dir, digest):
    q = min(k + 8, min(w.shape))
    u, s, v = torch.svd_lowrank(w.detach().float(), q=q, niter=2)
    return u[:, :k].contiguous(), s[:k].contiguous(), v[:, :k].T.contiguous(), False


def build(a, dev: str, dtype: torch.dtype):
    from transformers import Qwen3Config, Qwen3ForCausalLM

    cfg = Qwen3Config(vocab_size=a.vocab, hidden_size=a.hidden, intermediate_size=a.intermediate,
                      num_hidden_layers=a.layers, num_attention_heads=a.heads, num_key_value_heads=a.kv_heads,
                      head_dim=a.head_dim, max_position_embeddings=max(4096, a.prompt_len + a.gen_len + 8),
                      tie_word_embeddings=True, eos_token_id=a.vocab - 1, pad_token_id=a.vocab - 2, bos_token_id=None)
    torch.manual_seed(0)
    prev = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    with torch.device(dev):
        model = Qwen3ForCausalLM(cfg)
    torch.set_default_dtype(prev)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def run_fast(model, pids, mode: str, new: int, a, bw: float, flops: float, name: str) -> list[list[int]] | None:
    """One timed fast decode; None (error printed) when the mode fails."""
    try:
        base, *flags = mode.split("+")
        mem = [float(f[3:]) for f in flags if f.startswith("mem")]
        bucket = [int(f[1:]) for f in flags if f[:1] == "b" and f[1:].isdigit()]
        flags = [f for f in flags if not f.startswith("mem") and not (f[:1] == "b" and f[1:].isdigit())]
        assert set(flags) <= {"matmul", "efficient", "unmerged", "unfused", "noshare", "compile"} and len(mem) <= 1 \
            and len(bucket) <= 1, f"unknown decoder flags in mode {mode!r}"
        cfg = DecodeConfig(mode=base, bucket=bucket[0] if bucket else a.bucket, merge="unmerged" not in flags,
                           attention="matmul" if "matmul" in flags else "efficient" if "efficient" in flags else "sdpa",
                           share_prompts="noshare" not in flags, mem_frac=mem[0] if mem else a.mem_frac,
                           compile="compile" in flags, fuse="unfused" not in flags)
        if cfg.compile:  # compilation once per process, timed apart: two groups, two new tokens
            with Phase(f"{name}_compile_warmup", a.device):
                decode(model, pids[: 2 * a.group], 1.0, 2, a.vocab - 1, a.vocab - 2, cfg=cfg)
        with Phase(name, a.device):
            torch.manual_seed(0)
            out = decode(model, pids, 1.0, new, a.vocab - 1, a.vocab - 2, cfg=cfg)
        floor, issue = decode_floors(SIZES, model.config, len(pids), a.prompt_len, new, out.waves, out.batch, out.group,
                                     bw, flops)
        record_decode(name, out.tokens, new, floor, out.waves, out.batch, issue, out.group)
        return out.tokens
    except Exception as e:  # a failing mode must not end the bench
        RESULTS[name] = dict(ok=False, error=f"{type(e).__name__}: {e}"[:2000])
        print(f"{name}: FAILED\n" + traceback.format_exc()[-3000:], flush=True)
        return None


def refloor(path: Path) -> None:
    """Print each decode phase of a bench JSON against the floors as decode_floors computes them now."""
    res = json.loads(path.read_text())
    a = SimpleNamespace(**res["config"])
    model = build(a, "meta", torch.bfloat16)
    sizes = model_sizes(model)
    bw, flops = res["machine"]["copy_bytes_per_s"], res["machine"]["matmul_flops_per_s"]
    n = a.prompts * a.group
    print(f"{path}: sizes {sizes}, copy {bw / 1e12:.3f} TB/s, matmul {flops / 1e12:.1f} TFLOP/s")
    print("phase | seconds | waves x rows | group | floor s | ratio | issue's floor s | ratio")
    for name, r in res.items():
        if isinstance(r, dict) and r.get("ok") and "new_tokens" in r:
            g = r.get("group", 1)
            own, issue = decode_floors(sizes, model.config, n, a.prompt_len, r["new_tokens"], r["waves"], r["batch"], g,
                                       bw, flops)
            issue = issue or own
            print(f"{name} | {r['seconds']:.2f} | {r['waves']} x {r['batch']} | {g} | {own:.2f} | {r['seconds'] / own:.2f} | "
                  f"{issue:.2f} | {r['seconds'] / issue:.2f}")


def main() -> None:
    a = parse()
    if a.profile_diff:
        return print_profile_diff(json.loads(Path(a.profile_diff).read_text()))
    if a.refloor:
        return refloor(Path(a.refloor))
    dev = a.device
    n = a.prompts * a.group
    dtype = torch.bfloat16 if dev == "cuda" else torch.float32
    RESULTS["config"] = dict(vars(a))
    RESULTS["torch"] = torch.__version__
    if dev == "cuda":
        RESULTS["device"] = torch.cuda.get_device_name(0)
    print(f"device {RESULTS.get('device', dev)}, torch {torch.__version__}", flush=True)
    with Phase("machine", dev):
        bw, flops = measure_machine(dev, dtype)
    RESULTS["machine"].update(copy_bytes_per_s=bw, matmul_flops_per_s=flops)
    print(f"{'':22s} copy bandwidth {bw / 1e12:.3f} TB/s, matmul {flops / 1e12:.1f} TFLOP/s ({dtype})", flush=True)
    with Phase("init", dev):
        model = build(a, dev, dtype)
    RESULTS["n_params"] = sum(p.numel() for p in model.parameters())
    SIZES.update(model_sizes(model))
    RESULTS["sizes"] = dict(SIZES)
    print(f"model: {RESULTS['n_params'] / 1e9:.3f} B parameters, {dtype}", flush=True)
    tok = SimpleNamespace(pad_token_id=a.vocab - 2, eos_token_id=a.vocab - 1)
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(0, a.vocab - 2, (a.prompt_len,), generator=g).tolist() for _ in range(a.prompts)]
    pids = [p for p in prompts for _ in range(a.group)]
    if a.svd == "lowrank":
        ad.svd_top_k = lowrank_svd
    with Phase("wrap", dev):
        ad.wrap_model(model, ad.AdapterConfig(kind="svd", rank=a.rank, quarantine=a.quarantine, cache_dir=None))
    mods = ad.adapter_modules(model)
    RESULTS["adapters"] = dict(modules=len(mods), trainable=sum(p.numel() for p in ad.deployed_params(model)
                                                                + ad.quarantine_params(model)))
    with torch.no_grad():  # nonzero blocks so the adapter branch is not a no-op
        for p in ad.deployed_params(model) + ad.quarantine_params(model):
            p.normal_(0, 1e-3)
    if a.profile:
        return profile(model, a, dev)
    comps = None
    for mode in [m for m in a.modes.split(",") if m]:
        full = a.gen_len if mode.startswith("graph") else a.hf_len
        got = run_fast(model, pids, mode, full, a, bw, flops, f"fast_{mode}")
        comps = comps or (got if full == a.gen_len else None)
        if full != a.hf_len:
            run_fast(model, pids, mode, a.hf_len, a, bw, flops, f"fast_{mode}_short")
    for mode in [m for m in a.short_modes.split(",") if m]:
        run_fast(model, pids, mode, a.hf_len, a, bw, flops, f"fast_{mode}_short")
    if not a.skip_hf:
        try:
            with Phase("hf_generate", dev):
                hf = sample(model, tok, pids, 1.0, a.hf_len, generator_seed=0, batch_size=a.hf_batch, decoder="hf")
            waves = -(-n // a.hf_batch)
            record_decode("hf_generate", hf, a.hf_len,
                          decode_floor(SIZES, model.config, n, a.prompt_len, a.hf_len, waves, min(n, a.hf_batch), bw, flops),
                          waves, min(n, a.hf_batch))
        except Exception as e:
            RESULTS["hf_generate"] = dict(ok=False, error=f"{type(e).__name__}: {e}"[:2000])
            print("hf_generate: FAILED\n" + traceback.format_exc()[-3000:], flush=True)
    for m in [m for m in (a.modes + "," + a.short_modes).split(",") if m]:
        fast, hfr = RESULTS.get(f"fast_{m}_short", RESULTS.get(f"fast_{m}")), RESULTS.get("hf_generate")
        if fast and hfr and fast.get("ok") and hfr.get("ok") and fast.get("new_tokens") == hfr.get("new_tokens"):
            RESULTS[f"speedup_{m}_vs_hf"] = round(hfr["seconds"] / fast["seconds"], 2)
            print(f"fast {m} vs hf generate at {a.hf_len} new tokens: {hfr['seconds'] / fast['seconds']:.2f}x", flush=True)
    if not a.skip_train:
        train(model, pids, comps, a, bw, flops, g)
    phases = ("fast_graph", "fwd_bwd", "erase", "route", "optimizer")
    if all(RESULTS.get(p, {}).get("ok") for p in phases):
        RESULTS["step_seconds"] = round(sum(RESULTS[p]["seconds"] for p in phases), 1)
        print(f"step (fast_graph + fwd_bwd + erase + route + optimizer): {RESULTS['step_seconds']} s", flush=True)
    graphs = [k for k in RESULTS if k.startswith("fast_graph") and "tokens" in RESULTS[k]  # a full decode, timed
              and RESULTS[k]["new_tokens"] == a.gen_len]
    if graphs and all(RESULTS.get(p, {}).get("ok") for p in phases[1:]):
        best = min(graphs, key=lambda k: RESULTS[k]["seconds"])
        rest = sum(RESULTS[p]["seconds"] for p in phases[1:])
        RESULTS["step_seconds_best_decode"] = dict(decode=best, seconds=round(RESULTS[best]["seconds"] + rest, 1))
        print(f"step with the fastest full decode ({best}): {RESULTS['step_seconds_best_decode']['seconds']} s", flush=True)
    if dev == "cuda":
        RESULTS["max_memory_reserved_gib"] = round(torch.cuda.max_memory_reserved() / 2**30, 2)
    print("RESULT " + json.dumps(RESULTS), flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(RESULTS, indent=2))


def top_kernels(prof, n: int = 20) -> list[dict]:
    """The n kernels with the most device time: name, total ms, calls, share of the profiled device time."""
    # device kernels only: operator rows (aten::*) repeat their kernels' time, and "Command Buffer Full"
    # is a launch-queue marker, not work
    ev = [e for e in prof.key_averages() if getattr(e, "self_device_time_total", 0) > 0 and is_kernel(dict(name=e.key))]
    tot = sum(getattr(e, "self_device_time_total", 0) for e in ev) or 1
    ev.sort(key=lambda e: -getattr(e, "self_device_time_total", 0))
    return [dict(name=e.key[:90], ms=round(e.self_device_time_total / 1e3, 2), calls=e.count,
                 share=round(e.self_device_time_total / tot, 3)) for e in ev[:n]]


PROFILE_DECODE_STEPS = 8


def is_kernel(row: dict) -> bool:
    return not row["name"].startswith("aten::") and row["name"] != "Command Buffer Full"


def print_profile_diff(res: dict) -> None:
    """Per decode step: each row's device ms of prefill_plus_decode minus prefill_only, over the profiled steps
    (operator rows, aten::*, repeat their kernels' time); and each forward-backward profile's kernel ms."""
    from collections import Counter

    before, after = res["profile_prefill_only"], res["profile_prefill_plus_decode"]
    # names are cut to 90 characters, so two kernels can share one: such names are ambiguous and left out
    twice = {n for n, c in (Counter(r["name"] for r in before) + Counter(r["name"] for r in after)).items()
             if c > 2 or any(sum(r["name"] == n for r in rows) > 1 for rows in (before, after))}
    a = {r["name"]: r for r in before}
    print(f"per decode step (ms), {PROFILE_DECODE_STEPS} steps, prefill_plus_decode - prefill_only"
          f" ({len(twice)} ambiguous names left out):")
    for r in after:
        if r["name"] in twice:
            continue
        d = (r["ms"] - a.get(r["name"], {"ms": 0.0})["ms"]) / PROFILE_DECODE_STEPS
        if d > 0.2 and r["name"] != "Command Buffer Full":
            print(f"  {d:7.2f}  {r['name']}")
    for k in ("profile_fwd_bwd_capture", "profile_fwd_bwd_no_capture"):
        ks = [r for r in res[k] if is_kernel(r)]
        print(f"{k}: {len(ks)} kernel rows among the listed top rows, {sum(r['ms'] for r in ks):.1f} ms "
              f"(a lower bound of the micro-batch's kernel time)")


def print_table(prof, name: str) -> None:
    """torch.profiler's own table (by device time), next to top_kernels' list."""
    try:
        print(f"\n{name}:\n" + prof.key_averages().table(sort_by="self_device_time_total", row_limit=15), flush=True)
    except Exception as e:  # the table is a second view; its failure must not end the profile
        print(f"{name}: profiler table unavailable ({type(e).__name__}: {e})", flush=True)


def profile(model, a, dev: str) -> None:
    """Kernel breakdown of eager decode steps (one wave) and of one forward-backward micro-batch."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    g = torch.Generator().manual_seed(3)
    rows = [torch.randint(0, a.vocab - 2, (a.profile_prompt,), generator=g).tolist() for _ in range(a.profile_rows)]
    new = PROFILE_DECODE_STEPS
    decode(model, rows[:2], 1.0, 2, a.vocab - 1, a.vocab - 2, cfg=DecodeConfig(mode="eager"))  # warm-up
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev == "cuda" else [])
    # the wave's prefill is profiled too; it is reported apart by its kernels' shapes only in the trace,
    # so the decode table is read against a prefill-only profile of the same rows
    for name, n_new in (("prefill_only", 1), ("prefill_plus_decode", new + 1)):
        with torch_profile(activities=acts) as prof:
            decode(model, rows, 1.0, n_new, a.vocab - 1, a.vocab - 2, cfg=DecodeConfig(mode="eager"))
            sync(dev)
        RESULTS[f"profile_{name}"] = top_kernels(prof)
        print_table(prof, name)
    comps = [torch.randint(0, a.vocab - 2, (a.gen_len,), generator=g).tolist() for _ in range(a.fb_batch)]
    pids = [r[: a.prompt_len] for r in rows[: a.fb_batch]]
    compile_layers(model) if a.compile else None
    for capture in (True, False):  # warm-up (and compilation) of both forwards
        with ad.capture_per_sample_grads(model) if capture else contextlib.nullcontext():
            fwd_bwd(model, pids, comps, torch.ones(a.fb_batch), a.fb_batch, float(a.fb_batch * a.gen_len), dev,
                    a.vocab - 2)
        model.zero_grad(set_to_none=True)
    for name, capture in (("fwd_bwd_capture", True), ("fwd_bwd_no_capture", False)):
        with torch_profile(activities=acts) as prof:
            ctx = ad.capture_per_sample_grads(model) if capture else contextlib.nullcontext()
            with ctx:
                fwd_bwd(model, pids, comps, torch.ones(a.fb_batch), a.fb_batch, float(a.fb_batch * a.gen_len), dev,
                        a.vocab - 2)
            sync(dev)
        RESULTS[f"profile_{name}"] = top_kernels(prof)
        print_table(prof, name)
        model.zero_grad(set_to_none=True)
    print_profile_diff(RESULTS)
    for k, v in RESULTS.items():
        if k.startswith("profile_"):
            print(f"\n{k} (device ms, calls, share):")
            for r in v:
                print(f"  {r['ms']:9.2f} {r['calls']:6d} {r['share']:6.3f}  {r['name']}")
    print("RESULT " + json.dumps(RESULTS), flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(RESULTS, indent=2))


def compile_elementwise(model):
    """Replace the model's RMSNorm forward, MLP activation product and rotary embedding by torch.compile'd
    versions of the same arithmetic (Llama-family HF modules); returns a function that restores them."""
    layer = model.model.layers[0]
    norm_cls, mlp_cls = type(layer.input_layernorm), type(layer.mlp)
    mod = sys.modules[type(layer.self_attn).__module__]
    saved = (norm_cls.forward, mlp_cls.forward, mod.apply_rotary_pos_emb)

    @torch.compile(dynamic=True)
    def rms(x, w, eps: float):
        xf = x.float()
        return w * (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)

    @torch.compile(dynamic=True)
    def silu_mul(g, u):
        return torch.nn.functional.silu(g) * u

    def restore():
        norm_cls.forward, mlp_cls.forward, mod.apply_rotary_pos_emb = saved

    assert model.config.hidden_act == "silu", f"compile_elementwise fuses SiLU, not {model.config.hidden_act}"
    try:
        norm_cls.forward = lambda self, x: rms(x, self.weight, self.variance_epsilon)
        mlp_cls.forward = lambda self, x: self.down_proj(silu_mul(self.gate_proj(x), self.up_proj(x)))
        mod.apply_rotary_pos_emb = torch.compile(saved[2], dynamic=True)
    except Exception:
        restore()
        raise
    return restore


def fwd_bwd(model, pids, comps, adv, mb: int, denom: float, dev: str, pad: int) -> list[float]:
    """The trainer's forward-backward (grpo.loss_backward) in micro-batches of `mb` rollouts, each collated to its
    own longest row; the per-micro-batch losses."""
    losses = []
    for s in range(0, len(pids), mb):
        b = collate(pids[s:s + mb], comps[s:s + mb], pad)
        ids, attn, mask = b.input_ids.to(dev), b.attention_mask.to(dev), b.completion_mask.to(dev)
        loss, _ = grpo.loss_backward(model, [slice(0, ids.shape[0])], ids, attn, mask, adv[s:s + mb].to(dev), None,
                                     None, denom, 0.2, 0.0)
        losses.append(loss.item())
    return losses


def record_fwd_bwd(name: str, model, n: int, micro_batches: int, a, flops: float) -> None:
    T = a.prompt_len + a.gen_len
    fb_flops = n * (4 * linear_params(model) * T + 6 * attention_flops(model.config, T))
    r = RESULTS[name]
    r.update(tokens=n * T, micro_batches=micro_batches, flops=fb_flops, floor_s=round(fb_flops / flops, 3),
             ratio_to_floor=round(r["seconds"] / (fb_flops / flops), 2))
    print(f"{'':22s} {n * T} tokens, {fb_flops:.3g} FLOPs, floor {fb_flops / flops:.2f} s, "
          f"ratio {r['ratio_to_floor']:.2f}", flush=True)


def train(model, pids, comps, a, bw: float, flops: float, g: torch.Generator) -> None:
    """fwd_bwd, erase, route, optimizer phases at the full length --gen-len."""
    dev, n = a.device, len(pids)
    comps = comps or [[] for _ in pids]
    comps = [(c + torch.randint(0, a.vocab - 2, (max(0, a.gen_len - len(c)),), generator=g).tolist())[: a.gen_len]
             for c in comps]
    adv = torch.randn(n, generator=g)
    opt = torch.optim.AdamW([dict(params=ad.deployed_params(model)), dict(params=ad.quarantine_params(model))],
                            lr=1e-3, betas=(0.9, 0.99))
    denom = float(n * a.gen_len)
    # the sweep first: the fwd_bwd phase below leaves the step's gradients for erase/route/optimizer
    for j, entry in enumerate([x for x in a.fb_sweep.split(",") if x]):
        k, how = int(entry.rstrip("ck")), entry.lstrip("0123456789")
        assert how in ("", "c", "k"), f"--fb-sweep entry {entry!r}: a size with an optional c or k"
        m, name = min(n, a.sweep_rollouts), f"fwd_bwd_mb{entry}" + (f"_{j}" if how else "")
        restore = lambda: None  # noqa: E731
        try:
            if how:
                restore = compile_elementwise(model) if how == "c" else compile_layers(model)
            with Phase(name, dev):
                opt.zero_grad(set_to_none=True)
                with ad.capture_per_sample_grads(model):
                    losses = fwd_bwd(model, pids[:m], comps[:m], adv[:m], k, denom, dev, a.vocab - 2)
            record_fwd_bwd(name, model, m, len(losses), a, flops)
            RESULTS[name]["loss_sum"] = sum(losses)  # the same rollouts: equal up to rounding across entries
            print(f"{'':22s} loss sum {sum(losses):.6g}", flush=True)
        except Exception as e:  # out of memory at a large micro-batch must not end the bench
            RESULTS[name] = dict(ok=False, error=f"{type(e).__name__}: {e}"[:500])
            print(f"{name}: FAILED {type(e).__name__}: {str(e)[:300]}", flush=True)
            torch.cuda.empty_cache() if dev == "cuda" else None
        finally:
            restore()
    restore = compile_layers(model) if a.compile else lambda: None
    with Phase("fwd_bwd", dev):
        opt.zero_grad(set_to_none=True)
        with ad.capture_per_sample_grads(model):
            losses = fwd_bwd(model, pids, comps, adv, a.fb_batch, denom, dev, a.vocab - 2)
    restore()
    assert all(x == x and abs(x) < float("inf") for x in losses), losses
    record_fwd_bwd("fwd_bwd", model, n, len(losses), a, flops)
    RESULTS["fwd_bwd"]["compiled"] = a.compile
    mods = ad.adapter_modules(model)
    gv = torch.Generator().manual_seed(2)
    V = {nm: torch.randn(1, sum(p.numel() for p in m.deployed_parameters()), generator=gv) for nm, m in mods.items()}
    ctx = iv.StepContext(step=0, device=dev, rows=list(range(n)), adv=adv.to(dev))
    G_bytes = n * sum(p.numel() for p in ad.deployed_params(model) + ad.quarantine_params(model)) * 4
    erase = iv.Erase(V)
    erase.setup(model, None, dev)
    with Phase("erase", dev):
        hook_e = erase.after_backward(model, ctx)
    route = iv.Route(V, gate="grad", route_frac=a.route_frac)
    route.setup(model, None, dev)
    with Phase("route", dev):
        hook_r = route.after_backward(model, ctx)
    with Phase("optimizer", dev):
        gn = torch.nn.utils.clip_grad_norm_([p for grp in opt.param_groups for p in grp["params"]], 1.0).item()
        opt.step()
    for p in ("erase", "route", "optimizer"):
        RESULTS[p].update(floor_s=G_bytes / bw if p != "optimizer" else 0.0)
    RESULTS["diag"] = dict(loss_sum=sum(losses), grad_norm=gn, cos_in=hook_e["step"]["cos_in"],
                           routed_frac=hook_r["step"]["routed_frac"])


if __name__ == "__main__":
    main()
