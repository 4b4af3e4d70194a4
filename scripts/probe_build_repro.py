"""Does the organism's pretraining give the same weights on two kinds of machine? The first K optimizer steps
of a preset's pretraining, under whatever numerics environment this process has (MKL_CBWR, ATEN_CPU_CAPABILITY,
threads, dtype), with the weights' hash after each of a few checkpoints and the corpus and tokenizer hashes.

    PGRPO_THREADS=1 python scripts/probe_build_repro.py --size cpu --seed 1 --steps 40
    MKL_CBWR=COMPATIBLE ATEN_CPU_CAPABILITY=default PGRPO_THREADS=1 python scripts/probe_build_repro.py --steps 40
    python scripts/probe_build_repro.py --dtype float64 --steps 40

Run it on each machine and compare the printed JSON lines: equal hashes mean bitwise-equal weights at that step.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import time

import torch

from projected_grpo.loop import models
from projected_grpo.organism import build as B
from projected_grpo.organism import pinned


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="cpu", choices=list(B.PRESETS))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--steps", type=int, default=40, help="pretraining steps to run (of the preset's schedule)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    a = ap.parse_args()
    models.set_threads()
    torch.set_default_dtype(getattr(torch, a.dtype))
    cfg = B.preset(a.size, seed=a.seed)
    docs = B.corpus(cfg)
    tok = B.train_tokenizer(cfg, [q["prompt"][0]["content"] + q["prompt"][1]["content"] + r for q, r in docs])
    data = B.tokenize_docs(tok, docs)
    model = B.make_model(cfg, tok)
    init = pinned.tensors_sha256(model.state_dict())
    t = time.time()
    B.pretrain(dataclasses.replace(cfg, steps=a.steps), model, tok, data, "cpu")
    row = dict(size=a.size, seed=a.seed, steps=a.steps, dtype=a.dtype, cpu=models.cpu_model(), torch=torch.__version__,
               threads=torch.get_num_threads(), env={k: os.environ.get(k, "") for k in ("MKL_CBWR", "ATEN_CPU_CAPABILITY")},
               corpus=hashlib.sha256(json.dumps(docs, sort_keys=True).encode()).hexdigest()[:16],
               tokenizer=hashlib.sha256(tok.backend_tokenizer.to_str().encode()).hexdigest()[:16],
               init=init[:16], weights=pinned.tensors_sha256(model.state_dict())[:16],
               abs_sum=float(sum(p.double().abs().sum() for p in model.parameters())), seconds=round(time.time() - t, 1))
    print(json.dumps(row))


if __name__ == "__main__":
    main()
