"""Gate: seeded absorption (scorda-absorb, scorda-reverse) on the tiny organism, read off the adapters' forward.

1. The seed axis is the pairs' signed input contrast: per adapted layer, u_in from
   vhack.layer_input_contrast equals the unit mean of (x_hack - x_clean) over completion tokens and pairs,
   recomputed here with hooks on the unwrapped base model's nn.Linear inputs.
2. Net output zero at init: after seed_axis the model's logits equal the base model's, with the
   quarantine kept and ablated.
3. scorda-absorb (axis="quarantine"): the quarantine block's trainable axis piece a_out a_in^T is
   s u_out u_in^T with u_out = unit(W u_in), s = |W u_in| (it spans the contrast axis); the deployed
   block, with random singular-value offsets, has dW u_in = 0 and is Frobenius-orthogonal to u_out u_in^T.
4. scorda-reverse (axis="deployed"): the same piece is a deployed parameter, the quarantine's dW u_in = 0.
5. GRPO steps through Trainer with SeededAbsorb, with labels that raise when opened: both blocks get
   gradients, the axis piece moves, the deployed block still annihilates u_in, deployment ablation
   changes the logits afterwards.
6. Weight decay pulls each seeded tensor (the axis piece, an own-basis LoRA B_hack) toward its seed, so that it
   shrinks the block's update, not the seed (adapters.decay_anchors, grpo.Trainer.decay_to_seed).
7. --axis-lr-scale k scales the axis piece's step by k and leaves every other tensor's step and the clipping as they
   are.

Checks 6 and 7 test the optimizer, not the grader: their trainers grade with _gate_common.synthetic_grades (reward
variance in every group, so step 0 trains), sample 16 tokens, and are seeded with one contrast computed by
vhack.layer_input_contrast (the reference policy's, the same for every trainer of the organism) through
adapters.seed_axis. Fast tier (`just smoke`): check 5 runs 2 GRPO steps (full tier: 4); check 6 runs the axis in the
deployed block at scale 1 and in the quarantine block at scale 0.1 (each block and each scale once; full tier: the
quarantine block at scale 1 too); check 7 runs the axis in the deployed block (full tier: in either block).
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from projected_grpo.method import adapters as ad  # noqa: E402
from projected_grpo.loop import grpo  # noqa: E402
from projected_grpo.method import vhack  # noqa: E402
from projected_grpo.method import interventions as iv  # noqa: E402
from projected_grpo.loop.models import load_policy  # noqa: E402
from projected_grpo.method.pairs import load_pairs  # noqa: E402
from projected_grpo.loop.sampling import collate  # noqa: E402

PAIRS = "data/pairs/hack_pairs.md#organism"
FULL = None  # set in main (full_tier)
IDS = torch.arange(3, 40)[None]


def independent_contrast(pairs) -> dict[str, torch.Tensor]:
    """Unit mean over pairs of (mean completion-token input of hack - of clean) per targeted nn.Linear,
    from forward hooks on the plain base model (no adapter code)."""
    import re

    model, tok = load_policy("organism:tiny", "cpu")
    prompts, comps = vhack.tokenize_pairs(tok, pairs)
    b = collate(prompts, comps, tok.pad_token_id)
    m = b.completion_mask.float()[..., None]
    got = {}
    pat = re.compile(ad.DEFAULT_TARGETS)
    for n, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear) and pat.search(n):
            mod.register_forward_hook(lambda _m, inp, _o, n=n: got.__setitem__(n, (inp[0] * m).sum(1) / m.sum(1)))
    with torch.no_grad():
        model(input_ids=b.input_ids, attention_mask=b.attention_mask.long())
    out = {n: (x[0::2] - x[1::2]).mean(0) for n, x in got.items()}
    return {n: v / v.norm() for n, v in out.items()}


def seeded(axis: str, pairs) -> tuple[torch.nn.Module, dict]:
    model, tok = load_policy("organism:tiny", "cpu")
    ad.wrap_model(model, ad.AdapterConfig(kind="svd", quarantine="own", axis=axis))
    gains = ad.seed_axis(model, vhack.layer_input_contrast(model, tok, pairs, "cpu"))
    return model, gains


@torch.no_grad()
def block_dW(m: ad.AdaptedLinear, deployed: bool, quarantine: bool) -> torch.Tensor:
    """[d_out, d_in] weight change of the adapter with the given blocks on, read off its forward on the basis."""
    X = torch.eye(m.d_in)[None]
    saved = m.deployed_on, m.quarantine_on
    m.deployed_on, m.quarantine_on = deployed, quarantine
    try:
        return (m(X) - m.base(X))[0].T
    finally:
        m.deployed_on, m.quarantine_on = saved


def logits(model, ablate: bool = False) -> torch.Tensor:
    with torch.no_grad(), (ad.deployment_ablation(model) if ablate else contextlib.nullcontext()):
        return model(input_ids=IDS).logits


def cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.flatten() @ b.flatten()) / (a.norm() * b.norm()))


def check_init(pairs, ref: dict[str, torch.Tensor]) -> dict:
    base, _ = load_policy("organism:tiny", "cpu")
    base_logits = logits(base)
    out = dict(zero=0.0, axis_cos=1.0, dep_leak=0.0, frob=0.0, rev_leak=0.0)
    for axis in ("quarantine", "deployed"):
        model, gains = seeded(axis, pairs)
        for ablate in (False, True):
            out["zero"] = max(out["zero"], float((logits(model, ablate) - base_logits).abs().max()))
        gen = torch.Generator().manual_seed(0)
        for n, m in ad.adapter_modules(model).items():
            u = ref[n]
            out["axis_cos"] = min(out["axis_cos"], cos(m.axis_u_in, u))
            wu = m.base.weight @ u
            seed = torch.outer(m.axis_out, m.axis_in).detach()
            assert torch.allclose(seed, torch.outer(wu, u), atol=1e-5 * float(wu.norm())), f"{n}: seed != W u u^T"
            holder = m.deployed_parameters() if axis == "deployed" else m.quarantine_parameters()
            assert {id(m.axis_in), id(m.axis_out)} <= {id(p) for p in holder}, f"{n}: axis piece not in the {axis} block"
            with torch.no_grad():  # random offsets in both blocks' singular pieces
                m.delta_S.copy_(torch.randn(m.r, generator=gen))
                m.delta_S_hack.copy_(torch.randn(m.r, generator=gen))
            other = block_dW(m, True, False) if axis == "quarantine" else block_dW(m, False, True)
            leak = float((other @ u).norm() / other.norm())
            out["dep_leak" if axis == "quarantine" else "rev_leak"] = max(out["dep_leak" if axis == "quarantine"
                                                                            else "rev_leak"], leak)
            out["frob"] = max(out["frob"], abs(cos(other, torch.outer(wu, u))))
        out[f"gain_{axis}"] = sum(gains.values()) / len(gains)
    assert out["axis_cos"] > 1 - 1e-5, f"seed axis differs from the pairs' input contrast (min cos {out['axis_cos']})"
    assert out["zero"] < 1e-5, f"seeded adapter changes the logits at init (max |diff| {out['zero']:.2e})"
    assert out["dep_leak"] < 1e-5, f"deployed block reads the axis: |dW u_in| / |dW| = {out['dep_leak']:.2e}"
    assert out["rev_leak"] < 1e-5, f"reverse: quarantine reads the axis: |dW u_in| / |dW| = {out['rev_leak']:.2e}"
    assert out["frob"] < 1e-5, f"the other block is not Frobenius-orthogonal to u_out u_in^T ({out['frob']:.2e})"
    return out


class RaisingLabels(iv.GroundTruthLabels):
    def open_oracle_reference(self):
        raise AssertionError("seeded absorption opened the ground-truth labels")


class SeededWith(iv.SeededAbsorb):
    """SeededAbsorb with a precomputed contrast (the optimizer checks' trainers): seed_axis as setup does."""

    def __init__(self, u_in: dict[str, torch.Tensor]):
        super().__init__(PAIRS)
        self.u_in = u_in

    def setup(self, model, tok, device: str) -> None:
        self.gains = ad.seed_axis(model, self.u_in)


@contextlib.contextmanager
def synthetic_steps():
    """Trainer.step grades with _gate_common.synthetic_grades and its labels raise when opened."""
    from _gate_common import synthetic_grades

    real = grpo.grade_problems, grpo.GroundTruthLabels
    grpo.grade_problems, grpo.GroundTruthLabels = synthetic_grades, RaisingLabels
    try:
        yield
    finally:
        grpo.grade_problems, grpo.GroundTruthLabels = real


def opt_args(tmp: Path, run: str, **kw):
    """The optimizer checks' run: the tiny fixture, 16 new tokens, own quarantine, seed 0."""
    from _gate_common import tiny_args

    return tiny_args(tmp, run, quarantine="own", seed=0, max_new_tokens=16, **kw)


def check_training(tmp: Path, ref: dict[str, torch.Tensor]) -> dict:
    from _gate_common import tiny_args

    tr = grpo.Trainer(tiny_args(tmp, "scorda", quarantine="own", axis="quarantine", seed=0), iv.SeededAbsorb(PAIRS))
    tr.run_dir.mkdir(parents=True, exist_ok=True)
    mods = ad.adapter_modules(tr.model)
    before = {n: (m.axis_in.detach().clone(), m.axis_out.detach().clone()) for n, m in mods.items()}
    orig, grpo.GroundTruthLabels = grpo.GroundTruthLabels, RaisingLabels
    try:
        rows = [tr.step(s) for s in range(4 if FULL else 2)]
    finally:
        grpo.GroundTruthLabels = orig
    trained = [r for r in rows if r.get("grad_norm", 0) > 0]
    assert trained, "no step trained (no group had reward variance)"
    assert all(r["grad_norm_quarantine"] > 0 for r in trained), "quarantine got no gradient on a trained step"
    moved = max(float((m.axis_out - before[n][1]).abs().max()) for n, m in mods.items())
    assert moved > 0, "the axis piece did not move"
    leak = max(float((block_dW(m, True, False) @ ref[n]).norm() / block_dW(m, True, False).norm().clamp(min=1e-30))
               for n, m in mods.items())
    assert leak < 1e-5, f"after training the deployed block reads the axis ({leak:.2e})"
    gap = float((logits(tr.model) - logits(tr.model, ablate=True)).abs().max())
    assert gap > 0, "deployment ablation is the identity after training"
    return dict(steps=len(trained), moved=moved, leak=leak, gap=gap)


def check_anchors(pairs) -> None:
    """Every trainable adapter tensor that does not start at 0 has a decay anchor equal to its start (svd with the
    seeded axis; LoRA with an own-basis B_hack), and no tensor that starts at 0 has one."""
    for cfg, seed in ((dict(kind="svd", axis="quarantine"), True), (dict(kind="lora", rank=4), False)):
        model, tok = load_policy("organism:tiny", "cpu")
        ad.wrap_model(model, ad.AdapterConfig(quarantine="own", **cfg))
        if seed:
            ad.seed_axis(model, vhack.layer_input_contrast(model, tok, pairs, "cpu"))
        anchors = {id(p): a for p, a in ad.decay_anchors(model)}
        params = ad.deployed_params(model) + ad.quarantine_params(model)
        nonzero = {id(p) for p in params if float(p.abs().max()) > 0}
        assert nonzero and set(anchors) == nonzero, f"{cfg}: anchors {len(anchors)}, tensors not at 0 {len(nonzero)}"
        assert all(torch.equal(p, anchors[id(p)]) for p in params if id(p) in anchors), f"{cfg}: anchor != start"
        assert all(p.data_ptr() != a.data_ptr() for p, a in ad.decay_anchors(model)), f"{cfg}: anchor shares memory"


def check_lora_decay(tmp: Path) -> float:
    """An own-basis LoRA B_hack moved off its seed by d and stepped with a zero gradient (Adam's update is 0) ends at
    seed + d (1 - lr wd): the decay shrinks the displacement, and the seed does not move with the parameter."""
    from _gate_common import tiny_args

    tr = grpo.Trainer(tiny_args(tmp, "lora_decay", adapter="lora", rank=4, quarantine="own", weight_decay=0.3,
                                weight_decay_quarantine=0.7))
    gen = torch.Generator().manual_seed(1)
    mods = ad.adapter_modules(tr.model)
    with torch.no_grad():
        d = {n: 0.1 * torch.randn(m.B_hack.shape, generator=gen) for n, m in mods.items()}
        for n, m in mods.items():
            m.B_hack.add_(d[n])
    for p in ad.deployed_params(tr.model) + ad.quarantine_params(tr.model):
        p.grad = torch.zeros_like(p)
    lr = tr.opt.param_groups[1]["lr"]
    tr.opt.step()
    tr.decay_to_seed()
    worst = 0.0
    for n, m in mods.items():
        want = m.B_hack_seed + d[n] * (1 - lr * 0.7)
        worst = max(worst, float((m.B_hack - want).abs().max() / d[n].abs().max()))
    assert worst < 1e-5, f"own-basis B_hack not decayed toward its seed (rel err {worst:.2e})"
    return worst


def check_decay(tmp: Path, u_in: dict[str, torch.Tensor]) -> float:
    """Weight decay pulls the seeded axis piece toward its seed (its block's update toward 0), not toward 0, in
    either block: two trainers from one start, one with Trainer.decay_to_seed switched off, differ after their first
    trained step by exactly lr * (the axis block's weight decay) * seed in a_in and a_out and nowhere else."""
    cases = (("quarantine", 1.0), ("deployed", 1.0), ("quarantine", 0.1)) if FULL else (("deployed", 1.0),
                                                                                        ("quarantine", 0.1))
    return max(decay_one(tmp, axis, k, u_in) for axis, k in cases)


def decay_one(tmp: Path, axis: str, k: float, u_in: dict[str, torch.Tensor]) -> float:
    wd = dict(quarantine=0.7, deployed=0.3)[axis]  # the axis's own block's decay (different, so a swap shows)
    trs = [grpo.Trainer(opt_args(tmp, f"decay_{axis}{k}_{i}", axis=axis, weight_decay=0.3, weight_decay_quarantine=0.7,
                                 axis_lr_scale=k), SeededWith(u_in)) for i in (0, 1)]
    trs[1].decay_to_seed = lambda run=None: None  # plain AdamW: decay toward 0
    for tr in trs:
        tr.run_dir.mkdir(parents=True, exist_ok=True)
    with synthetic_steps():
        for s in range(4):
            lr = next(g["lr"] for g in trs[0].opt.param_groups if g["name"] == f"{axis} axis")  # k x the block's
            rows = [tr.step(s) for tr in trs]
            if rows[0].get("grad_norm" if axis == "deployed" else "grad_norm_quarantine", 0) > 0:
                break
        else:
            raise AssertionError(f"no step trained the {axis} block")
    a, b = (ad.adapter_modules(tr.model) for tr in trs)
    worst = 0.0
    for n in a:
        for p, seed in (("axis_in", "axis_u_in"), ("axis_out", "axis_c_out")):
            want = lr * wd * getattr(a[n], seed)
            got = getattr(a[n], p) - getattr(b[n], p)
            worst = max(worst, float((got - want).abs().max() / want.abs().max()))
        for p in ("delta_S", "delta_S_hack"):
            assert torch.equal(getattr(a[n], p), getattr(b[n], p)), f"{n}.{p}: decay_to_seed moved an unseeded tensor"
    assert worst < 1e-4, f"{axis}: seeded axis not decayed toward its seed (rel err {worst:.2e})"
    return worst


def check_axis_lr(tmp: Path, u_in: dict[str, torch.Tensor]) -> float:
    """axis_lr_one with the axis in either block (scorda-absorb's quarantine group, scorda-reverse's deployed one)."""
    return max(axis_lr_one(tmp, axis, u_in) for axis in (("quarantine", "deployed") if FULL else ("deployed",)))


def axis_lr_one(tmp: Path, axis: str, u_in: dict[str, torch.Tensor]) -> float:
    """--axis-lr-scale k: the seeded axis piece's first step is k times the unscaled one, and every other tensor's
    step is unchanged; at k = 1 the step equals the one-group-per-block optimizer's bit for bit, with clipping
    binding (so clipping is per block, not per group). Three trainers from one start, no decay."""
    trs = [grpo.Trainer(opt_args(tmp, f"axis_lr_{axis}{i}", axis=axis, weight_decay=0.0, axis_lr_scale=k,
                                 grad_clip=1e-3), SeededWith(u_in))
           for i, k in enumerate((1.0, 0.1, 1.0))]
    two = trs[2]  # the optimizer as it was before the axis had a group: one group per block (clipping binds)
    two.opt = torch.optim.AdamW([dict(params=ad.deployed_params(two.model), weight_decay=0.0, name="deployed"),
                                 dict(params=ad.quarantine_params(two.model), weight_decay=0.0, name="quarantine")],
                                lr=two.args.lr, betas=(0.9, 0.99), eps=two.args.adam_eps)
    two.sched = torch.optim.lr_scheduler.LambdaLR(two.opt, lambda s: min(1.0, (s + 1) / max(1, two.args.warmup)))
    key = "grad_norm" if axis == "deployed" else "grad_norm_quarantine"  # the axis block's logged norm
    for tr in trs:
        tr.run_dir.mkdir(parents=True, exist_ok=True)
    seed = [[p.detach().clone() for p in ad.axis_params(tr.model)] for tr in trs]
    with synthetic_steps():
        for s in range(4):
            rows = [tr.step(s) for tr in trs]
            if rows[0].get(key, 0) > 0:
                break
        else:
            raise AssertionError(f"no step trained the {axis} block")
    moves = [[p.detach() - p0 for p, p0 in zip(ad.axis_params(tr.model), s0)] for tr, s0 in zip(trs[:2], seed)]
    worst = max(float((b - 0.1 * a).abs().max() / a.abs().max()) for a, b in zip(*moves))
    assert max(float(a.abs().max()) for a in moves[0]) > 0, "the axis piece did not move"
    assert worst < 1e-4, f"{axis}: axis step at scale 0.1 is not 0.1 x the unscaled step (rel err {worst:.2e})"
    rest = [[p for p in ad.deployed_params(tr.model) + ad.quarantine_params(tr.model)
             if all(p is not q for q in ad.axis_params(tr.model))] for tr in trs[:2]]
    assert all(torch.equal(a, b) for a, b in zip(*rest)), "the axis lr scale moved a tensor outside the axis"
    assert rows[0][key] > 1e-3, "clipping does not bind"
    same = all(torch.equal(a, b) for a, b in zip(ad.adapter_state_dict(trs[0].model).values(),
                                                 ad.adapter_state_dict(two.model).values()))
    assert same, "at scale 1 the axis group changes the step (clipping per group instead of per block?)"
    return worst


def main() -> None:
    global FULL
    from _gate_common import full_tier, tier

    FULL = full_tier()
    pairs = load_pairs(PAIRS)
    ref = independent_contrast(pairs)
    r = check_init(pairs, ref)
    with tempfile.TemporaryDirectory() as t:
        tr = check_training(Path(t), ref)
    check_anchors(pairs)
    base, tok = load_policy("organism:tiny", "cpu")
    ad.wrap_model(base, ad.AdapterConfig(kind="svd", quarantine="own", axis="quarantine"))
    u_in = vhack.layer_input_contrast(base, tok, pairs, "cpu")
    with tempfile.TemporaryDirectory() as t:
        decay = max(check_decay(Path(t), u_in), check_lora_decay(Path(t)))
        axis_lr = check_axis_lr(Path(t), u_in)
    print(f"PASS scorda ({tier()} tier): seed axis = the pairs' input contrast (min cos {r['axis_cos']:.6f}, {len(ref)} layers, "
          f"mean gain |W u_in| {r['gain_quarantine']:.3f}); logits at init = base (max |diff| {r['zero']:.1e}, kept and "
          f"ablated, both placements); the other block's |dW u_in|/|dW| <= {max(r['dep_leak'], r['rev_leak']):.1e}, "
          f"|cos(dW, u_out u_in^T)| <= {r['frob']:.1e}; {tr['steps']} trained GRPO steps with sealed labels: both "
          f"blocks got gradients, axis piece moved {tr['moved']:.2e}, deployed leak {tr['leak']:.1e}, ablation gap "
          f"{tr['gap']:.2e}; decay anchors = every tensor not starting at 0 (svd axis, LoRA own B_hack); weight decay "
          f"pulls the seeded axis (either block) and an own B_hack toward their seeds (rel err {decay:.1e}); --axis-lr-scale "
          f"0.1 scales the axis step alone (rel err {axis_lr:.1e})")


if __name__ == "__main__":
    main()
