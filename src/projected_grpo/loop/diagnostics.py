"""Per-step diagnostics of which rollouts each block trained on, computed from a step's rollout rows.

The rows are written after the step (grpo.Trainer.step), so the ground-truth labels they carry are
a measurement here: nothing in this module runs before the optimizer step or feeds training.

A trained rollout's region (logged by routing arms; absent = keep) says which block its update went to:
    keep    deployed block only
    absorb  both blocks
    route   quarantine block only
Arms without routing (vanilla, erase) train the deployed block on every trained rollout.

    pos_share_routed    share of routed rollouts with positive advantage (nan when none is routed)
    pos_share_kept      share of kept rollouts with positive advantage
    pos_share_trained   share of all trained rollouts with positive advantage
    adv_sum_deployed    sum of the advantages of the rollouts the deployed block trains on (keep + absorb)
    adv_sum_quarantine  the same for the quarantine block (absorb + route)
    n_routed            number of routed rollouts
    routed_hack_strict  share of routed rollouts that are strict hacks (ground truth, measurement only)
    routed_label_mix    {grader label: share} among routed rollouts (measurement only)
"""

from __future__ import annotations

from collections import Counter

DEPLOYED_REGIONS = ("keep", "absorb")
QUARANTINE_REGIONS = ("absorb", "route")


def region(row: dict) -> str:
    r = row.get("region")
    return r if isinstance(r, str) else "keep"  # absent (or nan from a DataFrame): keep


def pos_share(rows: list[dict]) -> float:
    return sum(r["advantage"] > 0 for r in rows) / len(rows) if rows else float("nan")


def block_diagnostics(rows: list[dict]) -> dict:
    """The module docstring's quantities for one step's rollout rows."""
    trained = [r for r in rows if r["trained"]]
    routed = [r for r in trained if region(r) == "route"]
    kept = [r for r in trained if region(r) == "keep"]
    labels = Counter(r["label"] for r in routed)
    return dict(
        pos_share_routed=pos_share(routed), pos_share_kept=pos_share(kept), pos_share_trained=pos_share(trained),
        adv_sum_deployed=sum(r["advantage"] for r in trained if region(r) in DEPLOYED_REGIONS),
        adv_sum_quarantine=sum(r["advantage"] for r in trained if region(r) in QUARANTINE_REGIONS),
        n_routed=len(routed),
        routed_hack_strict=sum(bool(r["hack_strict"]) for r in routed) / len(routed) if routed else float("nan"),
        routed_label_mix={k: v / len(routed) for k, v in sorted(labels.items())},
    )
