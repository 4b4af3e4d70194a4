"""The arm registry: every experimental arm as one row of data, and the intervention each one builds.

An arm is an intervention (interventions.py) with typed overrides of the run configuration
(config.RunConfig fields), the hypothesis its run tests (the justfile recipe's `# H:` line), whether it
reads ground-truth labels (oracle: a reference point, never our method), which v_hack file it needs,
which run's per-step fractions it matches, and its controls (the arms its paired differences are taken
against in results.py).

    configure(given)        a command line's fields -> RunConfig: defaults, the arm's overrides, the given fields
    check_inputs(cfg)       the files the arm reads (v_hack, matched run of the same recipe) exist
    build_intervention(cfg) the intervention object the trainer calls at its hook points

Used by grpo.Trainer (build_intervention), loop/cli.py and scripts/train.py (configure), the drivers
(which runs, in which order, with which v_hack), scripts/results.py (paired differences from controls)
and the justfile (the arm recipes are generated from this table by `python scripts/gen_arm_recipes.py`;
scripts/verify_arms.py checks they agree). Adding an arm is one entry in ARMS (then regenerate the recipes).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from projected_grpo.loop import logs
from projected_grpo.loop.config import ConfigError, RunConfig, saved, with_fields
from projected_grpo.method import interventions as iv
from projected_grpo.method.pairs import HACK_PAIRS, PLACEBO_PAIRS

VhackKind = Literal["none", "shared", "own", "placebo", "placebo-own", "lora-own", "grpo-own", "trusted"]

INTERVENTIONS = ("none", "erase", "erase-random", "route", "route-random", "route-subset", "route-subset-signed",
                 "route-subset-matched", "capacity", "absorb", "oracle-route", "gt-penalty", "gt-screen", "rebound-adv",
                 "rebound", "tdga", "scorda")
"""The intervention kinds build_intervention builds."""

MATCHED = ("route-random", "route-subset", "route-subset-signed", "route-subset-matched")
"""Interventions that copy their per-step routed fraction from a matched run (--match-run)."""

ROUTING = ("route", "capacity", "absorb", "oracle-route", "scorda") + MATCHED
"""Interventions that train the quarantine block."""

RANDOM_DIRECTION = ("erase-random", "route-random")
"""Interventions that draw a random direction (interventions.random_direction) from --direction-seed."""

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
    overrides: dict = field(default_factory=dict)
    """RunConfig fields the arm fixes, by name, typed as the field (applied before the command line's; a field the
    command line gives too is noted in arm.json, the values the run used are in args.json)"""
    oracle: bool = False
    """reads ground-truth hack labels at training time (reference point only)"""
    vhack: VhackKind = "none"
    """which direction file it needs (VHACK_FILES: how each kind is extracted), or none"""
    matches: str = ""
    """arm whose run (same seed) gives this arm's per-step routed fraction (--match-run)"""
    controls: tuple[str, ...] = ()
    """arms this one is compared with (paired differences, same seeds)"""

    def __post_init__(self):
        assert self.intervention in INTERVENTIONS, f"{self.name}: unknown intervention {self.intervention!r}"
        assert "arm" not in self.overrides, f"{self.name}: an arm does not override the arm"
        with_fields(RunConfig(), **self.overrides)  # a ConfigError here is a registry typo


OWN = dict(quarantine="own")

LORA_RANK = 8
"""LoRA rank of the R6 arm (route-lora) and of its v_hack file (the distillation probe's R6 rank, docs/probe_distill.md)."""

LORA_ALPHA = 1.0
"""LoRA alpha of the R6 arm: its update is scaled by LORA_ALPHA / LORA_RANK = 1/8. At scale 1 the adapter collapsed
under the adopted recipe; 1.0 is what erratum 3's rule chose from a screen of vanilla on the LoRA adapter (amendment 4,
docs/results/2026-12-06_lora_screen/)."""

TRUSTED_K = 5
"""Rank of the trusted-span file; the tdga arms project onto its first --trusted-rank rows (1 and 5)."""

