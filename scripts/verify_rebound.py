"""Gate: rebound-adv (interventions.ReboundAdvantage) and rebound, Rebound's Advantage Modification in its published
form (interventions.AdvantageModification), on the tiny organism, through Trainer.step.

1. v_act comes from the hand-authored pairs (extract_vact, saved with v_grad as extract_vhack_grad.py does).
2. rebound-adv: on every trained step the advantages the loss receives are A - beta * score, with the score
   recomputed here independently (a loop over rollouts and layers: mean completion-token hidden state, minus the
   mean over the step's trained rollouts, cosine with v_act, mean over layers); (A - A') / score = beta on
   every rollout; the step log carries each trained rollout's score and shaped advantage.
3. rebound (built by arms.build_intervention from the registry arm: alpha 2, the run's group size): the loss
   receives A' = A - 2 * max(z, 0) * |A|, z the same independent score z-scored here within each GRPO group (a loop
   over groups, n - 1 in the std); rollouts at or below their group's average keep A exactly; above it, with A != 0,
   (A - A') / (|A| z) = 2 (multiplicative) and A' < A in either sign; the logged z equals the recomputed one.
4. Oracle-free: the steps run with labels that raise when opened.

Tiers (_gate_common.full_tier): `just smoke-full` runs three steps of each form, `just smoke` one.
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
from projected_grpo.method import arms, vhack  # noqa: E402
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
        raise AssertionError("a rebound arm opened the ground-truth labels")


def group_z(score: torch.Tensor, group: int) -> torch.Tensor:
    """The scores z-scored within each group of `group` consecutive rows, one group at a time."""
    z = torch.zeros_like(score)
    for g0 in range(0, score.shape[0], group):
        s = score[g0:g0 + group]
        mean = sum(s.tolist()) / group
        std = (sum((x - mean) ** 2 for x in s.tolist()) / (group - 1)) ** 0.5
        z[g0:g0 + group] = (s - mean) / std if std > 1e-8 else 0.0
    return z


def run_steps(tr, obj, steps: range, vact: torch.Tensor) -> list[tuple]:
    """Trainer steps with `obj` installed and labels that raise: per trained step (A, A' handed on, independent
    score, logs, the advantages the loss received)."""
    tr.intervention = obj
    obj.setup(tr.model, tr.tok, tr.device)
    seen, losses = [], []
    orig_on, orig_loss = obj.on_advantages, grpo.grpo_loss

    def on_adv(model, ids, attn, mask, adv):
        ind = independent_scores(model, ids, attn, mask, vact)
        out, logd = orig_on(model, ids, attn, mask, adv)
        seen.append((adv.clone(), out.clone(), ind, logd))
        return out, logd

    def loss_spy(logp, old, ref, adv, *rest):
        losses.append(adv.clone())
        return orig_loss(logp, old, ref, adv, *rest)

    obj.on_advantages, grpo.grpo_loss = on_adv, loss_spy
    orig_labels, grpo.GroundTruthLabels = grpo.GroundTruthLabels, RaisingLabels
    try:
        for s in steps:
            tr.step(s)
    finally:
        grpo.GroundTruthLabels, grpo.grpo_loss = orig_labels, orig_loss
    assert seen and len(seen) == len(losses), (len(seen), len(losses))
    for (_, out, _, _), used in zip(seen, losses):
        assert torch.equal(used, out), "the loss did not receive the shaped advantages"
    return [(*x, used) for x, used in zip(seen, losses)]


def check_additive(seen: list[tuple], rows: list[dict]) -> dict:
    err, ratios = 0.0, []
    for adv, out, ind, logd, _ in seen:
        err = max(err, float((out - (adv - BETA * ind)).abs().max()))
        ok = ind.abs() > 1e-3
        ratios += ((adv - out)[ok] / ind[ok]).tolist()
        logged = torch.tensor(logd["rollout"]["rebound_score"])
        assert torch.allclose(logged, ind, atol=1e-5), f"logged scores differ from the recomputed ones: {(logged - ind).abs().max():.2e}"
    assert err < 1e-5, f"shaped advantages differ from A - beta * score (max |diff| {err:.2e})"
    assert ratios and max(abs(r - BETA) for r in ratios) < 1e-3, f"(A - A') / score is not beta: {ratios[:5]}"
    spread = float(torch.cat([s[2] for s in seen]).std())
    assert spread > 1e-3, f"activation scores do not vary across rollouts (std {spread:.1e})"
    logged = [r["rebound_score"] for r in rows if "rebound_score" in r]
    assert len(logged) == sum(len(s[2]) for s in seen), "trained rollouts without a logged rebound_score"
    return dict(err=err, ratio=max(abs(r - BETA) for r in ratios), n=len(ratios), spread=spread)


def check_published(seen: list[tuple], group: int, alpha: float) -> dict:
    """A' = A - alpha * max(z, 0) * |A| with z recomputed here; below or at the average unchanged; multiplicative."""
    err, ratios, kept, lowered = 0.0, [], 0, 0
    for adv, out, ind, logd, _ in seen:
        z = group_z(ind, group)
        logged = torch.tensor(logd["rollout"]["rebound_z"])
        assert torch.allclose(logged, z, atol=1e-4), f"logged z differs from the recomputed one: {(logged - z).abs().max():.2e}"
        err = max(err, float((out - (adv - alpha * z.clamp(min=0) * adv.abs())).abs().max()))
        below = z <= 0
        assert torch.equal(out[below], adv[below]), \
            f"rollouts at or below their group's average score were penalised (max |A' - A| {(out - adv)[below].abs().max():.2e})"
        kept += int(below.sum())
        hit = (z > 1e-3) & (adv.abs() > 1e-3)
        assert (out[hit] < adv[hit]).all(), "an above-average rollout's advantage was not lowered"
        lowered += int(hit.sum())
        ratios += ((adv - out)[hit] / (adv.abs() * z)[hit]).tolist()
    assert err < 1e-5, f"shaped advantages differ from A - {alpha} * max(z, 0) * |A| (max |diff| {err:.2e})"
    assert ratios and max(abs(r - alpha) for r in ratios) < 1e-3, f"(A - A') / (|A| z) is not alpha: {ratios[:5]}"
    assert kept and lowered, f"{kept} rollouts kept, {lowered} penalised: both cases must occur"
    return dict(err=err, ratio=max(abs(r - alpha) for r in ratios), kept=kept, lowered=lowered)


