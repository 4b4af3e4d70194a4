"""One GRPO run of one arm of the registry (src/projected_grpo/method/arms.py).

    python scripts/train.py --arm vanilla --seed 0 --run vanilla_s0
    python scripts/train.py --arm erase --seed 0           # v_hack from out/vhack/<model>_svd.safetensors
    python scripts/train.py --arm route-random --seed 0    # matched to out/runs/route_s0 per step

An arm fixes its intervention and some fields of the run configuration (the registry's typed `overrides`;
a flag given on the command line overrides the registry's value, with a note, and the run folder's
arm.json records it); --vhack defaults to the registry's file for the model (arms.vhack_path) and
--match-run to <out-dir>/<matched arm>_s<seed>. Every flag is a field of config.RunConfig (the
intervention's under `intervention`); the run folder's args.json is that configuration. A bad value is
one line naming the flag, exit status 2. Interventions (interventions.py, built by arms.build_intervention):
    none             no intervention
    erase            project v_hack out of the deployed block's gradient (--erase-target update: out of the update)
    erase-random     erase with a random direction of matched shape (control)
    route            per-rollout routing by cosine to v_grad, pinned by thresholds or --route-frac
    route-random     routing by a random direction at the routed fraction of --match-run per step (control)
    route-subset     a uniformly random subset of rollouts at --match-run's per-step routed fraction (control:
                     how many, no direction)
    route-subset-signed  route-subset that also matches --match-run's per-step share of positive-advantage
                     rollouts among the routed (control: how many and which advantage sign, no direction)
    capacity         both blocks trained on every rollout, no routing (capacity-matched control)
    absorb           every rollout in the absorb region (absorb-only control)
    scorda           both blocks trained on every rollout, one of them seeded with the pairs' signed activation
                     contrast (--axis quarantine: scorda-absorb; --axis deployed: scorda-reverse)
    rebound-adv      each rollout's advantage lowered in proportion to its activation score against v_act
    rebound          Rebound's Advantage Modification: the activation score z-scored within each group, rollouts
                     above their group's average penalised multiplicatively, A - alpha * z * |A| (--rebound-alpha 2)
    tdga             the deployed block's gradient projected onto the span of the pairs' clean completions'
                     gradients (--trusted-rank; the trusted-span file from extract_vhack_grad.py --trusted-span)
    oracle-route     routing by the ground-truth hack label (UPPER BOUND, reads labels; never a method)
    gt-penalty       ground-truth monitor: reward of detected hacks set to 0 (peer baseline, oracle)
    gt-screen        ground-truth monitor: detected hacks dropped from the batch (peer baseline, oracle)
"""

from __future__ import annotations

import sys
from pathlib import Path

from projected_grpo.loop import distributed
from projected_grpo.loop.cli import train


def main(argv: list[str] | None = None) -> Path:
    return train(sys.argv[1:] if argv is None else argv, "train.py", __doc__)


if __name__ == "__main__":
    main()
    distributed.finish()
