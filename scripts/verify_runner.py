"""Gate: the experiment runner's schedule (scripts/_runner.jobs).

- a matched arm (route-random, route-subset, route-subset-signed) waits for its matched run when that run
  is scheduled in the same call, including a rerun with --fresh whose old DONE file is still on disk
- a matched run finished in an earlier call is not scheduled again and is not waited on (the bug that
  left the matched arms of the 2026-11-24 headline's second device call waiting until the budget ran out)
- finished runs are skipped unless --fresh
- the drivers' shared flags refuse bad input in one line (exit 2): `--lr` after `--` (it would reach train.py
  twice), an unknown arm, seeds that are not integers
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _gate_common import run_gate  # noqa: E402

import _runner  # noqa: E402


def schedule(runs: Path, fresh: bool) -> dict[str, list[str]]:
    plan = _runner.Plan(arms=["route-random", "route-subset"], seeds=[0], model="organism:tiny", runs=str(runs),
                        steps=2, eval_every=0, device="cpu", extra=[], fresh=fresh)
    return {name: waits for name, _, waits in _runner.jobs(plan)}


def refused(argv: list[str]) -> str:
    """The one-line message plan_from_args gives for argv, or '' when it accepts it."""
    ap = argparse.ArgumentParser()
    _runner.add_plan_args(ap, ("vanilla",), seeds="0", eval_every=0, device="cpu", runs="out/x", parallel=1,
                          budget_min=1.0)
    msgs = []

    def fail(msg: str) -> None:
        msgs.append(msg)
        raise SystemExit(2)

    try:
        plan = _runner.plan_from_args(ap.parse_args(argv), fail)
    except SystemExit as e:
        assert e.code == 2 and len(msgs) == 1, (e.code, msgs)
        return msgs[0]
    assert all(plan.extra.count(f) == 1 for f in _runner.RECIPE_FLAGS), plan.extra
    return ""


def check_flags() -> None:
    assert refused(["--arms", "vanilla,route", "--seeds", "0,1", "--", "--group", "4"]) == ""
    assert "--lr after --" in refused(["--", "--lr", "0.1"])
    assert "--lr after --" in refused(["--", "--lr=0.1"])
    assert "--weight-decay after --" in refused(["--", "--weight-decay", "0"])
    assert "--weight-decay-quarantine after --" in refused(["--", "--weight-decay-quarantine=0"])
    assert "unknown arm 'nope'" in refused(["--arms", "vanilla,nope"])
    assert "--seeds" in refused(["--seeds", "0,x"])


def main() -> None:
    check_flags()
    with tempfile.TemporaryDirectory() as d:
        runs = Path(d)
        s = schedule(runs, fresh=False)
        assert set(s) == {"route_s0", "route-random_s0", "route-subset_s0"}, s
        assert s["route_s0"] == [] and s["route-random_s0"] == ["route_s0"] == s["route-subset_s0"], s
        (runs / "route_s0").mkdir()
        (runs / "route_s0" / "DONE").touch()
        s = schedule(runs, fresh=False)
        assert set(s) == {"route-random_s0", "route-subset_s0"}, f"a finished run scheduled again: {s}"
        assert all(w == [] for w in s.values()), f"waits on a run finished in an earlier call: {s}"
        s = schedule(runs, fresh=True)
        assert "route_s0" in s and s["route-random_s0"] == ["route_s0"], f"--fresh rerun not waited on: {s}"
        (runs / "route-random_s0").mkdir()
        (runs / "route-random_s0" / "DONE").touch()
        assert "route-random_s0" not in schedule(runs, fresh=False)
    print("PASS verify_runner: matched arms wait for a matched run scheduled in the same call (also under --fresh), "
          "not for one finished earlier; finished runs skipped unless --fresh; bad driver flags refused with one line")


if __name__ == "__main__":
    run_gate("verify_runner", main)
