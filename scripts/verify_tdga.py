"""Gate: the TDGA-style trusted-subspace projection (interventions.TrustedProjection; arms tdga-r1, tdga-r5).

1. The trusted-span file, written by scripts/extract_vhack_grad.py (in this process) with the registry's arguments
   for the tdga arms (arms.vhack_extract_args("trusted")), holds per module orthonormal rows whose first r span the
   same subspace as the top-r right singular vectors of the pairs' clean completions' gradients recomputed here
   independently (one plain-autograd backward of each clean completion's mean NLL, read from the deployed block's
   .grad; SVD), r = 1 and 5: max |P_file - P_ref| over modules, P = U^T U. It is refused as a v_hack (its content)
   and by the own-quarantine adapter (its identity).
2. The hook, through Trainer.step (tiny organism, synthetic grades, the shared quarantine the tdga arms train), for
   each arm's intervention as arms.build_intervention builds it: the deployed gradient AdamW receives lies in the span
   (per module |g' - P g'| / |g'| ~ 0) and equals the per-block clipped projection P g of the original gradient g (plain
   autograd of the recorded batch); the logged trusted_share is |P g| / |g| (mean over modules) and below 1 (the
   projection removes something, so skipping it fails the gate); the quarantine block gets no gradient.

Tiers (_gate_common.full_tier): `just smoke` extracts from the 5 organism pairs of style wrong-body and samples 2
prompts x 4 with 8 new tokens; `just smoke-full` extracts from all the organism pairs and samples 4 x 4 with 16.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import torch  # noqa: E402
from jaxtyping import Float  # noqa: E402
from torch import Tensor  # noqa: E402

import _gate_common as sp  # noqa: E402
from projected_grpo.loop.models import load_policy, log_softmax_at  # noqa: E402
from projected_grpo.loop.sampling import collate, prompt_ids  # noqa: E402
from projected_grpo.method import adapters as ad  # noqa: E402
from projected_grpo.method import arms, vhack  # noqa: E402
from projected_grpo.method import interventions as iv  # noqa: E402
from projected_grpo.method.pairs import load_pairs  # noqa: E402

MODEL = "organism:tiny"
FAST_PAIRS = "@style=wrong-body"  # appended to the registry's pair spec in the fast tier: 5 organism pairs
TOL = 1e-5


def extract_file(out: Path) -> str:
    """The registry's trusted-span file for the tiny organism, written to `out`; returns the pair spec used."""
    args = arms.vhack_extract_args("trusted", MODEL, "cpu")  # the gate loads it on the CPU
    args[args.index("--out") + 1] = str(out)
    if not sp.full_tier():
        args[args.index("--pairs") + 1] += FAST_PAIRS
    r = sp.run_script([sys.executable, str(ROOT / "scripts/extract_vhack_grad.py"), *args])
    assert r.returncode == 0, f"extract_vhack_grad.py {' '.join(args)} exited {r.returncode}: {r.stderr[-800:]}"
    return args[args.index("--pairs") + 1]


def wrapped(quarantine: str = "shared"):
    model, tok = load_policy(MODEL, "cpu")
    ad.wrap_model(model, ad.AdapterConfig(kind="svd", quarantine=quarantine))
    return model, tok


def reference_grads(model, tok, pairs) -> dict[str, Float[Tensor, "n p"]]:
    """Per module, each clean completion's deployed-block gradient of its mean NLL, one plain backward each."""
    rows: dict[str, list[Tensor]] = {}
    mods = ad.adapter_modules(model)
    for p in pairs:
        b = collate([prompt_ids(tok, p.problem)], [tok.encode(p.clean, add_special_tokens=False) + [tok.eos_token_id]],
                    tok.pad_token_id)
        model.zero_grad(set_to_none=True)
        lp = log_softmax_at(model(input_ids=b.input_ids).logits.float()[:, :-1], b.input_ids[:, 1:])
        m = b.completion_mask[:, 1:].float()
        (-(lp * m).sum() / m.sum()).backward()
        for n, mod in mods.items():
            rows.setdefault(n, []).append(torch.cat([q.grad.flatten() for q in mod.deployed_parameters()]))
    model.zero_grad(set_to_none=True)
    return {n: torch.stack(r) for n, r in rows.items()}


def projector(U: Float[Tensor, "k p"]) -> Float[Tensor, "p p"]:
    return U.double().T @ U.double()


