"""one-off: CPU of one fast-eager decode of 64 rows (8 prompts x 8, 48 tokens) with the adapters merged and fused
(a single run's default) and unmerged (what decode(runs=...) does for a packed process), one thread"""
import dataclasses, time, torch
from projected_grpo.loop import models
from projected_grpo.loop.config import RunConfig
from projected_grpo.loop.grpo import adapter_config, load_tasks
from projected_grpo.loop.decoder import decode, DecodeConfig
from projected_grpo.loop.sampling import prompt_ids
from projected_grpo.method import adapters as ad
torch.set_num_threads(1)
m, tok = models.load_policy("organism:cpu", "cpu")
ad.wrap_model(m, adapter_config(dataclasses.asdict(RunConfig())))
with torch.no_grad():
    for p in m.parameters():
        if p.requires_grad: p.add_(0.01 * torch.randn_like(p))  # both blocks non-zero
train, _ = load_tasks(RunConfig())
prompts = [ids for p in train[:8] for ids in [prompt_ids(tok, p)] * 8]
for name, cfg in [("merged+fused", DecodeConfig(mode="eager")), ("unmerged", DecodeConfig(mode="eager", merge=False, fuse=False))] * 2:
    torch.manual_seed(0)
    c = time.process_time()
    for _ in range(5):
        out = decode(m, prompts, 1.0, 48, tok.eos_token_id, tok.pad_token_id, cfg=cfg)
    print(f"{name}: {(time.process_time() - c) / 5:.3f} CPU-s a decode of 64 rows")
