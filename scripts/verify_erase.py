"""Gate: erase inside the real Trainer removes exactly the hack-ward component along v from the named
tensor, with the right sign, for the gradient and the update targets.

v_hack is oriented like the gradient of the hack completion's NLL, so a gradient's hack-ward part is
<g, v> > 0 and a parameter step's (delta ~ -lr g) is <delta, v> < 0. One GRPO step of the tiny
organism (grading stubbed with fixed rewards, no clipping) per case, all from the same parameters and
rollouts, through grpo.Trainer.step and grpo.grpo_loss. v is built per module from that step's own
quantities, pointing hack-ward in half the modules and away in the other half:

    grad, one-sided     the deployed gradient handed to AdamW: in modules where <g, v> > 0 it is
                        g - <g, v> v (no v component left); elsewhere unchanged
    grad, two-sided     the deployed gradient handed to AdamW has <g, v> = 0 in every module
    update, one-sided   the realised deployed step delta = theta_after - theta_before: in modules where
                        AdamW's step had <delta, v> < 0 it is delta - <delta, v> v; elsewhere unchanged
    update, two-sided   the realised step has <delta, v> = 0 in every module

The reference gradient comes from plain autograd on the recorded batch, the reference step from a
vanilla Trainer step; the logged step_cos equals the realised steps' cosine with v.

Tiers (_gate_common.full_tier): `just smoke-full` samples 4 prompts x 4 with 16 new tokens per step, `just smoke`
2 prompts x 4 with 8 (the same five steps and checks).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import torch  # noqa: E402

import _gate_common as sp  # noqa: E402
from projected_grpo.method import adapters as ad  # noqa: E402
from projected_grpo.method import interventions as iv  # noqa: E402

TOL = 1e-5


def per_module(model, flat: torch.Tensor) -> dict[str, torch.Tensor]:
    mods = ad.adapter_modules(model)
    sizes = [sum(p.numel() for p in m.deployed_parameters()) for m in mods.values()]
    return dict(zip(mods, flat.split(sizes)))


def mixed_v(ref: dict[str, torch.Tensor], seed: int) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """Per module, a unit v at about 45 degrees to ref: +ref in even modules, -ref in odd ones."""
    gen = torch.Generator().manual_seed(seed)
    V, sign = {}, {}
    for i, (n, r) in enumerate(ref.items()):
        sign[n] = 1.0 if i % 2 == 0 else -1.0
        noise = torch.randn(r.shape, generator=gen)
        noise = noise - (noise @ r) / (r @ r) * r
        v = sign[n] * r / r.norm() + noise / noise.norm()
        V[n] = (v / v.norm())[None]
    return V, sign


def expect(x: torch.Tensor, v: torch.Tensor, remove: bool) -> torch.Tensor:
    return x - (x @ v) * v if remove else x


def check(name: str, got: dict, ref: dict, V: dict, remove: dict) -> float:
    """got == ref with its v component removed exactly where `remove` says; returns the max rel error."""
    worst = 0.0
    for n in ref:
        v = V[n][0]
        want = expect(ref[n], v, remove[n])
        e = sp.close(got[n], want)
        assert e < TOL, f"{name} {n}: differs from the intended projection (rel err {e:.2e}, removed={remove[n]})"
        if remove[n]:
            c = float(got[n] @ v) / float(got[n].norm())
            assert abs(c) < 1e-5, f"{name} {n}: v component left after projection (cos {c:.2e})"
        worst = max(worst, e)
    return worst


def realised_cos(model, rec: dict, V: dict) -> float:
    d = per_module(model, rec["dep_after"] - rec["dep_before"])
    return sum(float(iv.cosine(d[n], V[n][0])) for n in d) / len(d)


def main() -> None:
    t0 = time.time()
    with tempfile.TemporaryDirectory() as t:
        size = {} if sp.full_tier() else dict(prompts_per_step=2, max_new_tokens=8)
        tr = sp.tiny_trainer(Path(t), "erase", iv.NoIntervention(), grad_clip=0.0, quarantine="shared", **size)
        snap = sp.Snapshot(tr)
        van = sp.step_once(tr, snap, iv.NoIntervention())
        b = van["adv"].shape[0]
        g_ref = per_module(tr.model, sp.masked_grads(tr, snap, van, torch.ones(b))["dep"])
        d_ref = per_module(tr.model, van["dep_after"] - van["dep_before"])
        e_van = sp.close(torch.cat(list(per_module(tr.model, van["grad_dep"]).values())), torch.cat(list(g_ref.values())))
        assert e_van < TOL, f"vanilla's gradient differs from plain autograd (rel err {e_van:.2e})"
        errs, fired = {}, {}

        # gradient target: v along +g (hack-ward) in even modules, along -g in odd ones
        V, sign = mixed_v(g_ref, 1)
        for one_sided in (True, False):
            rec = sp.step_once(tr, snap, iv.Erase(V, one_sided=one_sided, target="grad"))
            remove = {n: (sign[n] > 0 or not one_sided) for n in V}
            name = f"grad {'one' if one_sided else 'two'}-sided"
            errs[name] = check(name, per_module(tr.model, rec["grad_dep"]), g_ref, V, remove)
            fired[name] = rec["metrics"]["frac_fired"]
            assert abs(rec["metrics"]["step_cos"] - realised_cos(tr.model, rec, V)) < 1e-6, name

        # update target: v along -delta (AdamW's step moves hack-ward) in even modules, +delta in odd ones
        V, sign = mixed_v({n: -d for n, d in d_ref.items()}, 2)
        for one_sided in (True, False):
            rec = sp.step_once(tr, snap, iv.Erase(V, one_sided=one_sided, target="update"))
            remove = {n: (sign[n] > 0 or not one_sided) for n in V}
            name = f"update {'one' if one_sided else 'two'}-sided"
            errs[name] = check(name, per_module(tr.model, rec["dep_after"] - rec["dep_before"]), d_ref, V, remove)
            m = rec["metrics"]
            fired[name] = m["frac_fired"]
            assert abs(m["step_cos"] - realised_cos(tr.model, rec, V)) < 1e-6, name
            if one_sided:
                assert m["step_hackward"] == 0 and m["step_cos_pre"] < m["step_cos"], (name, m)
        n_mod = len(V)
    assert abs(fired["grad one-sided"] - 0.5) < 1e-9 and abs(fired["update one-sided"] - 0.5) < 1e-9, fired
    assert fired["grad two-sided"] == 1.0 and fired["update two-sided"] == 1.0, fired
    print(f"PASS erase: through Trainer.step on the tiny organism ({n_mod} modules, v hack-ward in half of them): "
          f"grad target removes <g,v> > 0 from the gradient AdamW receives (fired on {fired['grad one-sided']:.2f} of "
          f"modules one-sided, all two-sided), update target removes <delta,v> < 0 from the realised parameter step "
          f"(fired on {fired['update one-sided']:.2f}); max rel err {max(errs.values()):.1e}; logged step_cos exact; "
          f"{b} rollouts a step, {time.time() - t0:.0f}s ({sp.tier()} tier)")


if __name__ == "__main__":
    # the references are per-rollout gradients (the capture's branch forward); the trainer's own forward would fold the
    # adapter into one Linear, whose rounding AdamW's first step magnifies on near-zero coordinates (3.8e-5 seen):
    # the fold is checked against the branch in verify_grpo
    with ad.folding(False):
        sp.run_gate("verify_erase", main)
