"""The arm registry: every experimental arm as one row of data.

An arm is an intervention (interventions.py) with fixed scripts/train.py flags, the hypothesis its
run tests (the justfile recipe's `# H:` line), whether it reads ground-truth labels (oracle: a
reference point, never our method), which v_hack file it needs, which run's per-step fractions it
matches, and its controls (the arms its paired differences are taken against in results.py).

Used by scripts/train.py (arm -> intervention and flags), scripts/main_experiment.py and
scripts/headline.py (which runs, in which order, with which v_hack), scripts/results.py (paired
differences from controls) and the justfile (the arm recipes are generated from this table by
`python scripts/gen_arm_recipes.py`; scripts/verify_arms.py checks they agree). Adding an arm is one
entry in ARMS (then regenerate the recipes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

VhackKind = Literal["none", "shared", "own", "placebo", "placebo-own"]

INTERVENTIONS = ("none", "erase", "erase-random", "route", "route-random", "route-subset", "route-subset-signed",
                 "capacity", "absorb", "oracle-route", "gt-penalty", "gt-screen", "rebound-adv", "scorda")
"""The intervention kinds scripts/train.py can build (train.build_intervention)."""

ORACLE_INTERVENTIONS = ("oracle-route", "gt-penalty", "gt-screen")
"""Interventions that open the sealed ground-truth labels (verify_vhack's allowed openers)."""


@dataclass(frozen=True)
class Arm:
    """One experimental arm."""

    name: str
    """run folders are <name>_s<seed>; also the justfile recipe's name"""
    intervention: str
    """one of INTERVENTIONS"""
    hypothesis: str
    """what the arm's run tests (the recipe's `# H:` line)"""
    flags: tuple[str, ...] = ()
    """scripts/train.py flags the arm fixes (applied before the command line's; an override is noted in arm.json, the
    values the run used are in args.json)"""
    oracle: bool = False
    """reads ground-truth hack labels at training time (reference point only)"""
    vhack: VhackKind = "none"
    """which v_hack file it needs: extracted from the hack pairs for the shared or own-quarantine adapter,
    from the placebo pairs, or none"""
    matches: str = ""
    """arm whose run (same seed) gives this arm's per-step routed fraction (--match-run)"""
    controls: tuple[str, ...] = ()
    """arms this one is compared with (paired differences, same seeds)"""


OWN = ("--quarantine", "own")

ARMS: tuple[Arm, ...] = (
    Arm("vanilla", "none",
        "with the loophole announced, GRPO raises the strict hack rate from the base rate to a majority"),
    Arm("rl-baseline", "none",
        "without a loophole in the prompts the hack rate stays near the base rate (RL baseline)",
        flags=("--no-loophole",)),
    Arm("erase", "erase",
        "projecting v_hack out of the deployed block's gradient lowers the hack rate relative to vanilla",
        vhack="shared", controls=("erase-random", "erase-placebo")),
    Arm("erase-update", "erase",
        "projecting v_hack out of the deployed block's realised AdamW step lowers the hack rate relative to vanilla",
        flags=("--erase-target", "update"), vhack="shared", controls=("erase", "erase-random")),
    Arm("erase-random", "erase-random",
        "a random direction of matched shape erased the same way does not lower the hack rate (direction matters)",
        vhack="shared"),
    Arm("erase-placebo", "erase",
        "erase with v_hack from placebo pairs (a contrast unrelated to hacking) does not lower the hack rate",
        vhack="placebo"),
    Arm("route", "route",
        "routing the top-scoring rollouts (cosine to v_grad) to an own-basis quarantine lowers the deployed hack rate",
        flags=OWN + ("--route-frac", "0.25"), vhack="own",
        controls=("route-random", "route-subset", "route-subset-signed")),
    Arm("route-random", "route-random",
        "routing the same fraction per step by a random direction does not lower the deployed hack rate "
        "(no shrinkage effect)", flags=OWN, vhack="own", matches="route"),
    Arm("route-subset", "route-subset",
        "routing a uniformly random subset at the route run's per-step fraction lowers the deployed solve rate as "
        "much as route does (the collapse is \"how many\", not \"which direction\")", flags=OWN, matches="route"),
    Arm("route-subset-signed", "route-subset-signed",
        "a random subset that also matches the route run's per-step positive-advantage share among the routed "
        "reproduces route's deployed hack and solve rates (the effect is \"how many\" and \"which advantage sign\")",
        flags=OWN, matches="route"),
    Arm("route-placebo", "route",
        "routing by v_grad from placebo pairs (a contrast unrelated to hacking) lowers the deployed hack rate less "
        "than route (direction matters)", flags=OWN + ("--route-frac", "0.25"), vhack="placebo-own"),
    Arm("capacity", "capacity",
        "two trained blocks without routing hack like vanilla (parameter count alone does not suppress hacking)",
        flags=OWN),
    Arm("absorb", "absorb",
        "training both blocks on every rollout and ablating the quarantine removes part of the update "
        "(absorb-only control)", flags=OWN),
    Arm("scorda-absorb", "scorda",
        "a quarantine block seeded with the pairs' signed activation contrast, both blocks trained on every rollout, "
        "absorbs hacking: deployment ablation lowers the deployed hack rate (held-out mechanisms too) more than "
        "absorb and scorda-reverse, at a small cost in no-hint solve",
        flags=OWN + ("--axis", "quarantine"), controls=("scorda-reverse", "absorb")),
    Arm("scorda-reverse", "scorda",
        "the same seed placed in the deployed block does not lower the deployed hack rate (directional control of "
        "scorda-absorb)", flags=OWN + ("--axis", "deployed")),
    Arm("rebound-adv", "rebound-adv",
        "lowering each rollout's advantage in proportion to its activation score against v_act from the pairs "
        "(oracle-free peer baseline in the style of Rebound) lowers the hack rate relative to vanilla",
        vhack="shared"),
    Arm("oracle-route", "oracle-route",
        "(UPPER BOUND, reads ground-truth labels) routing true hacks to the quarantine keeps the deployed model clean",
        flags=OWN, oracle=True),
    Arm("gt-penalty", "gt-penalty",
        "(ORACLE peer baseline, reads labels) a ground-truth monitor of accuracy 1.0 with reward penalty prevents "
        "hacking", flags=("--monitor-accuracy", "1.0"), oracle=True),
    Arm("gt-penalty-acc90", "gt-penalty",
        "(ORACLE peer baseline, reads labels) a ground-truth monitor of accuracy 0.9 with reward penalty prevents "
        "hacking less reliably than at accuracy 1.0", flags=("--monitor-accuracy", "0.9"), oracle=True,
        controls=("gt-penalty",)),
    Arm("gt-screen", "gt-screen",
        "(ORACLE peer baseline, reads labels) screening flagged rollouts out of the batch prevents hacking",
        flags=("--monitor-accuracy", "1.0"), oracle=True),
)

BY_NAME: dict[str, Arm] = {a.name: a for a in ARMS}

HEADLINE = ("vanilla", "rl-baseline", "erase", "erase-update", "erase-random", "erase-placebo", "route",
            "route-random", "route-subset", "route-subset-signed", "capacity", "absorb", "scorda-absorb",
            "scorda-reverse", "rebound-adv", "oracle-route", "gt-penalty", "gt-penalty-acc90")
"""The arms of `just headline` (issue 13)."""

ORGANISM_LR = 0.05
"""GRPO learning rate of the organism experiments (just main, just headline, just emergence): on organism v3
vanilla hacks at 0.75 by step 40 with it (headline of 2026-11-24, weight decay 0)."""

ORGANISM_WEIGHT_DECAY = 1.0
"""AdamW weight decay of both adapter blocks in the organism experiments (the drivers pass it to every run; the
trainer's own defaults are 0). Chosen 2026-11-24 (session 4) so that the RL baseline's no-hint solve stays near the
organism's while vanilla still hacks on every mechanism; the same for the quarantine block so that a deployment
ablation removes no more than the quarantine's share (RESEARCH_JOURNAL.md)."""

MAIN = ("vanilla", "erase", "route", "route-subset", "scorda-absorb")
"""The arms of `just main` (the README's main command)."""

PAIRS = {"shared": "data/pairs/hack_pairs.md#organism", "own": "data/pairs/hack_pairs.md#organism",
         "placebo": "data/pairs/pair_diagnostics.md#placebo", "placebo-own": "data/pairs/pair_diagnostics.md#placebo"}
"""The pair set each v_hack kind is extracted from."""


def arm(name: str) -> Arm:
    assert name in BY_NAME, f"unknown arm {name!r} (arms: {', '.join(BY_NAME)})"
    return BY_NAME[name]


def model_tag(model: str) -> str:
    """organism:cpu -> organism_cpu (the file-name form of a model spec)."""
    return model.replace(":", "_").replace("/", "_")


def vhack_path(kind: VhackKind, model: str) -> str:
    """Where the v_hack file of a kind lives for a model: out/vhack/<model tag>_svd[_own][_placebo].safetensors."""
    assert kind != "none", "this arm needs no v_hack"
    suffix = {"shared": "", "own": "_own", "placebo": "_placebo", "placebo-own": "_own_placebo"}[kind]
    return f"out/vhack/{model_tag(model)}_svd{suffix}.safetensors"


def vhack_extract_args(kind: VhackKind, model: str) -> list[str]:
    """scripts/extract_vhack_grad.py arguments that write vhack_path(kind, model)."""
    q = "own" if kind.endswith("own") else "shared"
    return ["--pairs", PAIRS[kind], "--model", model, "--quarantine", q, "--out", vhack_path(kind, model)]


def match_run(a: Arm, runs_dir: str, seed: int) -> str:
    return f"{runs_dir}/{a.matches}_s{seed}"


def flag_names(flags: tuple[str, ...]) -> set[str]:
    return {f for f in flags if f.startswith("--")}


def flag_field(flag: str) -> str:
    """The args.json field a scripts/train.py flag sets: --route-frac -> route_frac, --no-loophole -> loophole."""
    return flag.removeprefix("--").removeprefix("no-").replace("-", "_")


def arm_fields() -> set[str]:
    """The fields some registry arm's flags set (they differ between the arms of one table by design)."""
    return {flag_field(f) for a in ARMS for f in flag_names(a.flags)}


def closure(names: list[str]) -> list[str]:
    """names plus the arms they match (route-random needs route), in dependency order."""
    out: list[str] = []
    for n in names:
        m = arm(n).matches
        if m and m not in out:
            out.append(m)
        if n not in out:
            out.append(n)
    return out


def justfile_recipes() -> str:
    """The justfile's arm recipes, one per registry arm, with the arm's `# H:` line."""
    blocks = []
    for a in ARMS:
        blocks.append(f"# H: {a.hypothesis}\n{a.name} seed=\"0\" *args:\n"
                      f"    {{{{py}}}} scripts/train.py --arm {a.name} --seed {{{{seed}}}} --run {a.name}_s{{{{seed}}}} "
                      f"{{{{args}}}}\n")
    return "\n".join(blocks)
