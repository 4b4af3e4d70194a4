"""One GRPO run of one arm of the registry (src/projected_grpo/method/arms.py).

    python scripts/train.py --arm vanilla --seed 0 --run vanilla_s0
    python scripts/train.py --arm erase --seed 0           # v_hack from out/vhack/<model>_svd.safetensors
    python scripts/train.py --arm route-random --seed 0    # matched to out/runs/route_s0 per step

An arm fixes its intervention and some flags (the registry's `flags`; one given on the command line
overrides the registry's value, with a note, and the run folder's arm.json records it); --vhack
defaults to the registry's file for the model (arms.vhack_path) and --match-run to <out-dir>/<matched
arm>_s<seed>. The run folder's args.json holds every flag with the value the run used: grpo.Args's, and
under `intervention` this script's own (intervention_flags). Interventions (interventions.py):
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
    oracle-route     routing by the ground-truth hack label (UPPER BOUND, reads labels; never a method)
    gt-penalty       ground-truth monitor: reward of detected hacks set to 0 (peer baseline, oracle)
    gt-screen        ground-truth monitor: detected hacks dropped from the batch (peer baseline, oracle)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from projected_grpo.method import arms  # noqa: E402
from projected_grpo.loop import grpo, logs, models  # noqa: E402
from projected_grpo.loop.cli import add_dataclass_args, dataclass_from_args  # noqa: E402
from projected_grpo.organism.pinned import OrganismError  # noqa: E402

MATCHED = ("route-random", "route-subset", "route-subset-signed")  # interventions that need --match-run
ROUTING = ("route", "capacity", "absorb", "oracle-route", "scorda") + MATCHED  # train the quarantine block


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
    """The intervention object of the arm's intervention kind (arms.INTERVENTIONS)."""
    from projected_grpo.method import interventions as iv

    kind, seed = arms.arm(a.arm).intervention, trainer_args.seed
    V = iv.LazyVhack(a.vhack) if a.vhack else None
    if kind == "none":
        return iv.NoIntervention()
    if kind in ("gt-penalty", "gt-screen"):
        return iv.GroundTruthMonitor(mode=kind.split("-")[1], accuracy=a.monitor_accuracy, seed=seed)
    if kind in ("erase", "erase-random"):
        return iv.Erase(V, one_sided=not a.two_sided, target=a.erase_target, random=kind == "erase-random", seed=seed)
    if kind == "route":
        return iv.Route(V, gate="grad", t_absorb=a.t_absorb, t_route=a.t_route, route_frac=a.route_frac)
    if kind in MATCHED:
        frac = matched_schedule(a.match_run, "routed_frac")
        pos = matched_schedule(a.match_run, "pos_share_routed") if kind == "route-subset-signed" else None
        gate = {"route-random": "random", "route-subset": "subset", "route-subset-signed": "subset-signed"}[kind]
        return iv.Route(V, gate=gate, match_frac=frac, seed=seed, match_pos_share=pos)
    if kind in ("capacity", "absorb", "oracle-route"):
        return iv.Route(None, gate={"capacity": "none", "absorb": "absorb", "oracle-route": "oracle"}[kind])
    if kind == "scorda":
        return iv.SeededAbsorb(pairs=a.pairs)
    if kind == "rebound-adv":
        return iv.ReboundAdvantage(V, beta=a.rebound_beta)
    raise ValueError(f"unknown intervention {kind!r}")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arm", default="vanilla", choices=list(arms.BY_NAME))
    ap.add_argument("--vhack", default="", help="v_hack safetensors (default: the registry's file for --model)")
    ap.add_argument("--two-sided", action="store_true", help="erase: remove both signs of the v_hack component")
    ap.add_argument("--erase-target", default="grad", choices=("grad", "update"))
    ap.add_argument("--t-absorb", type=float, default=1.0, help="route: scores >= this enter the absorb region")
    ap.add_argument("--t-route", type=float, default=1.0, help="route: scores >= this are routed to the quarantine")
    ap.add_argument("--route-frac", type=float, default=0.0, help="route: route the top fraction of each step's scores")
    ap.add_argument("--match-run", default="", help="route-random, route-subset(-signed): run folder whose per-step "
                    "routed fraction (and positive-advantage share among the routed) to match "
                    "(default: <out-dir>/<matched arm>_s<seed>)")
    ap.add_argument("--monitor-accuracy", type=float, default=1.0, help="gt-*: accuracy of the ground-truth monitor")
    ap.add_argument("--pairs", default=arms.PAIRS["shared"], help="scorda: pairs whose activation contrast seeds the axis")
    ap.add_argument("--rebound-beta", type=float, default=1.0, help="rebound-adv: advantage lowered by beta * activation score")
    add_dataclass_args(ap, grpo.Args)
    return ap


