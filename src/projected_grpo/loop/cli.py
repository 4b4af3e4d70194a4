"""Dataclass -> argparse: every field is a flag, its attribute docstring is the help text; the run's command line.

    run_parser(prog)          every RunConfig field (and its intervention's) as a flag
    given_fields(argv)        the fields a command line gives (arms.configure turns them into a RunConfig)
    run_config(argv, prog)    a command line -> (checked RunConfig, flags that override the arm's); a bad value or a
                              missing input file exits 2 with one line naming the flag
    train(argv, prog)         scripts/train.py: that configuration's run, arm.json beside it; with `--seeds 0,1,2`
                              the runs of those seeds in one process (train_batched; `--direction-seeds` one each)
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import json
import os
import sys
import textwrap
from pathlib import Path

from projected_grpo.loop import grpo
import torch

from projected_grpo.loop.config import ConfigError, InterventionConfig, RunConfig, batchable, check, with_fields
from projected_grpo.method import arms


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line naming the flag, exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message}\n")


def field_docs(cls) -> dict[str, str]:
    """Docstrings written under dataclass fields (a string expression right after the annotation)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body
    docs = {}
    for a, b in zip(body, body[1:]):
        if isinstance(a, ast.AnnAssign) and isinstance(b, ast.Expr) and isinstance(getattr(b, "value", None), ast.Constant):
            docs[a.target.id] = " ".join(str(b.value.value).split())
    return docs


def add_dataclass_args(ap: argparse.ArgumentParser, cls, skip: tuple[str, ...] = (), given_only: bool = False) -> None:
    """Every field of `cls` as a flag of its default's type. given_only: a flag not on the command line is absent
    from the parsed namespace (the help still shows the default)."""
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip or f.type in ("dict", dict) or dataclasses.is_dataclass(f.default_factory):
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        flag = "--" + f.name.replace("_", "-")
        help_ = f"{docs.get(f.name, '')} (default: {default!r})"
        parsed_default = argparse.SUPPRESS if given_only else default
        if isinstance(default, bool):
            ap.add_argument(flag, action=argparse.BooleanOptionalAction, default=parsed_default, help=help_)
        else:
            ap.add_argument(flag, type=type(default), default=parsed_default, help=help_)


def dataclass_from_args(cls, ns: argparse.Namespace, **extra):
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in vars(ns).items() if k in names}, **extra)


