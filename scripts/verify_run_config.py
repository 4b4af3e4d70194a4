"""Gate: a run folder holds the run's whole configuration, and runs are pooled, paired or skipped by all of it.

1. Two 1-step runs of the route arm on the tiny organism, started as the drivers start them (_runner.train_cmd), one
   with `--route-frac 0.5` on the command line, one without: args.json records route_frac 0.5 (the command line's
   value over the registry's) and 0.25 (the registry's). Every scripts/train.py flag is in args.json with the value
   the run used (config.RunConfig's fields, the intervention's under `intervention`; --vhack as given).
2. results.py refuses to pool the two into one cell: exit 2, one line naming route_frac and no other field (seed,
   run name and output folder differ too, and are logs.CONFIG_EXCLUDED); --allow-mixed pools them.
3. The drivers' skip check (_runner.refuse_other_config) refuses the finished 0.5 run for a call that asks the
   registry's 0.25, naming route_frac, and accepts it for a call that asks 0.5.
"""

from __future__ import annotations

import contextlib
import io
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from _gate_common import run_gate  # noqa: E402

from projected_grpo.loop import cli, config, logs  # noqa: E402
from projected_grpo.method import arms  # noqa: E402

TINY = ["--prompts-per-step", "2", "--group", "4", "--n-train", "8", "--n-eval", "1", "--eval-samples", "1",
        "--max-new-tokens", "16"]


def make_vhack(path: Path) -> None:
    """A v_hack for the tiny organism's own-quarantine adapter from 2 pairs (the route arm loads it at setup)."""
    from projected_grpo.method import adapters as ad
    from projected_grpo.method import vhack
    from projected_grpo.loop.models import load_policy
    from projected_grpo.method.pairs import load_pairs

    model, tok = load_policy("organism:tiny", "cpu")
    ad.wrap_model(model, ad.AdapterConfig(kind="svd", quarantine="own"))
    V, _ = vhack.extract(model, tok, load_pairs(arms.PAIRS["own"])[:2], device="cpu", heldout_every=0)
    vhack.save_vhack(path, V, model, {})


def plan(runs: Path, vhack: Path, *flags: str):
    import _runner

    return _runner.Plan(arms=["route"], seeds=[0, 1], model="organism:tiny", runs=str(runs), steps=1, eval_every=0,
                        device="cpu", extra=[*TINY, "--vhack", str(vhack), *flags])


def refusal(fn, *args) -> str:
    """fn(*args)'s one-line refusal on stderr (exit 2), or '' when it returns."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            fn(*args)
        except SystemExit as e:
            assert e.code == 2, (e.code, err.getvalue()[-500:])
            lines = err.getvalue().strip().splitlines()
            assert len(lines) == 1, lines
            return lines[0]
    return ""


def check_saved(run: Path, argv: list[str]) -> dict:
    """args.json holds every train.py flag with the value train.py resolved for this command line."""
    saved = logs.read_args(run)
    flat = {**{k: v for k, v in saved.items() if k != "intervention"}, **saved.get("intervention", {})}
    parsed = config.flat(arms.configure(cli.given_fields(argv))[0])
    flags = train_flags()
    missing = [f for f in flags if f not in flat]
    assert not missing, f"{run.name}/args.json lacks the flags {missing}"
    wrong = {f: (flat[f], parsed[f]) for f in flags if flat[f] != parsed[f]}
    assert not wrong, f"{run.name}/args.json records other values than the run used: {wrong}"
    return flat


def train_flags() -> list[str]:
    """The fields of train.py's flags (its parser: loop/cli.run_parser)."""
    return [x.dest for x in cli.run_parser()._actions if x.dest != "help"]


def main() -> None:
    import _runner
    import results
    import train

    with tempfile.TemporaryDirectory() as t:
        t = Path(t)
        runs, vh = t / "runs", t / "v_own.safetensors"
        make_vhack(vh)
        half, default = plan(runs, vh, "--route-frac", "0.5"), plan(runs, vh)
        argv = {0: _runner.train_cmd(half, "route", 0)[2:], 1: _runner.train_cmd(default, "route", 1)[2:]}
        with contextlib.redirect_stderr(io.StringIO()):
            for seed, cmd in argv.items():
                train.main(cmd)
        cfg = {seed: check_saved(runs / f"route_s{seed}", cmd) for seed, cmd in argv.items()}
        registry = arms.arm("route").overrides["route_frac"]
        assert cfg[0]["route_frac"] == 0.5, f"route_s0 ran with --route-frac 0.5, args.json says {cfg[0].get('route_frac')}"
        assert cfg[1]["route_frac"] == registry == 0.25, f"route_s1: args.json says {cfg[1].get('route_frac')}, " \
                                                          f"the registry {registry}"
        assert cfg[0]["arm"] == cfg[1]["arm"] == "route" and cfg[0]["quarantine"] == "own", cfg[0]
        diff = logs.differences(logs.read_config(runs / "route_s0"), logs.read_config(runs / "route_s1"))
        assert list(diff) == ["route_frac"], f"the two runs' configurations differ in {diff}, not in route_frac alone"

        out = ["--out", str(t / "res"), "--no-plots"]
        msg = refusal(results.main, ["--runs", str(runs), *out])
        assert msg.startswith("results: runs of route differ in {'route_frac': [0.25, 0.5]} (route_frac: seed 0: 0.5, "
                              "seed 1: 0.25)"), f"results.py pooled runs that differ in route_frac: {msg!r}"
        with contextlib.redirect_stdout(io.StringIO()):
            res = results.main(["--runs", str(runs), *out, "--allow-mixed"])
        assert res["arms"]["route"]["n"] == 2, res["arms"]["route"]["n"]

        (runs / "route_s1" / "DONE").unlink()  # the skip check for seed 0 alone
        for bad in (["--lora-alpha", "2"], ["--adapter", "lora", "--rank", "8", "--lora-alpha", "0"]):
            line = refusal(train.main, ["--arm", "vanilla", "--model", "organism:tiny", "--steps", "1", "--out-dir", str(t), *bad])
            assert "--lora-alpha" in line, f"{bad}: not refused by name ({line!r})"
        skip = refusal(_runner.refuse_other_config, default, fail)
        assert "route_s0 finished with route_frac 0.5, this call asks 0.25" in skip, \
            f"a finished run of another route_frac would be skipped: {skip!r}"
        assert refusal(_runner.refuse_other_config, half, fail) == ""
    print(f"PASS run_config: args.json of a 1-step route run holds all {len(train_flags())} train.py "
          f"flags with the values used (route_frac 0.5 from the command line, {registry} from the registry); "
          f"results.py refuses to pool them ({msg.split(' (')[0]!r}), --allow-mixed pools them; the drivers refuse "
          f"to skip the finished 0.5 run for a call asking {registry}; excluded fields: {', '.join(logs.CONFIG_EXCLUDED)}")


def fail(msg: str) -> None:
    print(msg, file=sys.stderr)
    raise SystemExit(2)


if __name__ == "__main__":
    run_gate("verify_run_config", main)