ARMS: tuple[Arm, ...] = (
    Arm("vanilla", "none",
        "with the loophole announced, GRPO raises the strict hack rate from the base rate to a majority"),
    Arm("rl-baseline", "none",
        "without a loophole in the prompts the hack rate stays near the base rate (RL baseline)",
        overrides=dict(loophole=False)),
    Arm("erase", "erase",
        "projecting v_hack out of the deployed block's gradient lowers the hack rate relative to vanilla",
        vhack="shared", controls=("erase-random", "erase-placebo")),
    Arm("erase-update", "erase",
        "projecting v_hack out of the deployed block's realised AdamW step lowers the hack rate relative to vanilla",
        overrides=dict(erase_target="update"), vhack="shared", controls=("erase", "erase-random")),
    Arm("erase-random", "erase-random",
        "a random direction of matched shape erased the same way does not lower the hack rate (direction matters)",
        vhack="shared"),
    Arm("erase-placebo", "erase",
        "erase with v_hack from placebo pairs (a contrast unrelated to hacking) does not lower the hack rate",
        vhack="placebo"),
    Arm("route", "route",
        "routing the top-scoring rollouts (cosine to v_grad) to an own-basis quarantine lowers the deployed hack rate",
        overrides=dict(OWN, route_frac=0.25), vhack="own",
        controls=("route-random", "route-subset", "route-subset-signed", "route-subset-matched", "route-negated")),
    Arm("route-negated", "route",
        "routing the top-scoring rollouts by cosine to -v_grad (the sign control) does not lower the deployed hack "
        "rate as route does (the hack-ward sign of v_grad matters)", overrides=dict(OWN, route_frac=0.25, negate=True),
        vhack="own"),
    Arm("route-random", "route-random",
        "routing the same fraction per step by a random direction does not lower the deployed hack rate "
        "(no shrinkage effect)", overrides=OWN, vhack="own", matches="route"),
    Arm("route-random-negated", "route-random",
        "routing the same fraction per step by the negation of route-random's direction (same --direction-seed) "
        "lowers the deployed hack rate as much as route-random does (a direction that knows nothing has no sign)",
        overrides=dict(OWN, negate=True), vhack="own", matches="route", controls=("route-random",)),
    Arm("route-subset", "route-subset",
        "routing a uniformly random subset at the route run's per-step fraction lowers the deployed solve rate as "
        "much as route does (the collapse is \"how many\", not \"which direction\")", overrides=OWN, matches="route"),
    Arm("route-subset-signed", "route-subset-signed",
        "a random subset that also matches the route run's per-step positive-advantage share among the routed "
        "reproduces route's deployed hack and solve rates (the effect is \"how many\" and \"which advantage sign\")",
        overrides=OWN, matches="route"),
    Arm("route-subset-matched", "route-subset-matched",
        "a random subset with the route run's per-step routed count in each (advantage sign, completion-length "
        "tercile) cell reproduces route's deployed hack and solve rates (the effect is \"how many\", \"which sign\" "
        "and \"how long\", not the direction)", overrides=OWN, matches="route"),
    Arm("route-placebo", "route",
        "routing by v_grad from placebo pairs (a contrast unrelated to hacking) lowers the deployed hack rate less "
        "than route (direction matters)", overrides=dict(OWN, route_frac=0.25), vhack="placebo-own"),
    Arm("capacity", "capacity",
        "two trained blocks without routing hack like vanilla (parameter count alone does not suppress hacking)",
        overrides=OWN),
    Arm("absorb", "absorb",
        "training both blocks on every rollout and ablating the quarantine removes part of the update "
        "(absorb-only control)", overrides=OWN),
    Arm("scorda-absorb", "scorda",
        "a quarantine block seeded with the pairs' signed activation contrast, both blocks trained on every rollout, "
        "absorbs hacking: deployment ablation lowers the deployed hack rate (held-out mechanisms too) more than "
        "absorb and scorda-reverse, at a small cost in no-hint solve",
        overrides=dict(OWN, axis="quarantine"), controls=("scorda-reverse", "absorb", "scorda-placebo")),
    Arm("scorda-placebo", "scorda",
        "the same quarantine seeded with the placebo pairs' activation contrast (a contrast unrelated to hacking; "
        "otherwise scorda-absorb) lowers the deployed hack rate less than scorda-absorb (the seed's direction matters)",
        overrides=dict(OWN, axis="quarantine", pairs=PLACEBO_PAIRS)),
    Arm("scorda-reverse", "scorda",
        "the same seed placed in the deployed block does not lower the deployed hack rate (directional control of "
        "scorda-absorb)", overrides=dict(OWN, axis="deployed")),
    Arm("rebound-adv", "rebound-adv",
        "lowering each rollout's advantage in proportion to its activation score against v_act from the pairs "
        "(oracle-free peer baseline in the style of Rebound) lowers the hack rate relative to vanilla",
        vhack="shared"),
    Arm("rebound", "rebound",
        "Rebound's Advantage Modification in its published form (the activation score against v_act z-scored within "
        "each group, only above-average rollouts penalised, multiplicatively, alpha 2; oracle-free peer baseline) "
        "lowers the hack rate relative to vanilla", vhack="shared", controls=("rebound-adv",)),
    Arm("tdga-r1", "tdga",
        "keeping only the part of each deployed-block gradient inside the rank-1 span of the pairs' clean "
        "completions' gradients (TDGA-style trusted-subspace projection) lowers the hack rate relative to vanilla",
        overrides=dict(trusted_rank=1), vhack="trusted", controls=("erase",)),
    Arm("tdga-r5", "tdga",
        "the same trusted-subspace projection onto the rank-5 span of the clean completions' gradients lowers the "
        "hack rate relative to vanilla, with less cost in no-hint solve than rank 1",
        overrides=dict(trusted_rank=TRUSTED_K), vhack="trusted", controls=("tdga-r1", "erase")),
    Arm("route-lora", "route",
        "routing the top-scoring rollouts by cosine to a v_grad extracted for the LoRA adapter (rank 8, its own "
        "quarantine B_hack) lowers the deployed hack rate as route does with the SVD adapter (R6: not an artefact "
        "of the SVD basis)", overrides=dict(OWN, route_frac=0.25, adapter="lora", rank=LORA_RANK, lora_alpha=LORA_ALPHA),
        vhack="lora-own"),
    Arm("route-grpo-vhack", "route",
        "routing by a v_grad extracted with the GRPO-contrastive loss (advantage +1 on the hack, -1 on the clean "
        "completion, summed over tokens as the training loss is) lowers the deployed hack rate at least as much as "
        "route's NLL v_grad (R7)", overrides=dict(OWN, route_frac=0.25), vhack="grpo-own", controls=("route",)),
    Arm("oracle-route", "oracle-route",
        "(UPPER BOUND, reads ground-truth labels) routing true hacks to the quarantine keeps the deployed model clean",
        overrides=OWN, oracle=True),
    Arm("gt-penalty", "gt-penalty",
        "(ORACLE peer baseline, reads labels) a ground-truth monitor of accuracy 1.0 with reward penalty prevents "
        "hacking", overrides=dict(monitor_accuracy=1.0), oracle=True),
    Arm("gt-penalty-acc90", "gt-penalty",
        "(ORACLE peer baseline, reads labels) a ground-truth monitor of accuracy 0.9 with reward penalty prevents "
        "hacking less reliably than at accuracy 1.0", overrides=dict(monitor_accuracy=0.9), oracle=True,
        controls=("gt-penalty",)),
    Arm("gt-screen", "gt-screen",
        "(ORACLE peer baseline, reads labels) screening flagged rollouts out of the batch prevents hacking",
        overrides=dict(monitor_accuracy=1.0), oracle=True),
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

@dataclass(frozen=True)
class VhackFile:
    """How one kind of direction file is extracted (scripts/extract_vhack_grad.py's flags: vhack_extract_args). The
    adapter fields must be those of every arm that reads the kind (scripts/verify_arms.py)."""

    pairs: str
    """the pair set"""
    quarantine: str = "shared"
    """the adapter's quarantine (shared or own)"""
    adapter: str = "svd"
    """the adapter kind (svd or lora)"""
    rank: int = -1
    """the adapter rank (-1: full rank, svd)"""
    loss: str = "nll"
    """v_grad's loss: nll, or grpo (the GRPO-contrastive loss, vhack.completion_grads)"""
    trusted_k: int = 0
    """> 0: the file is the trusted span of this rank from the pairs' clean sides (--trusted-span), not a v_hack"""

    def suffix(self) -> str:
        """_<adapter>[<rank>][_own][_grpo][_placebo][_trusted<k>]: the file name after the model tag."""
        parts = [f"_{self.adapter}{'' if self.rank == -1 else self.rank}", "_own" * (self.quarantine == "own"),
                 "_grpo" * (self.loss == "grpo"), "_placebo" * (self.pairs == PLACEBO_PAIRS),
                 f"_trusted{self.trusted_k}" * bool(self.trusted_k)]
        return "".join(parts)


VHACK_FILES: dict[str, VhackFile] = {
    "shared": VhackFile(HACK_PAIRS),
    "own": VhackFile(HACK_PAIRS, "own"),
    "placebo": VhackFile(PLACEBO_PAIRS),
    "placebo-own": VhackFile(PLACEBO_PAIRS, "own"),
    "lora-own": VhackFile(HACK_PAIRS, "own", adapter="lora", rank=LORA_RANK),
    "grpo-own": VhackFile(HACK_PAIRS, "own", loss="grpo"),
    "trusted": VhackFile(HACK_PAIRS, trusted_k=TRUSTED_K),
}
"""Each direction-file kind an arm may need (Arm.vhack), as extracted."""

PAIRS = {k: f.pairs for k, f in VHACK_FILES.items()}
"""The pair set each v_hack kind is extracted from."""


def arm(name: str) -> Arm:
    if name not in BY_NAME:
        raise ConfigError(f"--arm {name}: no such arm (registry: {', '.join(BY_NAME)})")
    return BY_NAME[name]


def model_tag(model: str) -> str:
    """organism:cpu -> organism_cpu (the file-name form of a model spec)."""
    return model.replace(":", "_").replace("/", "_")


def vhack_path(kind: VhackKind, model: str) -> str:
    """Where the direction file of a kind lives for a model: out/vhack/<model tag><VhackFile.suffix>.safetensors
    (e.g. organism_cpu_svd_own.safetensors)."""
    assert kind != "none", "this arm needs no v_hack"
    return f"out/vhack/{model_tag(model)}{VHACK_FILES[kind].suffix()}.safetensors"


def vhack_extract_args(kind: VhackKind, model: str, device: str = "") -> list[str]:
    """scripts/extract_vhack_grad.py arguments that write vhack_path(kind, model) as VHACK_FILES[kind] says, on
    `device` ('' = the script's default); a file names the device and dtype it was extracted on, and a run loads only
    a file of its own (vhack.load_tensors)."""
    f = VHACK_FILES[kind]
    args = ["--pairs", f.pairs, "--model", model, "--quarantine", f.quarantine, "--out", vhack_path(kind, model)]
    if device:
        args += ["--device", device]
    if (f.adapter, f.rank) != ("svd", -1):
        args += ["--adapter", f.adapter, "--rank", str(f.rank)]
    if f.loss != "nll":
        args += ["--loss", f.loss]
    if f.trusted_k:
        args += ["--trusted-span", "--k", str(f.trusted_k)]
    return args


def match_run(a: Arm, runs_dir: str, seed: int) -> str:
    return f"{runs_dir}/{a.matches}_s{seed}"


def arm_fields() -> set[str]:
    """The fields some registry arm sets (they differ between the arms of one table by design)."""
    return {k for a in ARMS for k in a.overrides}


def recipe(args: dict) -> dict:
    """A run's training recipe from its args.json: its configuration (logs.config) without what an arm sets (the
    intervention's fields and the fields some registry arm overrides, arm_fields); runs of different arms compared in
    one table share it."""
    skip = set(args.get("intervention", {})) | arm_fields()
    return {k: v for k, v in logs.config(args).items() if k not in skip}


def read_recipe(run_dir: str | Path) -> dict:
    return recipe(logs.read_args(run_dir))


# ---- from a command line to the intervention ---------------------------------------------------------

def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def configure(given: dict) -> tuple[RunConfig, list[str]]:
    """The run configuration of a command line: RunConfig's defaults, then the arm's overrides, then the fields the
    command line gives (`given`, by field name), then resolve. Also the flags the command line gives that override
    the arm's. No file is read."""
    a = arm(given.get("arm", "vanilla"))
    cfg = with_fields(with_fields(RunConfig(), **a.overrides), **given)
    return resolve(cfg), sorted(flag(k) for k in set(a.overrides) & set(given))


def resolve(cfg: RunConfig) -> RunConfig:
    """The defaults that depend on other fields filled in: the v_hack file the registry names for the model, and the
    matched run <out_dir>/<matched arm>_s<seed>."""
    a, i = arm(cfg.intervention.arm), cfg.intervention
    if a.vhack != "none" and not i.vhack:
        cfg = with_fields(cfg, vhack=vhack_path(a.vhack, cfg.model))
    if a.intervention in MATCHED and not i.match_run:
        cfg = with_fields(cfg, match_run=match_run(a, cfg.out_dir, cfg.seed))
    if a.intervention in RANDOM_DIRECTION and i.direction_seed == -1:
        cfg = with_fields(cfg, direction_seed=cfg.seed)
    return cfg


def check_inputs(cfg: RunConfig) -> None:
    """The files the arm reads: its v_hack, and for a matched control a finished run of the same recipe
    (ConfigError naming the flag otherwise)."""
    a, i = arm(cfg.intervention.arm), cfg.intervention
    if i.negate and a.intervention not in ("route", "route-random"):
        raise ConfigError(f"--negate: --arm {a.name} routes by no direction (route and route-random arms only)")
    if i.vhack and not Path(i.vhack).exists():
        kind = a.vhack if a.vhack != "none" else "shared"
        raise ConfigError(f"--vhack {i.vhack}: no such file (extract it: python scripts/extract_vhack_grad.py "
                          f"{' '.join(vhack_extract_args(kind, cfg.model, cfg.device))})")
    if a.intervention not in MATCHED:
        return
    run = Path(i.match_run)
    if i.match_follow:
        if a.intervention == "route-subset-matched":
            raise ConfigError(f"--match-follow: --arm {a.name} reads the matched run's step logs (not built)")
        wait_for(run / "args.json", FOLLOW_TIMEOUT_S)  # the matched run, started beside this one, writes it first
        matched = logs.read_args(run).get("intervention", {}).get("arm")
        if matched != a.matches:  # a follower cannot wait for a key to be missing: the arm says what the run logs
            raise ConfigError(f"--match-run {run}: a {matched} run, not {a.matches} (--arm {a.name} matches {a.matches})")
    elif not (run / "metrics.jsonl").exists():
        raise ConfigError(f"--match-run {run}: no metrics.jsonl (run the {a.matches} arm of this seed first)")
    if not (run / "args.json").exists():
        raise ConfigError(f"--match-run {run}: no args.json (not a run folder)")
    try:
        diff = logs.differences(read_recipe(run), recipe(saved(cfg)))
    except ValueError as e:
        raise ConfigError(f"--match-run {run}: {e}") from None
    if diff:
        k, (have, asked) = next(iter(diff.items()))
        raise ConfigError(f"--match-run {run}: trained with {k} {have}, this run has {asked} (a matched control "
                          f"copies its schedule from a run of the same recipe)")


def matched_values(rows: list[dict], key: str) -> list[float]:
    """Per-step values of `key` in metrics rows; a step without it (nothing trained) or with nan (nothing routed)
    reads 0."""
    vals = [r.get(key, 0.0) for r in sorted(rows, key=lambda r: r["step"])]
    return [0.0 if math.isnan(v) else float(v) for v in vals]


def matched_schedule(run: str, key: str, follow: bool = False) -> list[float] | FollowedSchedule:
    """The matched run's per-step values of metrics.jsonl's `key` (matched_values); follow: read as it logs them."""
    if follow:
        return FollowedSchedule(run, key)
    m = logs.read_jsonl(Path(run) / "metrics.jsonl")
    if not any(key in r for r in m):
        raise ConfigError(f"--match-run {run}: no metrics.jsonl with '{key}' (a route run logged by this version)")
    return matched_values(m, key)


FOLLOW_TIMEOUT_S = 1800.0
"""--match-follow: the longest wait for the matched run's next row before the run fails"""


class FollowedSchedule:
    """A matched run's per-step values read while that run is still training (--match-follow). Entry t is the value
    matched_schedule would give once the run has finished: it waits until the run's metrics.jsonl (rewritten whole,
    atomically, after every step) has step t's row. Its length is the run's step count (args.json), so a step past
    it reads the last entry, as with a finished run's list. Each read also checks that the rows of the steps read
    before still hold the values read then: a matched folder started afresh under the follower fails a later read
    where its values differ (not one whose values match, nor after the last read). A driver that follows therefore
    starts from empty run folders (scripts/bench_runs.py --follow removes them)."""

    def __init__(self, run: str, key: str, timeout: float = FOLLOW_TIMEOUT_S, poll: float = 0.1):
        self.run, self.key, self.timeout, self.poll = Path(run), key, timeout, poll
        self.steps = int(logs.read_args(self.run)["steps"])
        self.seen: list[float] = []

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, step: int) -> float:
        assert 0 <= step < len(self), f"--match-run {self.run}: step {step} of a {len(self)}-step run"
        end = time.monotonic() + self.timeout
        while True:
            rows = logs.read_jsonl(self.run / "metrics.jsonl")
            if len(rows) > step:
                break
            if time.monotonic() > end:
                raise TimeoutError(f"--match-run {self.run}: no row for step {step} within {self.timeout:.0f} s "
                                   f"(--match-follow)")
            time.sleep(self.poll)
        vals = matched_values(rows, self.key)
        assert [r["step"] for r in sorted(rows, key=lambda r: r["step"])] == list(range(len(rows))), (
            f"--match-run {self.run}: metrics.jsonl steps are not 0..{len(rows) - 1}")
        assert vals[:len(self.seen)] == self.seen[:len(vals)], (
            f"--match-run {self.run}: its rows changed while followed (the run was started again under this one)")
        self.seen = vals[:step + 1]
        return vals[step]


