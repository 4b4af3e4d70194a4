"""Gate: routing inside the real Trainer routes exactly the intended rollouts, and each block's
optimizer step is the step on its own rollouts' gradient alone.

One GRPO step of the tiny organism (own-basis quarantine, grading stubbed with fixed rewards) per
case, all from the same parameters and rollouts, through grpo.Trainer.step and grpo.grpo_loss:

    top fraction     gate=grad, route_frac 0.25: routed = the top round(0.25 b) routing scores
    thresholds       gate=grad, (t_absorb, t_route) at score quantiles: keep / absorb / route by pin()
    matched fraction gate=random, match_frac 0.5: routed = top round(0.5 b) random-direction scores
    subset           gate=subset, match_frac 0.25: round(0.25 b) routed
    subset-signed    gate=subset-signed, match_frac 0.5, positive share 1 and 0: all routed positive / none
    subset-cells     gate=subset-cells (route-subset-matched), the routed counts per (advantage sign, length tercile)
                     cell of a route step and of the shortest third, read back from their step logs by
                     arms.matched_cells: the same counts per cell (terciles recomputed here, by rank of length)

For every case the routing scores logged per rollout equal the cosine with v of that rollout's own
gradient (its own backward through grpo_loss); the deployed block's gradient handed to the optimizer
equals the plain-autograd gradient of the loss with only keep and absorb rollouts (clipped on its
own), the quarantine's that of absorb and route rollouts; the deployed parameters after the step
equal one AdamW step on that gradient (compared on the recorded gradient: AdamW's first step divides
by |g| + eps, which amplifies float error on near-zero coordinates); the logged diagnostics (n_routed, positive-advantage
shares, advantage sums) agree with the rollouts. Clipping binds (grad_clip below both blocks' norms),
so a clip over both blocks together would be caught.

The independent gradients: each rollout's own backward on its row alone (both blocks), once; at the first iteration
the loss is linear in the advantages, so the gradient of the loss with only some rollouts is the sum of theirs. The
top-fraction case (every case in the full tier, `just smoke-full`) also checks that sum against plain autograd of the
loss with the other rollouts' advantages zeroed. Every case steps from the same snapshot and samples the same
rollouts (asserted).
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
from _gate_common import full_tier, tier  # noqa: E402
from projected_grpo.method import adapters as ad  # noqa: E402
from projected_grpo.method import interventions as iv  # noqa: E402

TOL = 1e-4
CLIP = 1e-3
FULL = full_tier()


def random_v(model, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {n: torch.randn(1, sum(p.numel() for p in m.deployed_parameters()), generator=gen)
            for n, m in ad.adapter_modules(model).items()}


def cosines(model, G: torch.Tensor, V: dict[str, torch.Tensor]) -> torch.Tensor:
    """Cosine of each row of G (deployed parameters in adapter order) with v over all modules."""
    v = torch.cat([V[n][0] for n in ad.adapter_modules(model)])
    return (G @ v) / (G.norm(dim=1) * v.norm()).clamp(min=1e-30)


def check_blocks(name: str, tr, snap, rec, region: list[str], G: dict[str, torch.Tensor], masked: bool) -> dict:
    """Optimizer inputs and deployed step against plain autograd on each block's rollouts alone (G: per-rollout
    gradients; `masked`: also against one backward of the loss with the other rollouts' advantages zeroed)."""
    for k in ("ids", "attn", "mask", "adv"):
        assert torch.equal(rec[k], G["rec"][k]), f"{name}: the step's {k} differ from the snapshot's first step"
    w_dep = torch.tensor([float(r in ("keep", "absorb")) for r in region])
    w_q = torch.tensor([float(r in ("absorb", "route")) for r in region])
    s_dep, s_q = w_dep @ G["dep"], w_q @ G["quar"]
    if masked:
        m_dep, m_q = sp.masked_grads(tr, snap, rec, w_dep)["dep"], sp.masked_grads(tr, snap, rec, w_q)["quar"]
        e_lin = max(sp.close(s_dep, m_dep), sp.close(s_q, m_q))
        assert e_lin < TOL, f"{name}: sum of per-rollout gradients != masked loss gradient (rel err {e_lin:.2e})"
    g_dep, g_q = sp.clipped(s_dep, CLIP), sp.clipped(s_q, CLIP)
    e_dep, e_q = sp.close(rec["grad_dep"], g_dep), sp.close(rec["grad_quar"], g_q)
    assert e_dep < TOL, f"{name}: deployed gradient differs from the kept rollouts' gradient alone (rel err {e_dep:.2e})"
    assert e_q < TOL, f"{name}: quarantine gradient differs from the routed rollouts' gradient alone (rel err {e_q:.2e})"
    # the step is AdamW's on that gradient, nothing else (AdamW's first step divides by |g| + eps, so
    # it is compared on the recorded gradient, which matched the independent one above)
    want = sp.adamw_step(rec["dep_before"], rec["grad_dep"], rec["lr"], tr.args.weight_decay, tr.args.adam_eps)
    e_step = sp.close(rec["dep_after"] - rec["dep_before"], want - rec["dep_before"])
    assert e_step < 1e-6, f"{name}: deployed step is not the AdamW step on the kept rollouts' gradient (rel err {e_step:.2e})"
    if any(r != "keep" for r in region):  # the quarantine's step: AdamW on its own gradient with its own decay
        want_q = sp.adamw_step(rec["quar_before"], rec["grad_quar"], rec["lr"], tr.args.weight_decay_quarantine,
                               tr.args.adam_eps)
        e_qstep = sp.close(rec["quar_after"] - rec["quar_before"], want_q - rec["quar_before"])
        assert e_qstep < 1e-6, f"{name}: quarantine step is not the AdamW step with its own decay (rel err {e_qstep:.2e})"
    adv = rec["adv"]
    m = rec["metrics"]
    routed = [r == "route" for r in region]
    assert m["n_routed"] == sum(routed), (name, m["n_routed"], sum(routed))
    if any(routed):
        share = float((adv[torch.tensor(routed)] > 0).float().mean())
        assert abs(m["pos_share_routed"] - share) < 1e-6, (name, m["pos_share_routed"], share)
    assert abs(m["adv_sum_deployed"] - float((adv * w_dep).sum())) < 1e-5, name
    assert abs(m["adv_sum_quarantine"] - float((adv * w_q).sum())) < 1e-5, name
    return dict(e_dep=e_dep, e_q=e_q, e_step=e_step)


