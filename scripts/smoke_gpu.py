"""GPU smoke: every arm of the registry (arms.py) for 2 steps on both adapters, bf16 on CUDA (not a
verify_* gate: needs a GPU). Each arm runs with its registry flags, its v_hack kind (extracted as arms.VHACK_FILES
says, for the adapter of the pass) and its matched run; seeded absorption (scorda) is SVD-only and is skipped on LoRA,
and an arm that fixes its adapter (route-lora) runs on that adapter only.

    python scripts/smoke_gpu.py                  all arms, svd and lora
    python scripts/smoke_gpu.py --arms vanilla,route --adapters svd

A tiny randomly initialised Qwen3-architecture model (no download) is built from a config with the
organism's tokenizer and saved to a temp folder, which is passed to every stage as --model. Then:
v_hack extraction (vhack.extract_to_file, scripts/extract_vhack_grad.py's body; every kind the arms need, per
adapter) and 2 GRPO steps of each arm through cli.train (scripts/train.py's body). A random model earns no reward, so every group would
have zero variance and nothing would train; a teacher pool of template completions (the canonical
solution and a template hack of each training problem, 2 of every group of 4) gives the groups
reward variance so that the backward, the interventions and the optimizer run. Each arm must
finish (DONE), log a loss in every step, and every logged loss and gradient norm must be finite.

Before the arms, the fast decoder (projected_grpo.loop.decoder) is checked in bf16 on the same model through
an SVD adapter (both blocks nonzero, kept and ablated; 24 distinct prompts, and 8 prompts x 3 rows that
the decoder runs as shared-prompt groups, also in waves of 2 groups, on the memory-efficient kernel and with
DecodeConfig.compile):
CUDA-graph mode gives the same tokens as eager
mode (the same kernels replayed), and its per-token log-probs agree with the training path's
(grpo.token_logprobs) within 0.1 (bf16); greedy agreement with transformers' generate is printed.
The arms then run with the first decoder that passed (fast, fast-eager, else hf; `--decoder` forces one).

First (CUDA only) PGRPO_CUDA_SYNC=blocking is checked: a process waiting for the GPU spends a small share of the
wait as CPU time, where spin spends most of it (check_cuda_sync; `--sync-only` runs only this check).

Then compiled decoder layers (models.compile_layers) are checked against eager ones in bf16 with
per-rollout capture (loss and every rollout's gradient within 5e-2, two sequence lengths). The arms run
with --compile off (`--compile` here; train.py's default, auto, compiles on CUDA, and every adapter
structure compiles anew, minutes per arm), and the route arm a second time with --compile on (training
layers and decoder compiled).

Prints PASS/FAIL per arm and adapter and ends with 'N passed, N failed'. Refuses to run without
CUDA (exit 2); `--device cpu` runs the same checks in fp32 on the CPU (for checking this script).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from _gate_common import teacher_pool  # noqa: E402

from projected_grpo.loop import cli  # noqa: E402
from projected_grpo.method import arms as A  # noqa: E402
from projected_grpo.method import vhack  # noqa: E402

ARMS = tuple(A.closure(list(A.BY_NAME)))  # every registry arm; a matched arm after the arm it matches


def build_tiny_qwen3(folder: Path, hidden: int = 128, layers: int = 2) -> None:
    """Random-init Qwen3 (GQA: 4 query heads, 2 kv heads) with the organism tokenizer, saved to folder."""
    import torch
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    from projected_grpo.loop.models import resolve

    tok = AutoTokenizer.from_pretrained(resolve("organism:tiny"))
    torch.manual_seed(0)
    cfg = Qwen3Config(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=hidden // 4, max_position_embeddings=4096,
                      tie_word_embeddings=True, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                      bos_token_id=None)
    Qwen3ForCausalLM(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)


def wrapped_policy(model_dir: Path, device: str):
    """(model, tok): the tiny model through an SVD adapter (own quarantine) with both blocks random and nonzero."""
    import torch

    from projected_grpo.method import adapters as ad
    from projected_grpo.loop.models import load_policy

    model, tok = load_policy(str(model_dir), device)
    ad.wrap_model(model, ad.AdapterConfig(kind="svd", rank=8, quarantine="own", cache_dir=None))
    with torch.no_grad():
        for p in ad.deployed_params(model) + ad.quarantine_params(model):
            p.normal_(0, 0.5)
    return model, tok


def check_decoder(model_dir: Path, device: str) -> list[str]:
    """Decoder modes that pass the bf16 check (see module docstring), in preference order."""
    import torch

    from projected_grpo.method import adapters as ad
    from projected_grpo.loop.decoder import DecodeConfig, decode
    from projected_grpo.loop.grpo import token_logprobs
    from projected_grpo.loop.sampling import collate, sample

    model, tok = wrapped_policy(model_dir, device)
    g = torch.Generator().manual_seed(0)
    distinct = [torch.randint(0, len(tok) - 2, (int(n),), generator=g).tolist() for n in torch.randint(8, 40, (24,), generator=g)]
    shared = [p for p in distinct[:8] for _ in range(3)]  # GRPO-style groups: the decoder shares each prompt's KV
    eos, pad = tok.eos_token_id, tok.pad_token_id
    ok = []
    # waves of 2 groups: graphs captured in the first wave replay in later waves of other prompt lengths;
    # "efficient": the shared parts on the memory-efficient kernel instead of the default (cuDNN on CUDA)
    conds = (("kept", distinct, 0, "sdpa"), ("ablated", distinct, 0, "sdpa"), ("kept,shared", shared, 0, "sdpa"),
             ("ablated,shared", shared, 0, "sdpa"), ("kept,shared,waves", shared, 6, "sdpa"),
             ("kept,shared,efficient", shared, 0, "efficient"), ("kept,shared,compiled", shared, 0, "sdpa"))
    graph_tokens = {}
    for cond, prompts, max_batch, attention in conds:
        ctx = ad.deployment_ablation(model) if cond.startswith("ablated") else contextlib.nullcontext()
        with ctx:
            outs = {}
            for mode in ("graph", "eager") if device == "cuda" else ("eager",):
                try:
                    torch.manual_seed(1)
                    outs[mode] = decode(model, prompts, 1.0, 64, eos, pad,
                                        cfg=DecodeConfig(mode=mode, logprobs=True, bucket=16, max_batch=max_batch,
                                                         attention=attention, compile=cond.endswith("compiled")))
                    assert outs[mode].waves == (4 if max_batch else 1), f"waves {outs[mode].waves}"
                    assert outs[mode].group == (3 if prompts is shared else 1), f"group {outs[mode].group}"
                    b = collate(prompts, outs[mode].tokens, pad)
                    with torch.no_grad():
                        lp = token_logprobs(model, b.input_ids.to(device), b.attention_mask.to(device)).float().cpu()
                    err = max((lp[i, len(p):len(p) + len(t)] - torch.tensor(lps)).abs().max().item()
                              for i, (p, t, lps) in enumerate(zip(prompts, outs[mode].tokens, outs[mode].logprobs)) if t)
                    assert err < 0.1, f"log-prob error {err}"
                    print(f"PASS decoder[{mode},{cond}] log-prob err vs training path {err:.3g}", flush=True)
                    ok.append(mode)
                except Exception:
                    print(f"FAIL decoder[{mode},{cond}]\n    " + "\n    ".join(traceback.format_exc().splitlines()[-12:]),
                          flush=True)
            if "graph" in outs:
                graph_tokens[cond] = outs["graph"].tokens
            if "graph" in outs and "eager" in outs:
                same = outs["graph"].tokens == outs["eager"].tokens
                print(f"{'PASS' if same else 'FAIL'} decoder[graph==eager,{cond}] tokens identical: {same}", flush=True)
                if not same:
                    ok.append("graph!=eager")  # reported as a failed check; graph mode stays usable
            torch.manual_seed(1)
            greedy_fast = decode(model, prompts, 0.0, 32, eos, pad, cfg=DecodeConfig(mode="eager")).tokens
            greedy_hf = sample(model, tok, prompts, 0.0, 32, generator_seed=1, decoder="hf")
            agree = sum(a == b for a, b in zip(greedy_fast, greedy_hf)) / len(prompts)
            print(f"info decoder[{cond}] greedy rows identical to generate (bf16, not asserted): {agree:.2f}", flush=True)
    for other in ("kept,shared,efficient", "kept,shared,compiled"):
        if "kept,shared" in graph_tokens and other in graph_tokens:
            same = sum(a == b for a, b in zip(graph_tokens["kept,shared"], graph_tokens[other]))
            print(f"info decoder[shared] graph rows identical, kept,shared vs {other} (not asserted): {same}/{len(shared)}",
                  flush=True)
    good = [m for m in ("graph", "eager") if ok.count(m) == len(conds)]  # passed every condition
    return good + (["mismatch"] if "graph!=eager" in ok else [])


def check_compile(model_dir: Path, device: str) -> str:
    """Compiled decoder layers (models.compile_layers) against eager ones, bf16, SVD adapter (own quarantine)
    with per-rollout capture: the loss and every rollout's gradient agree, over two sequence lengths."""
    import torch

    from projected_grpo.method import adapters as ad
    from projected_grpo.loop.grpo import grpo_loss, token_logprobs
    from _gate_common import compiled_graphs
    from projected_grpo.loop.models import compile_layers

    model, tok = wrapped_policy(model_dir, device)
    g = torch.Generator().manual_seed(5)
    batches = []
    for T in (48, 40):
        ids = torch.randint(0, len(tok) - 2, (6, T), generator=g).to(device)
        attn = torch.arange(T, device=device)[None] < torch.tensor([T, T - 5, T - 9, T, T - 2, T - 17], device=device)[:, None]
        mask = attn.clone()
        mask[:, :8] = False  # the prompt
        batches.append((ids, attn, mask, torch.randn(6, generator=g).to(device)))
    out, graphs = {}, compiled_graphs()
    for compiled in (False, True):
        restore = compile_layers(model) if compiled else (lambda: None)
        for j, (ids, attn, mask, adv) in enumerate(batches):
            with ad.capture_per_sample_grads(model):
                logp = token_logprobs(model, ids, attn)
                loss, _ = grpo_loss(logp, logp.detach(), None, adv, mask, float(mask.sum()), 0.2, 0.0)
                loss.backward()
            out[compiled, j] = loss.item(), ad.per_sample_grad_matrix(model)
            model.zero_grad(set_to_none=True)
        restore()
    assert compiled_graphs() > graphs, "compile_layers compiled no graph (eager fallback?)"
    worst, dloss = 0.0, 0.0
    for j in range(len(batches)):
        (le, ge), (lc, gc) = out[False, j], out[True, j]
        dloss = max(dloss, abs(le - lc) / max(abs(le), 1e-6))
        worst = max(worst, max(((gc[k] - ge[k]).norm() / ge[k].norm()).item() for k in ge))
    assert worst < 5e-2 and dloss < 5e-2, f"compiled vs eager: per-rollout grads rel {worst:.3g}, loss rel {dloss:.3g}"
    return f"per-rollout grads rel err {worst:.2g}, loss rel err {dloss:.2g} (bf16, < 5e-2)"


