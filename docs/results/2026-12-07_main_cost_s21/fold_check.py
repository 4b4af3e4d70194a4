"""Does fold_prototype.py compute what the library computes? For each adapter structure of arms.MAIN (vanilla and erase:
shared quarantine; route and route-subset: own quarantine; scorda-absorb: own quarantine with the axis piece): the
pinned CPU organism wrapped with it, every trainable tensor set to small random values (seeded), one batch of 4
sequences of 40 random tokens; the summed log-probabilities, their gradient on every trainable tensor and, for the
structures without the axis piece, each sequence's gradient (adapters.capture_per_sample_grads, as erase and the
routing arms capture), by the library (branch or fold, as AdaptedLinear decides) and with fold_prototype.py loaded.
Prints the largest relative difference of each (against the largest entry). One-off check kept beside its output
(fold_check.txt); asserts nothing.

    PGRPO_THREADS=1 python3 docs/results/2026-12-07_main_cost_s21/fold_check.py     # from the repository root
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import os

os.environ.setdefault("PGRPO_THREADS", "1")

import torch  # noqa: E402

from projected_grpo.loop import cli, grpo  # noqa: E402
from projected_grpo.loop.models import load_policy  # noqa: E402
from projected_grpo.method import adapters as ad  # noqa: E402
from projected_grpo.method import arms  # noqa: E402

LIBRARY_FORWARD = ad.AdaptedLinear.forward


def load_prototype() -> None:
    spec = importlib.util.spec_from_file_location("fold_prototype", os.path.join(os.path.dirname(__file__),
                                                                                "fold_prototype.py"))
    spec.loader.exec_module(importlib.util.module_from_spec(spec))


def value_and_grads(model, ids: torch.Tensor, capture: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The summed log-probabilities and the gradients: every trainable tensor's, and with capture each module's
    per-sequence deployed and quarantine gradients."""
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    for p in params.values():
        p.grad = None
    attn = torch.ones_like(ids, dtype=torch.bool)
    with ad.capture_per_sample_grads(model) if capture else contextlib.nullcontext() as mods:
        total = grpo.token_logprobs(model, ids, attn).sum()
        total.backward()
        grads = {n: p.grad.detach().clone() for n, p in params.items() if p.grad is not None}
        if capture:
            for name, m in mods.items():
                for block, g in m.per_sample_grads().items():
                    grads[f"{name} per-sequence {block}"] = g.detach().clone()
    return total.detach(), grads


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def main() -> None:
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    proto = ad.AdaptedLinear.forward
    for arm in ("vanilla", "route", "scorda-absorb"):  # erase's adapter is vanilla's, route-subset's route's
        cfg, _ = cli.run_config(["--arm", arm, "--seed", "0", "--run", "fold_check", "--out-dir", "out/fold_check"],
                                "fold_check.py")
        capture = cfg.axis == "none"
        model, tok = load_policy(cfg.model, "cpu")
        ad.wrap_model(model, grpo.adapter_config(dataclasses.asdict(cfg)))
        with torch.no_grad():
            for p in model.parameters():
                if p.requires_grad:
                    p.add_(0.05 * torch.randn(p.shape, generator=gen))
        ids = torch.randint(4, model.config.vocab_size, (4, 40), generator=gen)
        ad.AdaptedLinear.forward = LIBRARY_FORWARD
        v_lib, g_lib = value_and_grads(model, ids, capture)
        ad.AdaptedLinear.forward = proto
        v_pro, g_pro = value_and_grads(model, ids, capture)
        assert g_lib.keys() == g_pro.keys(), f"{arm}: gradients on other tensors"
        worst = max((rel(g_pro[n], g_lib[n]), n) for n in g_lib)
        print(f"{arm:14s} value rel diff {rel(v_pro, v_lib):.1e}; gradient worst rel diff {worst[0]:.1e} ({worst[1]}) "
              f"over {len(g_lib)} gradients{' (per-sequence ones included)' if capture else ''}")


if __name__ == "__main__":
    load_prototype()
    main()
