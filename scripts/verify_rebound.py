"""Gate: rebound-adv (interventions.ReboundAdvantage) on the tiny organism, through Trainer.step.

1. v_act comes from the hand-authored pairs (extract_vact, saved with v_grad as extract_vhack_grad.py does).
2. On every trained step the advantages the loss receives are A - beta * score, with the score recomputed
   here independently (a loop over rollouts and layers: mean completion-token hidden state, minus the
   mean over the step's trained rollouts, cosine with v_act, mean over layers); (A - A') / score = beta on
   every rollout; the step log carries each trained rollout's score and shaped advantage.
3. Oracle-free: the steps run with labels that raise when opened.

Tiers (_gate_common.full_tier): `just smoke-full` runs three steps, `just smoke` one.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from projected_grpo.method import adapters as ad  # noqa: E402
from projected_grpo.loop import grpo, logs  # noqa: E402
from projected_grpo.method import vhack  # noqa: E402
from projected_grpo.method import interventions as iv  # noqa: E402
from projected_grpo.loop.models import load_policy  # noqa: E402
from projected_grpo.method.pairs import load_pairs  # noqa: E402

BETA = 2.0


def make_vhack(path: Path) -> torch.Tensor:
    model, tok = load_policy("organism:tiny", "cpu")
    ad.wrap_model(model, ad.AdapterConfig(kind="svd"))
    pairs = load_pairs("data/pairs/hack_pairs.md#organism")
    V, _ = vhack.extract(model, tok, pairs[:6], device="cpu", heldout_every=0)
    vact = vhack.extract_vact(model, tok, pairs, device="cpu")
    vhack.save_vhack(path, V, model, {}, vact)
    return vact


@torch.no_grad()
def independent_scores(model, ids, attn, mask, v_act: torch.Tensor) -> torch.Tensor:
    hs = model(input_ids=ids, attention_mask=attn.long(), output_hidden_states=True).hidden_states[1:]
    b, L = ids.shape[0], len(hs)
    means = torch.zeros(L, b, hs[0].shape[-1])
    for layer in range(L):
        for i in range(b):
            pos = mask[i].nonzero().flatten()
            means[layer, i] = hs[layer][i, pos].float().mean(0)
    score = torch.zeros(b)
    for layer in range(L):
        c = means[layer] - means[layer].mean(0)
        v = v_act[layer]
        score += torch.nn.functional.cosine_similarity(c, v[None].expand_as(c), dim=1, eps=1e-30)
    return score / L


class RaisingLabels(iv.GroundTruthLabels):
    def open_oracle_reference(self):
        raise AssertionError("rebound-adv opened the ground-truth labels")


def main() -> None:
    from _gate_common import tiny_args, full_tier, tier

    steps = 3 if full_tier() else 1
    seen, losses = [], []
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        vact = make_vhack(tmp / "v.safetensors")
        rb = iv.ReboundAdvantage(iv.LazyVhack(str(tmp / "v.safetensors")), beta=BETA)
        tr = grpo.Trainer(tiny_args(tmp, "rebound", seed=0), rb)
        tr.run_dir.mkdir(parents=True, exist_ok=True)
        assert torch.equal(rb.v_act.cpu(), vact), "rebound-adv's v_act is not the pairs' v_act"
        orig_on, orig_loss = rb.on_advantages, grpo.grpo_loss

        def on_adv(model, ids, attn, mask, adv):
            ind = independent_scores(model, ids, attn, mask, vact)
            out, logd = orig_on(model, ids, attn, mask, adv)
            seen.append((adv.clone(), out.clone(), ind, logd))
            return out, logd

        def loss_spy(logp, old, ref, adv, *rest):
            losses.append(adv.clone())
            return orig_loss(logp, old, ref, adv, *rest)

        rb.on_advantages, grpo.grpo_loss = on_adv, loss_spy
        orig_labels, grpo.GroundTruthLabels = grpo.GroundTruthLabels, RaisingLabels
        try:
            for s in range(steps):
                tr.step(s)
        finally:
            grpo.GroundTruthLabels, grpo.grpo_loss = orig_labels, orig_loss
        rows = [r for s in range(steps) for r in logs.read_step(tr.run_dir / f"step_{s:04d}.jsonl.gz") if r["trained"]]
    assert seen and len(seen) == len(losses), (len(seen), len(losses))
    err, ratios = 0.0, []
    for (adv, out, ind, logd), used in zip(seen, losses):
        assert torch.equal(used, out), "the loss did not receive the shaped advantages"
        err = max(err, float((out - (adv - BETA * ind)).abs().max()))
        ok = ind.abs() > 1e-3
        ratios += ((adv - out)[ok] / ind[ok]).tolist()
        logged = torch.tensor(logd["rollout"]["rebound_score"])
        assert torch.allclose(logged, ind, atol=1e-5), f"logged scores differ from the recomputed ones: {(logged - ind).abs().max():.2e}"
    assert err < 1e-5, f"shaped advantages differ from A - beta * score (max |diff| {err:.2e})"
    assert ratios and max(abs(r - BETA) for r in ratios) < 1e-3, f"(A - A') / score is not beta: {ratios[:5]}"
    spread = float(torch.cat([s[2] for s in seen]).std())
    assert spread > 1e-3, f"activation scores do not vary across rollouts (std {spread:.1e})"
    logged = [r["rebound_score"] for r in rows]
    assert len(logged) == sum(len(s[2]) for s in seen), "trained rollouts without a logged rebound_score"
    print(f"PASS rebound: {len(seen)} trained steps ({len(logged)} rollouts) with sealed labels; the loss got "
          f"A - {BETA} * score, score recomputed independently (max |diff| {err:.1e}); (A - A')/score = "
          f"{BETA} +- {max(abs(r - BETA) for r in ratios):.1e} on {len(ratios)} rollouts; score std {spread:.3f} ({tier()} tier)")


if __name__ == "__main__":
    from _gate_common import run_gate

    run_gate("verify_rebound", main)