def check_file(path: Path, spec: str) -> dict:
    """Part 1: the file's span against the independent recomputation, and its refusals."""
    model, tok = wrapped()
    U, md = vhack.load_trusted(path, model)
    assert md["content"] == vhack.TRUSTED and int(md["k"]) == arms.TRUSTED_K, md
    G = reference_grads(model, tok, load_pairs(spec))
    err = {}
    for r in (1, arms.TRUSTED_K):
        err[r] = 0.0
        for n, g in G.items():
            u = U[n][:r]
            gram = float((u @ u.T - torch.eye(r)).abs().max())
            assert gram < 1e-5, f"{n}: the file's first {r} rows are not orthonormal ({gram:.1e})"
            vh = torch.linalg.svd(g.double(), full_matrices=False)[2][:r]
            err[r] = max(err[r], float((projector(u) - vh.T @ vh).abs().max()))
        assert err[r] < 1e-4, f"rank {r}: the file's span is not the clean completions' (max |P_file - P_ref| {err[r]:.1e})"
    refused = []
    for what, load in (("as a v_hack", lambda: vhack.load_vhack(path, model)),
                       ("by the own quarantine", lambda: vhack.load_trusted(path, wrapped("own")[0]))):
        try:
            load()
        except vhack.VhackMismatch:
            refused.append(what)
    assert len(refused) == 2, f"the trusted-span file was read {set(('as a v_hack', 'by the own quarantine')) - set(refused)}"
    return dict(err=err, n=len(G[next(iter(G))]), share=float(md["span_energy_share"]))


def per_module(model, flat: Tensor) -> dict[str, Tensor]:
    mods = ad.adapter_modules(model)
    return dict(zip(mods, flat.split([sum(p.numel() for p in m.deployed_parameters()) for m in mods.values()])))


def check_hook(path: Path, tmp: Path) -> dict:
    """Part 2: for tdga-r1 and tdga-r5, the gradient AdamW receives is the clipped projection of the original."""
    size = {} if sp.full_tier() else dict(prompts_per_step=2, max_new_tokens=8)
    tr = sp.tiny_trainer(tmp, "tdga", iv.NoIntervention(), quarantine="shared", **size)
    snap = sp.Snapshot(tr)
    out, g = {}, None
    for name in ("tdga-r1", "tdga-r5"):
        cfg, _ = arms.configure(dict(arm=name, model=MODEL, vhack=str(path)))
        assert (cfg.adapter, cfg.rank, cfg.quarantine) == ("svd", -1, tr.args.quarantine), name
        obj = arms.build_intervention(cfg)
        assert isinstance(obj, iv.TrustedProjection) and obj.rank == cfg.intervention.trusted_rank, (name, obj)
        rec = sp.step_once(tr, snap, obj)
        if g is None:
            g = per_module(tr.model, sp.masked_grads(tr, snap, rec, torch.ones(rec["adv"].shape[0]))["dep"])
        U = {n: u[: obj.rank] for n, u in vhack.load_trusted(path, tr.model)[0].items()}
        want = per_module(tr.model, sp.clipped(torch.cat([iv.project_onto(g[n], U[n]) for n in g]), tr.args.grad_clip))
        got = per_module(tr.model, rec["grad_dep"])
        resid = max(float((got[n] - iv.project_onto(got[n], U[n])).norm() / got[n].norm()) for n in got)
        assert resid < TOL, f"{name}: the deployed gradient leaves the trusted span (max |g' - P g'| / |g'| {resid:.2e})"
        err = sp.close(torch.cat(list(got.values())), torch.cat(list(want.values())))
        assert err < TOL, f"{name}: the deployed gradient is not the clipped projection of the original (rel err {err:.2e})"
        share = sum(float(iv.project_onto(g[n], U[n]).norm() / g[n].norm()) for n in g) / len(g)
        logged = rec["metrics"]["trusted_share"]
        assert abs(logged - share) < 1e-5, f"{name}: logged trusted_share {logged:.6f}, recomputed {share:.6f}"
        assert share < 0.99, f"{name}: the projection kept {share:.3f} of the gradient (nothing to remove)"
        assert not rec["grad_quar"].any(), f"{name}: the quarantine block got a gradient"
        out[name] = dict(resid=resid, err=err, share=share)
    return out


def main() -> None:
    t0 = time.time()
    with tempfile.TemporaryDirectory() as t:
        path = Path(t) / "trusted.safetensors"
        spec = extract_file(path)
        f = check_file(path, spec)
        h = check_hook(path, Path(t))
    print(f"PASS tdga: trusted span from {f['n']} clean completions ({f['share']:.2f} of their gradients' energy at rank "
          f"{arms.TRUSTED_K}) = the independently recomputed top singular span (max |P_file - P_ref| rank 1 "
          f"{f['err'][1]:.1e}, rank {arms.TRUSTED_K} {f['err'][arms.TRUSTED_K]:.1e}), refused as a v_hack and by the own "
          f"quarantine; through Trainer.step the deployed gradient lies in the span (max residual "
          f"{max(v['resid'] for v in h.values()):.1e}) and equals the clipped projection of the original (max rel err "
          f"{max(v['err'] for v in h.values()):.1e}); kept share r1 {h['tdga-r1']['share']:.3f}, r5 "
          f"{h['tdga-r5']['share']:.3f}; {time.time() - t0:.0f}s ({sp.tier()} tier)")


if __name__ == "__main__":
    sp.run_gate("verify_tdga", main)