def matched_cells(run: str) -> list[tuple[list[int], int]]:
    """Per step of the matched run's step logs: its routed rollouts' counts per (advantage sign, completion-length
    tercile) cell among the step's trained rollouts (interventions.rollout_cells, in row order as the trainer sees
    them), and the number of trained rollouts. Reads advantages, lengths and regions, no label."""
    files = logs.step_files(Path(run))
    if not files:
        raise ConfigError(f"--match-run {run}: no step logs (route-subset-matched reads the routed rollouts' cells)")
    out = []
    for f in files:
        rows = [r for r in logs.read_step(f) if r["trained"]]
        if not rows:
            out.append(([0] * iv.N_CELLS, 0))
            continue
        adv = torch.tensor([float(r["advantage"]) for r in rows])
        cells = iv.rollout_cells(adv, torch.tensor([int(r["length"]) for r in rows]))
        routed = torch.tensor([r.get("region") == "route" for r in rows])
        out.append((iv.cell_counts(routed, cells), len(rows)))
    steps = [int(f.name.split("_")[1].split(".")[0]) for f in files]
    assert steps == list(range(len(files))), f"--match-run {run}: step logs not steps 0..{len(files) - 1}"
    return out


def wait_for(path: Path, timeout: float) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > end:
            raise ConfigError(f"--match-follow: {path} did not appear within {timeout:.0f} s")
        time.sleep(0.1)