def main() -> None:
    from _gate_common import tiny_args, full_tier, tier

    steps = 3 if full_tier() else 1
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        path = tmp / "v.safetensors"
        vact = make_vhack(path)
        rb = iv.ReboundAdvantage(iv.LazyVhack(str(path)), beta=BETA)
        tr = grpo.Trainer(tiny_args(tmp, "rebound", seed=0, micro_batch=0), rb)  # one pass: one loss call a step
        tr.run_dir.mkdir(parents=True, exist_ok=True)
        assert torch.equal(rb.v_act.cpu(), vact), "rebound-adv's v_act is not the pairs' v_act"
        seen = run_steps(tr, rb, range(steps), vact)
        rows = [r for s in range(steps) for r in logs.read_step(tr.run_dir / f"step_{s:04d}.jsonl.gz") if r["trained"]]
        add = check_additive(seen, rows)
        cfg, _ = arms.configure(dict(arm="rebound", model="organism:tiny", vhack=str(path), group=tr.args.group))
        am = arms.build_intervention(cfg)
        assert isinstance(am, iv.AdvantageModification) and am.alpha == 2.0 and am.group == tr.args.group, vars(am)
        pub = check_published(run_steps(tr, am, range(steps, 2 * steps), vact), am.group, am.alpha)
    print(f"PASS rebound: rebound-adv, {steps} trained steps ({add['n']} rollouts with |score| > 1e-3) with sealed "
          f"labels: the loss got A - {BETA} * score, score recomputed independently (max |diff| {add['err']:.1e}); "
          f"(A - A')/score = {BETA} +- {add['ratio']:.1e}; score std {add['spread']:.3f}. rebound (published form, "
          f"alpha {am.alpha}, groups of {am.group}), {steps} steps: the loss got A - alpha max(z, 0) |A| (max |diff| "
          f"{pub['err']:.1e}); {pub['kept']} rollouts at or below their group's average kept A exactly, {pub['lowered']} "
          f"above it lowered with (A - A')/(|A| z) = alpha +- {pub['ratio']:.1e} ({tier()} tier)")


if __name__ == "__main__":
    from _gate_common import run_gate

    run_gate("verify_rebound", main)
