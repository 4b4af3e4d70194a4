"""Seconds of one evaluation-sized decode (48 hinted organism problems x 4 samples, 48 new tokens, the fast decoder,
one torch thread, the pinned CPU organism with an own-quarantine SVD adapter at zero) with each decode-step attention
kernel, three times each in turn, and the tokens' total (the same tokens for every kernel means the same samples). A
one-off measurement kept beside its output (issue 28, session 23):

    PYTHONPATH=<checkout>/src python3 eval_decode.py [--kernels sdpa,matmul,compile]

compile: sdpa with DecodeConfig(compile=True) (its first decode pays the compile).
"""

import argparse
import time

import torch

from projected_grpo.loop import decoder as D
from projected_grpo.loop import sampling
from projected_grpo.loop.models import load_policy
from projected_grpo.method import adapters as ad
from projected_grpo.organism import tasks

ap = argparse.ArgumentParser()
ap.add_argument("--kernels", default="sdpa,matmul")
kernels = ap.parse_args().kernels.split(",")
torch.set_num_threads(1)
m, tok = load_policy("organism:cpu", "cpu")
ad.wrap_model(m, ad.AdapterConfig(quarantine="own"))
ps = [tasks.apply_loophole(p) for p in tasks.generate_split("eval", 48, seed=1)]
pids = [sampling.prompt_ids(tok, p) for p in ps for _ in range(4)]
print(f"{len(pids)} rows, mean prompt {sum(map(len, pids)) / len(pids):.1f} tokens")
for rep in range(3):
    for k in kernels:
        cfg = D.DecodeConfig(mode="eager", attention="matmul" if k == "matmul" else "sdpa", compile=k == "compile")
        torch.manual_seed(1)
        t = time.perf_counter()
        out = D.decode(m, pids, 1.0, 48, tok.eos_token_id, tok.pad_token_id, cfg=cfg)
        print(f"{k} {time.perf_counter() - t:.2f} s, {sum(map(len, out.tokens))} tokens")
