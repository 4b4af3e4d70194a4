"""Diagnostics of a routing (or erase) run's per-rollout score against ground-truth hack labels.

    python scripts/diag_pinning.py out/runs/route_s0

Reads the run's step logs. For trained rollouts with a score (route_score for routing runs,
align_score for erase runs) it reports the AUROC of the score for strict hacks, precision and
recall of the route region, the routed fraction per step, and the same per loophole mechanism,
with the mechanisms held out of the v_hack pairs separately; and plots the score distributions
by label. Per step it prints the blocks' diagnostics (diagnostics.block_diagnostics: positive-
advantage share among routed and kept rollouts, the advantage sums each block trained on, the routed
rollouts' strict-hack share). The labels are a measurement instrument here: nothing in training reads them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy.stats import rankdata


from projected_grpo.loop import logs  # noqa: E402
from projected_grpo.loop.diagnostics import block_diagnostics  # noqa: E402

HELD_OUT = ("stdout_marker", "exit_code")


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Probability that a random positive outscores a random negative (ties count half)."""
    pos, neg = labels.sum(), (~labels).sum()
    if pos == 0 or neg == 0:
        return float("nan")
    r = rankdata(scores)
    return float((r[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


def cell(df) -> dict:
    y = df["hack_strict"].to_numpy(bool)
    s = df["score"].to_numpy(float)
    routed = (df["region"] == "route").to_numpy() if "region" in df else np.zeros(len(df), bool)
    tp = int((routed & y).sum())
    return dict(n=len(df), n_hack=int(y.sum()), auroc=auroc(s, y), routed_frac=float(routed.mean()) if len(df) else float("nan"),
                precision_at_route=tp / routed.sum() if routed.sum() else float("nan"),
                recall_at_route=tp / y.sum() if y.sum() else float("nan"))


def diagnose(run_dir: Path, plot: bool = True) -> dict:
    df = logs.load_rollouts(run_dir)
    assert len(df), f"{run_dir}: no step logs"
    blocks = {int(s): block_diagnostics(g.to_dict("records")) for s, g in df.groupby("step")}
    col = "route_score" if "route_score" in df else "align_score" if "align_score" in df else None
    assert col, f"{run_dir}: no per-rollout score in the step logs (not a route or erase run)"
    df = df.dropna(subset=[col]).rename(columns={col: "score"})
    out = {"run": str(run_dir), "score": col, "all": cell(df), "blocks_per_step": blocks}
    out["per_mechanism"] = {m: cell(g) for m, g in df.groupby("mechanism")}
    held = df[df["mechanism"].isin(HELD_OUT)]
    out["held_out"] = cell(held) if len(held) else None
    out["routed_frac_per_step"] = {int(s): float((g["region"] == "route").mean()) for s, g in df.groupby("step")} \
        if "region" in df else {}
    if plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for lab, sub in (("strict hack", df[df.hack_strict]), ("not hack", df[~df.hack_strict])):
            if len(sub):
                ax.hist(sub["score"], bins=40, alpha=0.5, density=True, label=f"{lab} (n={len(sub)})")
        ax.set(title=f"{run_dir.name}: {col} by ground-truth label", xlabel=col)
        ax.legend()
        fig.tight_layout()
        fig.savefig(run_dir / "diag_pinning.png", dpi=110)
        plt.close(fig)
        out["plot"] = str(run_dir / "diag_pinning.png")
    (run_dir / "diag_pinning.json").write_text(json.dumps(out, indent=1))
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run")
    a = ap.parse_args(argv)
    run = Path(a.run)
    if not run.is_dir():
        raise SystemExit(f"diag_pinning: {run}: no such run folder")
    out = diagnose(run)
    a_ = out["all"]
    print(f"{run.name}: n={a_['n']} hacks={a_['n_hack']} AUROC={a_['auroc']:.3f} routed={a_['routed_frac']:.3f} "
          f"precision@route={a_['precision_at_route']:.3f} recall@route={a_['recall_at_route']:.3f}")
    print("step  n_routed  pos_share_routed  pos_share_kept  pos_share_trained  adv_sum_deployed  adv_sum_quarantine  "
          "routed_hack_strict")
    for step, b in out["blocks_per_step"].items():
        print(f"{step:4d}  {b['n_routed']:8d}  {b['pos_share_routed']:16.3f}  {b['pos_share_kept']:14.3f}  "
              f"{b['pos_share_trained']:17.3f}  {b['adv_sum_deployed']:16.3f}  {b['adv_sum_quarantine']:18.3f}  "
              f"{b['routed_hack_strict']:18.3f}")
    for m, c in out["per_mechanism"].items():
        print(f"  {m:14s} n={c['n']:5d} hacks={c['n_hack']:4d} AUROC={c['auroc']:.3f} precision@route="
              f"{c['precision_at_route']:.3f} recall@route={c['recall_at_route']:.3f}"
              + ("  (held out of the pairs)" if m in HELD_OUT else ""))
    return out


if __name__ == "__main__":
    main()
