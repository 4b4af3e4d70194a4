import sys, tempfile, torch
from pathlib import Path
sys.path[:0] = ["src", "scripts"]
import smoke_gpu as s
from projected_grpo import adapters as ad
from projected_grpo.decoder import DecodeConfig, decode
from projected_grpo.grpo import token_logprobs
from projected_grpo.models import load_policy
from projected_grpo.organism.build import build, preset
from projected_grpo.sampling import collate
build(preset("tiny"), n_per_cell=0)
d = Path(tempfile.mkdtemp()); s.build_tiny_qwen3(d)
model, tok = load_policy(str(d), "cuda")
ad.wrap_model(model, ad.AdapterConfig(kind="svd", rank=8, quarantine="own", cache_dir=None))
with torch.no_grad():
    for p in ad.deployed_params(model) + ad.quarantine_params(model):
        p.normal_(0, 0.5)
g = torch.Generator().manual_seed(0)
distinct = [torch.randint(0, len(tok) - 2, (int(n),), generator=g).tolist() for n in torch.randint(8, 40, (8,), generator=g)]
ps = [list(p) for p in distinct for _ in range(3)]
outs = {}
for att in ("sdpa", "efficient"):
    for mb in (0, 6):
        try:
            torch.manual_seed(1)
            o = decode(model, ps, 1.0, 64, tok.eos_token_id, tok.pad_token_id, cfg=DecodeConfig(mode="graph", logprobs=True, bucket=16, attention=att, max_batch=mb))
            b = collate(ps, o.tokens, tok.pad_token_id)
            with torch.no_grad():
                lp = token_logprobs(model, b.input_ids.cuda(), b.attention_mask.cuda()).float().cpu()
            err = max((lp[i, len(p):len(p) + len(t)] - torch.tensor(l)).abs().max().item() for i, (p, t, l) in enumerate(zip(ps, o.tokens, o.logprobs)) if t)
            outs[att, mb] = o.tokens
            print(f"{att} max_batch {mb}: group {o.group} waves {o.waves} log-prob err {err:.4g}", flush=True)
        except Exception as e:
            print(f"{att} max_batch {mb}: FAILED {type(e).__name__}: {str(e)[:600]}", flush=True)
for mb in (0, 6):
    if ("sdpa", mb) in outs and ("efficient", mb) in outs:
        same = sum(a == b for a, b in zip(outs["sdpa", mb], outs["efficient", mb]))
        print(f"max_batch {mb}: rows identical sdpa(cudnn) vs efficient {same}/{len(ps)}")
