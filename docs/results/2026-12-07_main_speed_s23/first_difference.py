"""Where two `just main` checkouts' runs first part (issue 28, session 23): the largest difference of each v_hack file's
tensors, and for each run the first step whose metrics differ (timings aside) with its first differing field. A one-off
script kept beside its output:

    python3 first_difference.py <checkout A> <checkout B>
"""

import glob
import json
import os
import sys

import torch
from safetensors import safe_open


def tensors(path):
    with safe_open(path, "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


a, b = sys.argv[1:3]
for name in sorted(os.listdir(f"{a}/out/vhack")):
    ta, tb = tensors(f"{a}/out/vhack/{name}"), tensors(f"{b}/out/vhack/{name}")
    print(f"{name}: largest |difference| {max((ta[k] - tb[k]).abs().max().item() for k in ta):.2e}")
for run in sorted(os.path.basename(p) for p in glob.glob(f"{a}/out/runs/*_s*")):
    rows = [[json.loads(x) for x in open(f"{c}/out/runs/{run}/metrics.jsonl")] for c in (a, b)]
    for ra, rb in zip(*rows):
        diff = [(k, ra[k], rb.get(k)) for k in ra if not k.startswith("t_") and ra[k] != rb.get(k) and ra[k] == ra[k]]
        if diff:
            print(f"{run}: first differs at step {ra['step']}: {diff[0][0]} {diff[0][1]!r} vs {diff[0][2]!r}")
            break
    else:
        print(f"{run}: metrics identical at every step")