def run_parser(prog: str = "train.py", description: str = "") -> Parser:
    """The run's flags: the arm and its intervention's first, then the trainer's; only the given ones are parsed."""
    ap = Parser(prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataclass_args(ap, InterventionConfig, given_only=True)
    add_dataclass_args(ap, RunConfig, given_only=True)
    return ap


def given_fields(argv: list[str], prog: str = "train.py", description: str = "") -> dict:
    """The fields a command line gives, by name (argparse's one-line error and exit 2 on a malformed value)."""
    return vars(run_parser(prog, description).parse_args(argv))


def run_config(argv: list[str], prog: str = "train.py", description: str = "") -> tuple[RunConfig, list[str]]:
    """A command line's run configuration (arms.configure), checked (config.check, and the files it reads:
    arms.check_inputs), and the flags in it that override the arm's. Bad input: one line `prog: --flag value: why` on
    stderr, exit status 2."""
    given = given_fields(argv, prog, description)
    try:
        cfg, overridden = arms.configure(given)
        check(cfg)
        arms.check_inputs(cfg)
    except ConfigError as e:
        fail(prog, str(e))
    return cfg, overridden


def fail(prog: str, msg: str):
    """Bad command-line input: one line on stderr, exit status 2."""
    print(f"{prog}: {msg}", file=sys.stderr)
    raise SystemExit(2)


def record_arm(cfg: RunConfig, overridden: list[str]) -> None:
    """arm.json in the run folder: the registry arm, the fields it fixed and the flags the command line overrode (the
    values the run used are args.json's)."""
    spec, i = arms.arm(cfg.intervention.arm), cfg.intervention
    d = Path(cfg.out_dir) / cfg.run
    d.mkdir(parents=True, exist_ok=True)
    (d / "arm.json").write_text(json.dumps(dict(arm=spec.name, intervention=spec.intervention, overrides=spec.overrides,
                                                overridden=overridden, oracle=spec.oracle, vhack=i.vhack,
                                                match_run=i.match_run), indent=1))


def pop_list(argv: list[str], flag: str, prog: str) -> tuple[list[str], list[int]]:
    """(argv without `flag A,B,...`, those integers; none when absent). A malformed list: one line, exit 2."""
    if flag not in argv:
        return argv, []
    i = argv.index(flag)
    try:
        values = [int(x) for x in argv[i + 1].split(",")]
        assert values and len(set(values)) == len(values) and min(values) >= 0
    except (IndexError, ValueError, AssertionError):
        fail(prog, f"{flag} {' '.join(argv[i + 1:i + 2])!r}: distinct non-negative integers separated by commas")
    return argv[:i] + argv[i + 2:], values


def split_seeds(argv: list[str], prog: str) -> tuple[list[str], list[int], list[int]]:
    """(argv without `--seeds A,B,...` and `--direction-seeds D,E,...`, the seeds, the direction seeds (one per seed,
    or none)). Bad lists, or --seed / --direction-seed beside them: one line, exit 2."""
    argv, seeds = pop_list(argv, "--seeds", prog)
    argv, dseeds = pop_list(argv, "--direction-seeds", prog)
    if seeds and "--seed" in argv:
        fail(prog, "--seed and --seeds: give one of them")
    if dseeds and (len(dseeds) != len(seeds) or "--direction-seed" in argv):
        fail(prog, "--direction-seeds: one per --seeds entry, without --direction-seed")
    return argv, seeds, dseeds


def train_batched(argv: list[str], seeds: list[int], prog: str = "train.py", description: str = "",
                  direction_seeds: list[int] | None = None) -> list[Path]:
    """The runs of one arm at several training seeds in one process (grpo.Trainer over their configurations, issue
    28), each in its folder <run>_s<seed> (--run, else the arm's name), run k with direction seed direction_seeds[k]
    when given; their folders."""
    given = given_fields(argv, prog, description)
    if "match_run" in given and len(seeds) > 1:
        fail(prog, "--match-run with --seeds: every seed would match one run; leave it out (each seed's own run)")
    base = given.get("run", given.get("arm", "vanilla"))
    cfgs = []
    for k, seed in enumerate(seeds):
        extra = ["--direction-seed", str(direction_seeds[k])] if direction_seeds else []
        cfg, overridden = run_config(argv + ["--seed", str(seed), "--run", f"{base}_s{seed}"] + extra, prog,
                                     description)
        record_arm(cfg, overridden)
        cfgs.append(cfg)
    if not batchable(cfgs):
        fail(prog, "--seeds: these runs differ in more than their seed and run folder; start them separately")
    torch.manual_seed(seeds[0])
    return grpo.Trainer(cfgs).run()


def train(argv: list[str], prog: str = "train.py", description: str = "") -> Path | list[Path]:
    """One run of a registry arm from its command line (scripts/train.py); returns its folder. With `--seeds A,B,..`
    the runs of those seeds in one process (train_batched)."""
    argv, seeds, dseeds = split_seeds(argv, prog)
    if seeds:
        return train_batched(argv, seeds, prog, description, dseeds)
    if dseeds:
        fail(prog, "--direction-seeds goes with --seeds (one run: --direction-seed)")
    cfg, overridden = run_config(argv, prog, description)
    spec = arms.arm(cfg.intervention.arm)
    if overridden:
        print(f"note: --arm {spec.name}: {', '.join(overridden)} given on the command line overrides the registry's "
              f"{spec.overrides}", file=sys.stderr)
    if int(os.environ.get("RANK", "0")) == 0:
        record_arm(cfg, overridden)
    if spec.intervention in arms.ROUTING and cfg.quarantine == "shared" and spec.name != "capacity":
        print(f"note: --arm {spec.name} with --quarantine shared: the two blocks get identical gradients "
              "(the shrinkage null); use --quarantine own for structural separation", file=sys.stderr)
    return grpo.train(cfg)