def parse_flags(argv: list[str]) -> argparse.Namespace:
    """The command line with the arm's registry flags applied first, so a flag given on the command line
    overrides the registry's value (listed in `overridden`; no file is checked)."""
    ap = parser()
    a = ap.parse_args(argv)
    spec = arms.arm(a.arm)
    given = {x.split("=")[0] for x in argv if x.startswith("--")}
    a = ap.parse_args(list(spec.flags) + argv)
    a.overridden = sorted(arms.flag_names(spec.flags) & given)
    return a


def resolve(a: argparse.Namespace) -> argparse.Namespace:
    """The defaults that depend on other flags filled in (no file is checked): --vhack the registry's file for the
    model, --match-run <out-dir>/<matched arm>_s<seed>."""
    spec = arms.arm(a.arm)
    if spec.vhack != "none" and not a.vhack:
        a.vhack = arms.vhack_path(spec.vhack, a.model)
    if spec.intervention in MATCHED:
        a.match_run = a.match_run or arms.match_run(spec, a.out_dir, a.seed)
    return a


def intervention_flags(a: argparse.Namespace) -> dict:
    """This script's own flags (every one that is not a grpo.Args field: the arm, the intervention's flags, the
    v_hack file, the matched run) with their values: grpo.Args.intervention, so args.json records them."""
    trainer = {f.name for f in dataclasses.fields(grpo.Args)}
    return {k: v for k, v in vars(a).items() if k not in trainer and k != "overridden"}


def trainer_args(a: argparse.Namespace) -> grpo.Args:
    """The run's grpo.Args, this script's own flags in its `intervention` field."""
    return dataclass_from_args(grpo.Args, a, intervention=intervention_flags(a))


def saved_args(a: argparse.Namespace) -> dict:
    """The args.json of this command line's run (grpo.Trainer.run writes it), as json reads it back."""
    return json.loads(json.dumps(dataclasses.asdict(trainer_args(a))))


def parse(argv: list[str]) -> argparse.Namespace:
    """parse_flags, a note for each registry flag the command line overrides (also recorded in the run folder's
    arm.json), resolve, and the files the run reads checked: v_hack, and a matched control's run of the same
    recipe (logs.recipe)."""
    a = resolve(parse_flags(argv))
    spec = arms.arm(a.arm)
    if a.overridden:
        print(f"note: --arm {a.arm}: {', '.join(a.overridden)} given on the command line overrides the registry's "
              f"{' '.join(spec.flags)}", file=sys.stderr)
    try:
        models.resolve(a.model)
    except OrganismError as e:
        fail(str(e))
    if a.vhack and not Path(a.vhack).exists():
        kind = spec.vhack if spec.vhack != "none" else "shared"
        fail(f"--vhack {a.vhack}: no such file (extract it: python scripts/extract_vhack_grad.py "
             f"{' '.join(arms.vhack_extract_args(kind, a.model))})")
    if spec.intervention in MATCHED:
        if not (Path(a.match_run) / "metrics.jsonl").exists():
            fail(f"--match-run {a.match_run}: no metrics.jsonl (run the {spec.matches} arm of this seed first)")
        if not (Path(a.match_run) / "args.json").exists():
            fail(f"--match-run {a.match_run}: no args.json (not a run folder)")
        try:
            diff = logs.differences(logs.read_recipe(a.match_run), logs.recipe(saved_args(a)))
        except ValueError as e:
            fail(f"--match-run {a.match_run}: {e}")
        if diff:
            k, (have, asked) = next(iter(diff.items()))
            fail(f"--match-run {a.match_run}: trained with {k} {have}, this run has {asked} (a matched control "
                 f"copies its schedule from a run of the same recipe)")
    return a


def dd_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def record_arm(a: argparse.Namespace) -> None:
    """arm.json in the run folder: the registry arm, the flags it fixed and any the command line overrode (the values
    the run used are args.json's)."""
    spec = arms.arm(a.arm)
    d = Path(a.out_dir) / a.run
    d.mkdir(parents=True, exist_ok=True)
    (d / "arm.json").write_text(json.dumps(dict(arm=spec.name, intervention=spec.intervention, flags=spec.flags,
                                                overridden=a.overridden, oracle=spec.oracle, vhack=a.vhack,
                                                match_run=a.match_run), indent=1))


def main(argv: list[str] | None = None) -> Path:
    a = parse(sys.argv[1:] if argv is None else argv)
    targs = trainer_args(a)
    if dd_main():
        record_arm(a)
    if arms.arm(a.arm).intervention in ROUTING and targs.quarantine == "shared" and a.arm != "capacity":
        print(f"note: --arm {a.arm} with --quarantine shared: the two blocks get identical gradients "
              "(the shrinkage null); use --quarantine own for structural separation", file=sys.stderr)
    return grpo.train(targs, build_intervention(a, targs))


if __name__ == "__main__":
    from projected_grpo.loop import distributed

    main()
    distributed.finish()