SYNC_PROBE = """
import os, time, torch
from projected_grpo.loop import models
models.set_cuda_sync("cuda")
x = torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16) / 64  # the chain stays finite
for _ in range(3):
    (x @ x).sum().item()
wall, cpu = time.perf_counter(), time.process_time()
for _ in range(200):
    y = x
    for _ in range(20):
        y = x @ y
    y.sum().item()  # the CPU waits here for about 20 matmuls of the GPU
print(time.process_time() - cpu, time.perf_counter() - wall)
"""


def check_cuda_sync() -> str:
    """PGRPO_CUDA_SYNC=blocking (models.set_cuda_sync): while this process waits for the GPU its thread sleeps, so
    its CPU time is a small share of the wait; with spin (the driver's default here) the same wait is CPU time.
    Each mode runs in a fresh interpreter (the flag must be set before the process first uses CUDA). The spin
    measurement is the control: it shows the probe can see a thread that spins."""
    import os  # noqa: PLC0415
    import subprocess  # noqa: PLC0415

    share = {}
    for mode in ("spin", "blocking"):
        env = dict(os.environ, PGRPO_CUDA_SYNC=mode, PYTHONPATH=str(ROOT / "src"))
        r = subprocess.run([sys.executable, "-c", SYNC_PROBE], env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, f"PGRPO_CUDA_SYNC={mode}: probe failed: {r.stderr[-800:]}"
        cpu, wall = map(float, r.stdout.split()[-2:])
        share[mode] = cpu / wall
    assert share["spin"] > 0.7, f"spin used {share['spin']:.0%} of its wait as CPU: the probe saw no spinning"
    assert share["blocking"] < 0.3, f"blocking used {share['blocking']:.0%} of its wait as CPU (spin {share['spin']:.0%})"
    return f"CPU time over wall time while waiting for the GPU: spin {share['spin']:.2f}, blocking {share['blocking']:.2f}"


def check_run(run_dir: Path, steps: int) -> str:
    assert (run_dir / "DONE").exists(), f"{run_dir.name}: no DONE"
    m = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    assert len(m) == steps, f"{run_dir.name}: {len(m)} metric rows, expected {steps}"
    for r in m:
        assert "loss" in r, f"{run_dir.name} step {r['step']}: nothing trained (frac_trained {r['frac_trained']})"
        assert math.isfinite(r["loss"]), f"{run_dir.name} step {r['step']}: loss {r['loss']}"
        assert math.isfinite(r["grad_norm"]), f"{run_dir.name} step {r['step']}: grad_norm {r['grad_norm']}"
    ev = [json.loads(line) for line in (run_dir / "eval.jsonl").read_text().splitlines() if line.strip()]
    assert ev, f"{run_dir.name}: no eval rows"
    extra = {k: round(m[-1][k], 3) for k in ("routed_frac", "cos_in") if k in m[-1]}
    return (f"loss {[round(r['loss'], 4) for r in m]} grad_norm {[round(r['grad_norm'], 3) for r in m]} "
            f"t_train {sum(r['t_train'] for r in m):.1f}s {extra or ''}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arms", default=",".join(ARMS))
    ap.add_argument("--adapters", default="svd,lora")
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--micro-batch", type=int, default=3,
                    help="rollouts per forward-backward pass of every arm's training (0: one pass)")
    ap.add_argument("--keep", default="", help="copy the run folders here (default: a temp folder, deleted)")
    ap.add_argument("--compile", default="off", choices=("off", "on", "auto"),
                    help="train.py --compile of every arm (the route arm also runs once with on)")
    ap.add_argument("--decoder", default="", help="rollout decoder of the arms (default: first that passes the check)")
    ap.add_argument("--sync-only", action="store_true", help="only the PGRPO_CUDA_SYNC check (check_cuda_sync)")
    a = ap.parse_args()
    import torch

    if a.device == "cuda" and not torch.cuda.is_available():
        print("smoke_gpu: CUDA is not available; this smoke needs a GPU (bf16 path). "
              "Use `just smoke` on the CPU.", file=sys.stderr)
        return 2

    arms = [x for x in a.arms.split(",") if x]
    unknown = set(arms) - set(ARMS)
    if unknown:
        print(f"smoke_gpu: --arms: unknown arms {sorted(unknown)} (registry: {', '.join(ARMS)})", file=sys.stderr)
        return 2
    if a.sync_only and a.device != "cuda":
        print("smoke_gpu: --sync-only checks PGRPO_CUDA_SYNC on CUDA; it has nothing to check with --device cpu",
              file=sys.stderr)
        return 2
    arms = A.closure(arms)
    passed, failed = [], []
    t_all = time.time()
    if a.device == "cuda":
        try:
            t0 = time.time()
            msg = check_cuda_sync()
            passed.append("cuda-sync")
            print(f"PASS cuda-sync                     {time.time() - t0:5.1f}s  {msg}", flush=True)
        except Exception:
            failed.append("cuda-sync")
            print("FAIL cuda-sync\n    " + "\n    ".join(traceback.format_exc().splitlines()[-12:]), flush=True)
        if a.sync_only:
            print(f"{len(passed)} passed, {len(failed)} failed")
            return 1 if failed else 0
    with tempfile.TemporaryDirectory() as t:
        t = Path(a.keep) if a.keep else Path(t)
        t.mkdir(parents=True, exist_ok=True)
        model_dir = t / "tiny_qwen3"
        build_tiny_qwen3(model_dir)
        pool = t / "teacher_pool.jsonl"
        n_train = 32
        teacher_pool(pool, n_train)
        if a.device == "cuda":
            print(f"device {torch.cuda.get_device_name(0)}, torch {torch.__version__}", flush=True)
        good = check_decoder(model_dir, a.device)
        want = "graph" if a.device == "cuda" else "eager"  # on CUDA the default decoder (graph mode) must pass
        (passed if want in good and "mismatch" not in good else failed).append("decoder")
        try:
            t0 = time.time()
            msg = check_compile(model_dir, a.device)
            passed.append("compile")
            print(f"PASS compile                       {time.time() - t0:5.1f}s  {msg}", flush=True)
        except Exception:
            failed.append("compile")
            print("FAIL compile\n    " + "\n    ".join(traceback.format_exc().splitlines()[-12:]), flush=True)
        decoder = a.decoder or {"graph": "fast", "eager": "fast-eager"}.get((good or ["hf"])[0], "hf")
        if a.device == "cpu" and not a.decoder:
            decoder = "fast-eager"
        print(f"arms run with --decoder {decoder}", flush=True)
        for adapter in [x for x in a.adapters.split(",") if x]:
            rank = ["--rank", "8"] if adapter == "lora" else []
            vh = {}
            for kind in sorted({A.arm(x).vhack for x in arms} - {"none"}):
                name = f"vhack[{adapter},{kind}]"
                f = A.VHACK_FILES[kind]
                if (f.adapter, f.rank) != ("svd", -1) and f.adapter != adapter:
                    print(f"SKIP {name:28s} extracted for the {f.adapter} adapter only", flush=True)
                    continue
                try:
                    out = t / f"v_{adapter}_{kind}.safetensors"
                    t0 = time.time()
                    r = A.LORA_RANK if adapter == "lora" else -1
                    if f.trusted_k:
                        meta = vhack.extract_trusted_to_file(out, f.pairs, str(model_dir), adapter, r, f.quarantine,
                                                             k=f.trusted_k, device=a.device)
                    else:
                        meta = vhack.extract_to_file(out, f.pairs, str(model_dir), adapter, r, f.quarantine,
                                                     loss=f.loss, device=a.device)
                    assert out.exists(), out
                    vh[kind] = str(out)
                    passed.append(name)
                    print(f"PASS {name:28s} {time.time() - t0:5.1f}s  {meta['n_pairs']} pairs, held-out sign acc "
                          f"{meta.get('heldout_sign_acc')}", flush=True)
                except Exception:
                    failed.append(name)
                    print(f"FAIL {name}\n    " + "\n    ".join(traceback.format_exc().splitlines()[-12:]), flush=True)
            common = ["--model", str(model_dir), "--out-dir", str(t / "runs"), "--steps", str(a.steps),
                      "--prompts-per-step", "4", "--group", "4", "--n-train", str(n_train), "--n-eval", "1", "--eval-samples", "1",
                      "--eval-every", "0", "--max-new-tokens", "128", "--teacher-pool", str(pool), "--n-teacher", "2",
                      "--adapter", adapter, *rank, "--device", a.device, "--decoder", decoder,
                      "--micro-batch", str(a.micro_batch), "--compile", a.compile]
            # every arm with --compile off (each adapter structure compiles anew: minutes per arm), and the route
            # arm again with its layers and decoder compiled
            for arm, more in [(x, []) for x in arms] + ([("route", ["--compile", "on"])] if "route" in arms else []):
                run = f"{arm}_{adapter}" + ("_compiled" if more else "")
                spec = A.arm(arm)
                if spec.intervention == "scorda" and adapter != "svd":
                    print(f"SKIP {run:28s} seeded absorption is built for SVD adapters only", flush=True)
                    continue
                if spec.overrides.get("adapter", adapter) != adapter:
                    print(f"SKIP {run:28s} the arm trains the {spec.overrides['adapter']} adapter only", flush=True)
                    continue
                extra = ["--vhack", vh.get(spec.vhack, "")] if spec.vhack != "none" else []
                if spec.matches:
                    extra += ["--match-run", str(t / "runs" / f"{spec.matches}_{adapter}")]
                if "route_frac" in spec.overrides:
                    extra += ["--route-frac", "0.5"]  # half of the 16 rollouts: both regions nonempty
                t0 = time.time()
                try:
                    run_dir = cli.train(["--arm", arm, "--run", run, *common, *extra, *more])  # the last --compile wins
                    msg = check_run(Path(run_dir), a.steps)
                    passed.append(run)
                    print(f"PASS {run:28s} {time.time() - t0:5.1f}s  {msg}", flush=True)
                except BaseException as e:  # argparse exits with SystemExit
                    if isinstance(e, KeyboardInterrupt):
                        raise
                    failed.append(run)
                    print(f"FAIL {run:28s} {time.time() - t0:5.1f}s\n    "
                          + "\n    ".join(traceback.format_exc().splitlines()[-12:]), flush=True)
        if a.device == "cuda":
            print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB", flush=True)
    print(f"smoke_gpu: {time.time() - t_all:.0f}s on {a.device}; failed: {', '.join(failed) or 'none'}")
    print(f"{len(passed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
