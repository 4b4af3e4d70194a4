"""One GRPO run of one arm.

    python scripts/train.py --arm vanilla --seed 0 --run vanilla_s0
    python scripts/train.py --arm erase --vhack out/vhack/organism_cpu_svd.safetensors --seed 0
    python scripts/train.py --arm route --vhack ... --route-frac 0.25

Arms (the intervention acting at the loop's gradient hook):
    vanilla          no intervention
    rl-baseline      no intervention, no loophole in the training prompts
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
    oracle-route     routing by the ground-truth hack label (UPPER BOUND, reads labels; never a method)
    gt-penalty       ground-truth monitor: reward of detected hacks set to 0 (peer baseline, oracle)
    gt-screen        ground-truth monitor: detected hacks dropped from the batch (peer baseline, oracle)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from projected_grpo import grpo, logs  # noqa: E402
from projected_grpo.cli import add_dataclass_args, dataclass_from_args  # noqa: E402

ARMS = ("vanilla", "rl-baseline", "erase", "erase-random", "route", "route-random", "route-subset",
        "route-subset-signed", "capacity", "absorb", "oracle-route", "gt-penalty", "gt-screen")
MATCHED_ARMS = ("route-random", "route-subset", "route-subset-signed")  # need --match-run
ROUTING_ARMS = ("route", "capacity", "absorb", "oracle-route") + MATCHED_ARMS


def fail(msg: str) -> None:
    """Bad command-line input: one line on stderr, exit status 2."""
    print(f"train.py: {msg}", file=sys.stderr)
    raise SystemExit(2)


def matched_schedule(run: str, key: str) -> list[float]:
    """Per-step values of metrics.jsonl's `key` in the --match-run folder; a step without it (nothing
    trained) or with nan (nothing routed) reads 0."""
    m = logs.read_jsonl(Path(run) / "metrics.jsonl")
    if not any(key in r for r in m):
        fail(f"--match-run {run}: no metrics.jsonl with '{key}' (a route run logged by this version)")
    vals = [r.get(key, 0.0) for r in sorted(m, key=lambda r: r["step"])]
    return [0.0 if v != v else float(v) for v in vals]


def build_intervention(a: argparse.Namespace, trainer_args: grpo.Args):
    from projected_grpo import interventions as iv

    arm = a.arm
    if arm in ("vanilla", "rl-baseline"):
        return iv.NoIntervention()
    if arm in ("gt-penalty", "gt-screen"):
        return iv.GroundTruthMonitor(mode=arm.split("-")[1], accuracy=a.monitor_accuracy, seed=trainer_args.seed)
    needs_v = arm in ("erase", "erase-random", "route", "route-random")
    V = None
    if needs_v:
        if not a.vhack:
            fail(f"--vhack: --arm {arm} needs a v_hack file (run scripts/extract_vhack_grad.py first)")
        V = iv.LazyVhack(a.vhack)
    if arm in MATCHED_ARMS and not a.match_run:
        fail(f"--match-run: --arm {arm} needs a route run whose per-step routed fraction to match")
    if arm in ("erase", "erase-random"):
        return iv.Erase(V, one_sided=not a.two_sided, target=a.erase_target, random=arm == "erase-random",
                        seed=trainer_args.seed)
    if arm == "route":
        return iv.Route(V, gate="grad", t_absorb=a.t_absorb, t_route=a.t_route, route_frac=a.route_frac)
    if arm in MATCHED_ARMS:
        frac = matched_schedule(a.match_run, "routed_frac")
        gate = {"route-random": "random", "route-subset": "subset", "route-subset-signed": "subset-signed"}[arm]
        pos = matched_schedule(a.match_run, "pos_share_routed") if arm == "route-subset-signed" else None
        return iv.Route(V, gate=gate, match_frac=frac, seed=trainer_args.seed, match_pos_share=pos)
    if arm == "capacity":
        return iv.Route(None, gate="none")
    if arm == "absorb":
        return iv.Route(None, gate="absorb")
    if arm == "oracle-route":
        return iv.Route(None, gate="oracle")
    raise ValueError(f"unknown arm {arm!r}")


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arm", default="vanilla", choices=ARMS)
    ap.add_argument("--vhack", default="", help="v_hack safetensors (erase / route arms)")
    ap.add_argument("--two-sided", action="store_true", help="erase: remove both signs of the v_hack component")
    ap.add_argument("--erase-target", default="grad", choices=("grad", "update"))
    ap.add_argument("--t-absorb", type=float, default=1.0, help="route: scores >= this enter the absorb region")
    ap.add_argument("--t-route", type=float, default=1.0, help="route: scores >= this are routed to the quarantine")
    ap.add_argument("--route-frac", type=float, default=0.0, help="route: route the top fraction of each step's scores")
    ap.add_argument("--match-run", default="", help="route-random, route-subset(-signed): run folder whose per-step routed fraction "
                    "(and positive-advantage share among the routed) to match")
    ap.add_argument("--monitor-accuracy", type=float, default=1.0, help="gt-*: accuracy of the ground-truth monitor")
    add_dataclass_args(ap, grpo.Args)
    a = ap.parse_args(argv)
    if a.arm == "rl-baseline":
        a.loophole = False
    targs = dataclass_from_args(grpo.Args, a)
    if a.arm in ROUTING_ARMS and targs.quarantine == "shared" and a.arm != "capacity":
        print(f"note: --arm {a.arm} with --quarantine shared: the two blocks get identical gradients "
              "(the shrinkage null); use --quarantine own for structural separation", file=sys.stderr)
    return grpo.train(targs, build_intervention(a, targs))


if __name__ == "__main__":
    from projected_grpo import distributed

    main()
    distributed.finish()