def cell_counts_of(rows: list[dict], routed: list[bool]) -> list[int]:
    """Routed rollouts per cell 3 * (advantage > 0) + length tercile, the terciles by rank of (length, row)."""
    b = len(rows)
    terc = {i: r * 3 // b for r, i in enumerate(sorted(range(b), key=lambda i: (rows[i]["length"], i)))}
    out = [0] * 6
    for i, x in enumerate(routed):
        out[3 * (rows[i]["advantage"] > 0) + terc[i]] += int(x)
    return out


def check_cells(tmp: Path, tr, snap, V) -> list[list[int]]:
    """route-subset-matched: a route step's routed counts per cell (and the shortest third's), written as a route
    run's step log and read back by arms.matched_cells, reproduced per cell by gate=subset-cells."""
    from projected_grpo.loop import logs
    from projected_grpo.method import arms

    rows = sp.step_once(tr, snap, iv.Route(V, gate="grad", route_frac=0.25))["rows"]
    b = len(rows)
    short = set(sorted(range(b), key=lambda i: (rows[i]["length"], i))[: b // 3])
    got, cases = [], (("route", [r["region"] == "route" for r in rows]), ("shortest", [i in short for i in range(b)]))
    for name, routed in cases:
        run = tmp / f"cells_{name}"
        run.mkdir()
        logs.write_step(run, 0, [dict(r, region="route" if x else "keep") for r, x in zip(rows, routed)])
        want = cell_counts_of(rows, routed)
        sched = arms.matched_cells(str(run))
        assert sched == [(want, b)], f"arms.matched_cells ({name}): {sched}, the step log's {want} of {b}"
        rec = sp.step_once(tr, snap, iv.Route(None, gate="subset-cells", seed=3, match_cells=sched))
        assert [r["length"] for r in rec["rows"]] == [r["length"] for r in rows], "the cases sampled other rollouts"
        have = cell_counts_of(rec["rows"], [r["region"] == "route" for r in rec["rows"]])
        assert have == want, f"subset-cells ({name}): routed per cell {have}, the route run's {want}"
        got.append(want)
    scaled = iv.scaled_counts(got[0], b, 2 * b), iv.scaled_counts([1, 1, 1, 0, 0, 0], 3, 4)
    assert scaled == ([2 * c for c in got[0]], [2, 1, 1, 0, 0, 0]), f"scaled_counts: {scaled}"
    return got


def logged(rec, key: str) -> list:
    return [r[key] for r in rec["rows"]]


def main() -> None:
    t0 = time.time()
    with tempfile.TemporaryDirectory() as t:
        # each block with its own weight decay (different values, so a swapped or dropped decay shows) and an
        # Adam epsilon near the clipped gradient's coordinates (so a dropped epsilon shows)
        tr = sp.tiny_trainer(Path(t), "routing", iv.NoIntervention(), grad_clip=CLIP, weight_decay=0.3,
                             weight_decay_quarantine=0.7, adam_eps=1e-5)
        with torch.no_grad():  # both blocks away from 0, so that their decay moves them
            gen = torch.Generator().manual_seed(3)
            for q in ad.deployed_params(tr.model) + ad.quarantine_params(tr.model):
                q.add_(0.05 * torch.randn(q.shape, generator=gen))
        snap = sp.Snapshot(tr)
        V = random_v(tr.model, 1)
        errs = {}

        # top fraction; the per-rollout scores against each rollout's own backward
        rec = sp.step_once(tr, snap, iv.Route(V, gate="grad", route_frac=0.25))
        b = rec["adv"].shape[0]
        assert b == 16, b
        G = dict(sp.per_rollout_grads(tr, snap, rec), rec=rec)
        s_ind = cosines(tr.model, G["dep"], V)
        s_log = torch.tensor(logged(rec, "route_score"))
        e_s = float((s_log - s_ind).abs().max())
        assert e_s < 1e-4, f"logged routing scores differ from per-rollout cosines by {e_s:.2e}"
        k = round(0.25 * b)
        want = ["route" if i in set(torch.topk(s_ind, k).indices.tolist()) else "keep" for i in range(b)]
        assert logged(rec, "region") == want, ("top fraction", logged(rec, "region"), want)
        assert rec["metrics"]["grad_norm"] > CLIP and rec["metrics"]["grad_norm_quarantine"] > CLIP, \
            f"clipping does not bind (norms {rec['metrics']['grad_norm']:.2e}, {rec['metrics']['grad_norm_quarantine']:.2e})"
        errs["top"] = check_blocks("top fraction", tr, snap, rec, want, G, True)

        # thresholds between sorted scores: keep / absorb / route by pin()
        srt = torch.sort(s_ind).values
        ta, tr_ = float(srt[5] + srt[6]) / 2, float(srt[10] + srt[11]) / 2
        rec = sp.step_once(tr, snap, iv.Route(V, gate="grad", t_absorb=ta, t_route=tr_))
        want = ["route" if s >= tr_ else "absorb" if s >= ta else "keep" for s in s_ind.tolist()]
        assert logged(rec, "region") == want and want.count("absorb") == 5, ("thresholds", logged(rec, "region"), want)
        errs["thresholds"] = check_blocks("thresholds", tr, snap, rec, want, G, FULL)

        # matched fraction with a random direction (route-random)
        r_iv = iv.Route(V, gate="random", match_frac=[0.5], seed=3)
        rec = sp.step_once(tr, snap, r_iv)
        s_rand = cosines(tr.model, G["dep"], r_iv.V)
        want = ["route" if i in set(torch.topk(s_rand, b // 2).indices.tolist()) else "keep" for i in range(b)]
        assert logged(rec, "region") == want, ("matched fraction", logged(rec, "region"), want)
        errs["matched"] = check_blocks("matched fraction", tr, snap, rec, want, G, FULL)

        # uniformly random subset at a matched fraction (route-subset)
        rec = sp.step_once(tr, snap, iv.Route(None, gate="subset", match_frac=[0.25], seed=3))
        reg = logged(rec, "region")
        assert reg.count("route") == k and set(reg) <= {"route", "keep"}, ("subset", reg)
        errs["subset"] = check_blocks("subset", tr, snap, rec, reg, G, FULL)

        # subset matched in positive-advantage share among the routed (route-subset-signed)
        pos = rec["adv"] > 0
        n_pos = int(pos.sum())
        assert 0 < n_pos < b and b // 2 <= max(n_pos, b - n_pos), n_pos
        for share in (1.0, 0.0):
            rec = sp.step_once(tr, snap, iv.Route(None, gate="subset-signed", match_frac=[0.5], seed=3,
                                                  match_pos_share=[share]))
            reg = logged(rec, "region")
            routed = torch.tensor([r == "route" for r in reg])
            want_pos = min(round(share * b // 2), n_pos)
            want_pos = max(want_pos, b // 2 - (b - n_pos))
            assert int(routed.sum()) == b // 2 and int((routed & pos).sum()) == want_pos, \
                ("subset-signed", share, int(routed.sum()), int((routed & pos).sum()), want_pos)
            errs[f"signed{share:g}"] = check_blocks(f"subset-signed {share}", tr, snap, rec, reg, G, FULL)
        cells = check_cells(Path(t), tr, snap, V)
    worst = max(max(e.values()) for e in errs.values())
    print(f"PASS routing ({tier()} tier): through Trainer.step + grpo_loss on the tiny organism (b={b}, {len(errs)} cases: top 0.25, "
          f"thresholds 6/5/5, random matched 0.5, subset 0.25, subset-signed 0.5 at shares 1 and 0 ({n_pos} positive), subset-cells "
          f"per-cell counts = a route step's {cells[0]} and the shortest third's {cells[1]}): "
          f"regions exact; logged scores = per-rollout cosines (max err {e_s:.1e}); each block's optimizer gradient "
          f"and each block's AdamW step (own weight decay, 0.3 vs 0.7; eps 1e-5) = its own rollouts' alone (max rel err {worst:.1e}, clip binding); "
          f"{time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
