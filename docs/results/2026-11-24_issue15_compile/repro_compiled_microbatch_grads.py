"""Repro (CPU, ~1 min): one GRPO step of the tiny organism with the decoder layers compiled
(models.compile_layers) and micro-batches of 3; the deployed block's gradient norm after the
micro-batched backward, then eager, then compiled again, then compiled in one pass.
Seen 2026-11-24 (session 7) before the fix: compiled micro-batched 0.03289, eager 0.01776, compiled one
pass 0.01776 (the shared quarantine's two blocks got one gradient buffer from the compiled backward, and later
micro-batches added into it twice). With models.compile_layers' own_grad hook all three agree.

    python3 docs/results/2026-11-24_issue15_compile/repro_compiled_microbatch_grads.py
"""
import torch, sys, tempfile
from pathlib import Path
ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "src")); sys.path.insert(0, str(ROOT / "scripts"))
from verify_grpo import tiny_args
from projected_grpo import grpo, adapters as ad
from projected_grpo.interventions import NoIntervention
tmp = Path(tempfile.mkdtemp())
torch.manual_seed(0)
tr = grpo.Trainer(tiny_args(tmp, "t", decoder="fast-eager", micro_batch=3), NoIntervention())
from projected_grpo.models import compile_layers
compile_layers(tr.model)
tr.run_dir.mkdir(parents=True, exist_ok=True)
orig = grpo.loss_backward
def gn(m): return torch.cat([p.grad.flatten() for p in ad.deployed_params(m) if p.grad is not None]).norm().item()
def spy(model, parts, ids, attn, mask, adv, *rest):
    out = orig(model, parts, ids, attn, mask, adv, *rest)
    g_c = gn(model)
    layers = model.model.layers
    saved = [l._compiled_call_impl for l in layers]
    for variant in ("eager", "compiled-again", "compiled-one-pass"):
        model.zero_grad(set_to_none=True)
        if variant == "eager":
            for l in layers: l._compiled_call_impl = None
        else:
            for l, s in zip(layers, saved): l._compiled_call_impl = s
        ps = parts if variant != "compiled-one-pass" else [slice(0, ids.shape[0])]
        orig(model, ps, ids, attn, mask, adv, *rest)
        print(variant, gn(model), "first compiled", g_c, [ (p.start, p.stop) for p in ps], ids.shape, flush=True)
    return out
grpo.loss_backward = spy
tr.step(0)
