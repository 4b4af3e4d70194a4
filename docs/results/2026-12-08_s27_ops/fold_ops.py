"""one-off (session 27): aten operations of one folded batched forward of an adapted layer (svd shared and own, 16 -> 12,
float64) with 2, 4 and 6 runs, every run with rows; run with the adapters under test on PYTHONPATH."""
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from projected_grpo.method import adapters as ad  # noqa: E402


def adapted_layer(kind: str, quarantine: str, axis: str, runs: int) -> torch.nn.Module:
    """As verify_batched_runs.adapted_layer (at b74a43d), here so that older commits run this too."""
    g = torch.Generator().manual_seed(3)
    model = torch.nn.ModuleDict({"proj": torch.nn.Linear(16, 12, dtype=torch.float64)})
    with torch.no_grad():
        model.proj.weight.normal_(0, 0.3, generator=g)
    ad.wrap_model(model, ad.AdapterConfig(kind=kind, rank=4, quarantine=quarantine, axis=axis, targets="proj",
                                          cache_dir=None))
    ad.add_runs(model, runs)
    with torch.no_grad():
        for p in model.proj.parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


class Count(TorchDispatchMode):  # here, not models.OpCounter, so that older commits (without it) run this too
    n = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        Count.n += 1
        return func(*args, **(kwargs or {}))


for quarantine in ("shared", "own"):
    counts = []
    for runs in (2, 4, 6):
        model = adapted_layer("svd", quarantine, "none", runs)
        x = torch.randn(2 * runs, 5, 16, dtype=torch.float64)
        assert model.proj._fold(x), "this forward does not fold"
        Count.n = 0
        with ad.folding(True), ad.batched_rows(model, torch.arange(runs).repeat_interleave(2)), Count():
            model.proj(x)
        counts.append(Count.n)
    print(f"svd {quarantine}: folded batched forward of 2/4/6 runs: {'/'.join(map(str, counts))} aten operations")
