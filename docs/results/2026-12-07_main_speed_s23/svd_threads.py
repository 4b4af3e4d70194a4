"""How many SVD factors (U, S, Vh) of the pinned CPU organism's 28 adapted weights differ in any bit between one and two
torch threads (torch.linalg.svd directly, as svd_top_k did before it fixed one thread). A one-off measurement kept
beside its output (issue 28, session 23):

    PYTHONPATH=<checkout>/src python3 svd_threads.py
"""

import torch

from projected_grpo.loop.models import load_policy

m, _ = load_policy("organism:cpu", "cpu")
ws = [mod.weight for n, mod in m.named_modules() if isinstance(mod, torch.nn.Linear) and "lm_head" not in n]
differ = 0
for w in ws:
    torch.set_num_threads(1)
    a = torch.linalg.svd(w.detach().float(), full_matrices=False)
    torch.set_num_threads(2)
    b = torch.linalg.svd(w.detach().float(), full_matrices=False)
    differ += sum(not torch.equal(x, y) for x, y in zip(a, b))
print(f"{len(ws)} weights, {3 * len(ws)} factors; differing between 1 and 2 threads: {differ}; torch {torch.__version__}")