def build_intervention(cfg: RunConfig) -> iv.NoIntervention:
    """The intervention object of the arm's intervention kind (INTERVENTIONS), from the run configuration."""
    i, seed = cfg.intervention, cfg.seed
    kind = arm(i.arm).intervention
    V = iv.LazyVhack(i.vhack) if i.vhack else None
    if kind == "none":
        return iv.NoIntervention()
    if kind in ("gt-penalty", "gt-screen"):
        return iv.GroundTruthMonitor(mode=kind.split("-")[1], accuracy=i.monitor_accuracy, seed=seed)
    if kind in ("erase", "erase-random"):
        return iv.Erase(V, one_sided=not i.two_sided, target=i.erase_target, random=kind == "erase-random",
                        direction_seed=i.direction_seed)
    if kind == "route":
        return iv.Route(V, gate="grad", t_absorb=i.t_absorb, t_route=i.t_route, route_frac=i.route_frac,
                        negate=i.negate)
    if kind in MATCHED:
        frac = matched_schedule(i.match_run, "routed_frac", i.match_follow)
        pos = matched_schedule(i.match_run, "pos_share_routed", i.match_follow) if kind == "route-subset-signed" else None
        cells = matched_cells(i.match_run) if kind == "route-subset-matched" else None
        gate = {"route-random": "random", "route-subset": "subset", "route-subset-signed": "subset-signed",
                "route-subset-matched": "subset-cells"}[kind]
        return iv.Route(V, gate=gate, match_frac=frac, seed=seed, match_pos_share=pos,
                        direction_seed=i.direction_seed, negate=i.negate, match_cells=cells)
    if kind in ("capacity", "absorb", "oracle-route"):
        return iv.Route(None, gate={"capacity": "none", "absorb": "absorb", "oracle-route": "oracle"}[kind])
    if kind == "scorda":
        return iv.SeededAbsorb(pairs=i.pairs)
    if kind == "tdga":
        assert i.vhack, "tdga needs a trusted-span file (--vhack)"
        return iv.TrustedProjection(i.vhack, rank=i.trusted_rank)
    if kind == "rebound":
        return iv.AdvantageModification(V, alpha=i.rebound_alpha, group=cfg.group)
    assert kind == "rebound-adv", kind
    return iv.ReboundAdvantage(V, beta=i.rebound_beta)


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
