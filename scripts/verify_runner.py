"""Gate: the experiment runner's schedule (scripts/_runner.jobs).

- a matched arm (route-random, route-subset, route-subset-signed) waits for its matched run when that run
  is scheduled in the same call, including a rerun with --fresh whose old DONE file is still on disk
- a matched run finished in an earlier call is not scheduled again and is not waited on (the bug that
  left the matched arms of the 2026-11-24 headline's second device call waiting until the budget ran out)
- finished runs are skipped unless --fresh
- the drivers' shared flags refuse bad input in one line (exit 2): `--lr` after `--` (it would reach train.py
  twice), an unknown arm, seeds that are not integers
- a finished run is skipped only when its saved configuration (args.json, the intervention's flags included) equals
  the one the call would run in every field but logs.CONFIG_EXCLUDED; otherwise refused naming the field
- a process stopped at the deadline counts a run that wrote DONE during the job as done (an older DONE does not)
- preloaded (CPU drivers): a v_hack extraction in a forked child of the runner writes the same tensors and metadata as the
  extraction script run in-process with one torch thread; a failing one raises with its output
- main_experiment's job order (_runner.longest_first): the same jobs, the waited-for runs first, then the quarantine
  arms, then the rest
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import lzma
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _gate_common import full_tier, run_gate  # noqa: E402

import _runner  # noqa: E402

from projected_grpo.env import rollouts  # noqa: E402
from projected_grpo.loop import cli, logs  # noqa: E402
from projected_grpo.method import arms  # noqa: E402


def schedule(runs: Path, fresh: bool) -> dict[str, list[str]]:
    plan = _runner.Plan(arms=["route-random", "route-subset"], seeds=[0], model="organism:tiny", runs=str(runs),
                        steps=2, eval_every=0, device="cpu", extra=[], fresh=fresh)
    return {name: waits for name, _, waits, _ in _runner.jobs(plan)}


def check_longest_first(runs: Path) -> None:
    """main_experiment's order (_runner.longest_first): the same jobs; the runs others wait for first, then the arms
    that train a quarantine block, then the rest, the arm with no intervention last, each group in jobs' order."""
    plan = _runner.Plan(arms=list(arms.MAIN), seeds=[0, 1], model="organism:tiny", runs=str(runs), steps=2,
                        eval_every=0, device="cpu", extra=[], fresh=False)
    jobs = _runner.jobs(plan)
    got = [j[0] for j in _runner.longest_first(jobs)]
    assert sorted(got) == sorted(j[0] for j in jobs), got
    want = ["route_s0", "route_s1", "route-subset_s0", "route-subset_s1", "scorda-absorb_s0", "scorda-absorb_s1",
            "erase_s0", "erase_s1", "vanilla_s0", "vanilla_s1"]
    assert got == want, f"longest_first order {got}, expected {want}"


def check_packing(runs: Path) -> None:
    """--runs-per-process 2 over seeds 0, 1, 2: one job per two seeds of an arm (train.py --seeds, no --run), the
    matched arm's job waiting for the matched runs of exactly its seeds; each job names the runs it trains, and the
    planned configuration of each run is the one-run command's."""
    plan = _runner.Plan(arms=["route-random"], seeds=[0, 1, 2], model="organism:tiny", runs=str(runs), steps=2,
                        eval_every=0, device="cpu", extra=[], runs_per_process=2)
    got = {name: (cmd, waits, rs) for name, cmd, waits, rs in _runner.jobs(plan)}
    assert set(got) == {"route_s0,1", "route_s2", "route-random_s0,1", "route-random_s2"}, sorted(got)
    cmd, waits, rs = got["route-random_s0,1"]
    assert waits == ["route_s0", "route_s1"] and rs == ["route-random_s0", "route-random_s1"], (waits, rs)
    assert cmd[cmd.index("--seeds") + 1] == "0,1" and "--run" not in cmd and "--seed" not in cmd, cmd
    assert got["route-random_s2"][1] == ["route_s2"], got["route-random_s2"]
    plan.direction_seed_offset = 1000  # random-direction arms: --direction-seed 1000 + seed, one per packed seed
    cmd = {name: c for name, c, _, _ in _runner.jobs(plan)}["route-random_s0,1"]
    assert cmd[cmd.index("--direction-seeds") + 1] == "1000,1001", cmd
    assert "--direction-seed" not in {name: c for name, c, _, _ in _runner.jobs(plan)}["route_s0,1"]
    plan.runs_per_process = 1
    single = {name: c for name, c, _, _ in _runner.jobs(plan)}["route-random_s2"]
    assert single[single.index("--direction-seed") + 1] == "1002", single
    from projected_grpo.method import arms
    cfg = arms.configure(cli.given_fields(single[2:]))[0]
    assert cfg.intervention.direction_seed == 1002, cfg.intervention
    plan.runs_per_process, plan.direction_seed_offset = 2, -1
    one = _runner.train_cmd(plan, "route", 2)
    assert [x for x in got["route_s2"][0] if x not in ("--seeds", "--seed", "2", "--run", "route_s2")] == \
        [x for x in one if x not in ("--seeds", "--seed", "2", "--run", "route_s2")], (got["route_s2"][0], one)


def planned(argv: list[str]):
    """plan_from_args on argv: (the Plan or None, the one-line refusal or '')."""
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
        return None, msgs[0]
    assert all(plan.extra.count(f) == 1 for f in _runner.RECIPE_FLAGS), plan.extra
    return plan, ""


def refused(argv: list[str]) -> str:
    return planned(argv)[1]


def train_values(cmd: list[str]) -> dict:
    """The recipe values train.py would read from a command line (its own parser)."""
    a, _ = cli.run_config(["--arm", "vanilla", "--run", "x", *cmd])
    return dict(lr=a.lr, weight_decay=a.weight_decay, weight_decay_quarantine=a.weight_decay_quarantine)


def check_recipe_values() -> None:
    """The organism recipe reaches train.py with its values: the defaults, and given values unchanged, from the
    shared plan (headline, main) and from emergence.py."""
    import emergence
    from projected_grpo.method import arms
    default = dict(lr=arms.ORGANISM_LR, weight_decay=arms.ORGANISM_WEIGHT_DECAY,
                   weight_decay_quarantine=arms.ORGANISM_WEIGHT_DECAY)
    given = dict(lr=0.02, weight_decay=0.3, weight_decay_quarantine=0.7)
    flags = ["--lr", "0.02", "--weight-decay", "0.3", "--weight-decay-quarantine", "0.7"]
    assert train_values(planned([])[0].extra) == default, planned([])[0].extra
    assert train_values(planned(flags)[0].extra) == given, planned(flags)[0].extra
    for argv, want in (([], default), (flags, given)):
        ap = argparse.ArgumentParser()
        _runner.add_recipe_args(ap)
        a = ap.parse_args(argv)
        a.runs, a.steps, a.extra = "out/x", 2, []
        cmd = emergence.run_cmd("vanilla", 0, a, "organism:tiny")
        assert train_values(cmd[cmd.index("--arm") + 4:]) == want, cmd


def check_other_config_refused(runs: Path) -> None:
    """A finished run of another configuration in --runs is refused, naming the field that differs, whether the
    driver's own flags, flags after -- or the intervention's flags set it (it would be skipped and enter the table
    unseen); the same configuration is accepted, also where only logs.CONFIG_EXCLUDED fields differ; a finished run
    without a readable args.json is refused in one line. train.py refuses a --match-run of another recipe and
    accepts one of the same."""
    from projected_grpo.method import arms
    from projected_grpo.loop import logs
    d = runs / "vanilla_s0"
    d.mkdir(parents=True)
    (d / "DONE").touch()
    from projected_grpo.loop.models import weights_id
    (d / "run_meta.json").write_text(json.dumps({"model_sha256": weights_id("organism:cpu")}))
    argv = ["--runs", str(runs), "--steps", "40"]
    same = _runner.planned_args(planned(argv + ["--fresh"])[0], "vanilla", 0)
    assert same["intervention"]["arm"] == "vanilla" and "route_frac" in same["intervention"], same["intervention"]

    def finished_with(**changed) -> dict:
        rec = {k: v for k, v in {**same, **changed}.items() if v is not None}  # None: not in args.json
        (d / "args.json").write_text(json.dumps(rec))
        return rec

    finished_with()
    assert refused(argv) == "", refused(argv)
    finished_with(device="cuda", ckpt_every=1, resume=True, out_dir="elsewhere", seed=7, run="x")
    assert refused(argv) == "", f"a field of logs.CONFIG_EXCLUDED refused: {refused(argv)}"
    assert set(logs.CONFIG_EXCLUDED) >= {"device", "ckpt_every", "resume", "out_dir", "seed", "run"}
    for field, have, flags in (("lr", 0.03, []), ("weight_decay", 0.5, []), ("steps", 30, []),
                               ("adam_eps", 1e-8, ["--", "--adam-eps", "1e-05"]), ("group", 8, ["--", "--group", "4"]),
                               ("route_frac", 0.0, ["--", "--route-frac", "0.5"]), ("eval_every", 5, []),
                               ("weight_decay_quarantine", None, [])):  # None: logged before the field existed
        finished_with(**{field: have})
        msg = refused(argv + flags)
        assert f"vanilla_s0 finished with {field} " in msg, (field, msg)
        assert refused(argv + ["--fresh"] + flags) == ""
    finished_with()
    (d / "run_meta.json").write_text(json.dumps({"model_sha256": "0" * 64}))  # trained on other weights
    assert "vanilla_s0 finished on weights 0000000000000000, --model organism:cpu" in refused(argv), refused(argv)
    (d / "run_meta.json").write_text(json.dumps({"model_sha256": weights_id("organism:cpu")}))
    finished_with(intervention=dict(same["intervention"], route_frac=0.5))
    assert "vanilla_s0 finished with route_frac 0.5, this call asks 0.0" in refused(argv), refused(argv)
    finished_with(intervention=None)  # logged before args.json held the intervention's flags
    assert f"vanilla_s0 finished with arm {logs.NOT_SAVED}, this call asks vanilla" in refused(argv), refused(argv)
    finished_with(lr=None)
    assert f"finished with lr {logs.NOT_SAVED}" in refused(argv), refused(argv)
    (d / "args.json").unlink()
    assert "cannot be read" in refused(argv), refused(argv)
    # train.py and a matched control's --match-run
    import contextlib
    import io
    (d / "metrics.jsonl").write_text("")
    (runs / "v.safetensors").touch()
    cmd = ["--arm", "route-subset", "--run", "x", "--match-run", str(d), "--vhack", str(runs / "v.safetensors"),
           "--lr", str(arms.ORGANISM_LR), "--weight-decay", str(arms.ORGANISM_WEIGHT_DECAY),
           "--weight-decay-quarantine", str(arms.ORGANISM_WEIGHT_DECAY), "--steps", "40", "--eval-every", "0"]
    finished_with()
    assert cli.run_config(cmd)[0].intervention.match_run == str(d)
    for field, have in (("lr", 0.03), ("weight_decay_quarantine", 0.0), ("max_new_tokens", 32)):
        finished_with(**{field: have})
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            try:
                cli.run_config(cmd)
            except SystemExit as e:
                assert e.code == 2, e.code
            else:
                raise AssertionError(f"a --match-run trained with another {field} was accepted")
        assert f"trained with {field} {have}" in err.getvalue(), err.getvalue()


def check_flags() -> None:
    assert refused(["--arms", "vanilla,route", "--seeds", "0,1", "--", "--group", "4"]) == ""
    assert "--lr after --" in refused(["--", "--lr", "0.1"])
    assert "--lr after --" in refused(["--", "--lr=0.1"])
    assert "--weight-decay after --" in refused(["--", "--weight-decay", "0"])
    assert "--weight-decay-quarantine after --" in refused(["--", "--weight-decay-quarantine=0"])
    assert "unknown arm 'nope'" in refused(["--arms", "vanilla,nope"])
    assert "--seeds" in refused(["--seeds", "0,x"])


def check_vhack_current(d: Path) -> None:
    """A v_hack file counts as current only for the weights and the pair set it was extracted from."""
    import torch
    from safetensors.torch import save_file

    from projected_grpo.method import arms
    from projected_grpo.loop.models import weights_id
    from projected_grpo.method.pairs import load_pairs, pairset_hash
    from projected_grpo.method import vhack
    spec, v = arms.PAIRS["own"], arms.VHACK_FILES["own"]
    policy, _, _ = vhack.wrapped_policy("organism:tiny", v.adapter, v.rank, v.quarantine, 0, "cpu")
    good = dict(model_sha256=weights_id("organism:tiny"), pairset_hash=pairset_hash(load_pairs(str(_runner.ROOT / spec))),
                model_identity=vhack.model_identity(policy), adapter_identity=vhack.adapter_identity(policy))
    for meta, want in ((good, True), (dict(good, model_sha256="0" * 64), False), (dict(good, pairset_hash="0" * 64), False),
                       (dict(good, model_identity="0" * 16), False), (dict(good, adapter_identity="0" * 16), False)):
        save_file({"x": torch.zeros(1)}, str(d / "v.safetensors"), metadata=meta)
        assert _runner.vhack_current(d / "v.safetensors", "organism:tiny", "own", "cpu") is want, (meta, want)
    # the identity is the one on the runs' device and dtype: a file written for bf16 is stale for float32 runs, and
    # extract_vhacks asks on the plan's device (a GPU call re-extracted every file because it asked on the CPU)
    bf16, _ = vhack.load_policy("organism:tiny", "cpu", torch.bfloat16)
    vhack.ad.wrap_model(bf16, vhack.ad.AdapterConfig(kind=v.adapter, rank=None, quarantine=v.quarantine, seed=0))
    save_file({"x": torch.zeros(1)}, str(d / "v.safetensors"), metadata=dict(good, model_identity=vhack.model_identity(bf16)))
    assert not _runner.vhack_current(d / "v.safetensors", "organism:tiny", "own", "cpu"), "bf16 identity taken as fp32's"
    asked = []
    real = _runner.vhack_current
    _runner.vhack_current = lambda path, model, kind, device="": asked.append(device) or True
    made, path = False, None
    try:
        plan = _runner.Plan(arms=["route"], seeds=[0], model="organism:tiny", runs=str(d / "runs"), steps=1,
                            eval_every=0, device="cuda:7")
        path = _runner.ROOT / arms.vhack_path("own", plan.model)
        made = not path.exists()
        if made:  # a placeholder, so that extract_vhacks asks whether it is current (it is removed below)
            path.parent.mkdir(parents=True, exist_ok=True)
            save_file({"x": torch.zeros(1)}, str(path), metadata=good)
        _runner.extract_vhacks(plan)
        assert asked == ["cuda:7"], f"extract_vhacks asked on {asked}, not the plan's device"
    finally:
        _runner.vhack_current = real
        if made and path is not None:
            path.unlink()



def check_decisive_plan(runs: Path) -> None:
    """scripts/decisive.py gives every run the prereg's flags (prereg.RUN_FLAGS), a random-direction run the direction
    seed DIRECTION_SEED_OFFSET + its training seed, and refuses another value of a registered flag (exit 2)."""
    import decisive
    from projected_grpo.method import prereg

    _, plan = decisive.parse(["--seeds", "100-101", "--model", "organism:tiny", "--device", "cpu", "--runs", str(runs),
                              "--registered-off"])
    assert set(plan.arms) == set(prereg.REGISTERED - set(prereg.DEFERRED)) and plan.arms[0] == "route", plan.arms
    for name, cmd, waits, trains in _runner.jobs(plan):
        got = {k[2:].replace("-", "_"): v for k, v in zip(cmd[2:], cmd[3:]) if k.startswith("--")}
        for k, v in prereg.RUN_FLAGS.items():
            assert str(got.get(k)) == str(v), f"decisive {name}: {k} {got.get(k)!r}, the prereg says {v!r}"
        arm = name.rpartition("_s")[0]
        if arms.arm(arm).intervention in arms.RANDOM_DIRECTION:
            want = ",".join(str(prereg.DIRECTION_SEED_OFFSET + s) for s in (100, 101))
            assert got.get("direction_seeds") == want, f"decisive {name}: direction seeds {got.get('direction_seeds')}"
        if arms.arm(arm).matches:
            assert waits == [f"route_s{s}" for s in (100, 101)], f"decisive {name} waits for {waits}"
    _, every = decisive.parse(["--seeds", "100-101", "--model", "organism:tiny", "--device", "cpu", "--runs", str(runs),
                               "--registered-off", "--ckpt-every", "1"])
    assert all(c[c.index("--ckpt-every") + 1] == "1" for _, c, _, _ in _runner.jobs(every) if "--ckpt-every" in c) and \
        all("--ckpt-every" in c for _, c, _, _ in _runner.jobs(every)), "--ckpt-every did not reach train.py"
    assert "ckpt_every" in logs.CONFIG_EXCLUDED, "checkpointing became part of a run's configuration"
    # each refused for its own flag (not, say, for the missing GPU of this machine)
    for argv, flag in ((["--steps", "40"], "--steps"), (["--eval-every", "20"], "--eval-every"),
                       (["--seeds", "0,1"], "--seeds"), (["--", "--n-eval", "12"], "extra flags"),
                       (["--device", "cpu"], "--device"), (["--seeds", "100-109"], "--seeds"),
                       (["--model", "organism:cpu@51b7c62e", "--seeds", "110"], "--seeds")):
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err):
                decisive.parse(argv)
        except SystemExit as e:
            assert e.code == 2 and flag in err.getvalue() and "registered-off" in err.getvalue(), (argv, err.getvalue())
        else:
            raise AssertionError(f"decisive.py {argv}: not refused without --registered-off")


def check_deadline_skip(runs: Path) -> None:
    """Once a job has finished, one that would not finish before the deadline (the longest finished job as the
    estimate) is not started: skipped, not stopped half-way."""
    plan = _runner.Plan(arms=["vanilla"], seeds=[0], model="organism:tiny", runs=str(runs), steps=1, eval_every=0)
    nap = lambda name: (name, [sys.executable, "-c", "import time; time.sleep(0.5)"], [], [name])  # noqa: E731
    t0 = time.time()
    out = _runner.run_all([nap("a"), nap("b")], plan, parallel=1, deadline=t0 + 1.8, every_s=1e9)
    assert out.done == ["a"] and out.skipped == ["b"] and not out.stopped, vars(out)
    out = _runner.run_all([nap("a"), nap("b")], plan, parallel=1, deadline=time.time() + 9, every_s=1e9)
    assert out.done == ["a", "b"], vars(out)
    long_b = ("b", [sys.executable, "-c", "import time; time.sleep(3)"], [], ["b"])
    out = _runner.run_all([nap("a"), long_b], plan, parallel=1, deadline=time.time() + 1.8, every_s=1e9,
                          late_starts=True)
    assert out.done == ["a"] and out.stopped == ["b"], f"late_starts: {vars(out)}"
    # a process stopped at the deadline after one of its runs wrote DONE: that run is done, the other stopped
    (runs / "c_s0").mkdir(parents=True, exist_ok=True)
    wrote = ("c", [sys.executable, "-c", f"import pathlib, time; pathlib.Path({str(runs / 'c_s0' / 'DONE')!r}).write_text('ok'); "
                   "time.sleep(30)"], [], ["c_s0", "c_s1"])
    out = _runner.run_all([wrote], plan, parallel=1, deadline=time.time() + 2.5, every_s=1e9, late_starts=True)
    assert out.done == ["c_s0"] and out.stopped == ["c_s1"], f"a run with DONE counted as stopped: {vars(out)}"
    (runs / "c_s1").mkdir(parents=True, exist_ok=True)
    (runs / "c_s1" / "DONE").write_text("an earlier call's")  # older than the job: not this job's finish
    os.utime(runs / "c_s1" / "DONE", (time.time() - 60, time.time() - 60))
    out = _runner.run_all([wrote], plan, parallel=1, deadline=time.time() + 2.5, every_s=1e9, late_starts=True)
    assert out.done == ["c_s0"] and out.stopped == ["c_s1"], f"an older DONE counted as this job's: {vars(out)}"
    # keep_grades: each job's grading keeps its grades in its first run's folder (the file pack_runs keeps)
    say = "import os; print(os.environ.get('PGRPO_GRADES_KEPT'))"
    job = ("k", [sys.executable, "-c", say], [], ["route_s3", "route_s4"])
    for keep, want in ((True, str(runs / "route_s3" / rollouts.KEPT_FILE)), (False, "None")):
        out = _runner.run_all([job], plan, parallel=1, deadline=time.time() + 9, every_s=1e9, keep_grades=keep)
        got = (runs / "_logs" / "k.log").read_text().strip()
        assert out.done == ["route_s3", "route_s4"] and got == want, f"keep_grades={keep}: the job saw {got!r}, want {want!r}"
    import pack_runs

    assert rollouts.KEPT_FILE in pack_runs.KEEP, "pack_runs would leave a run's kept grades behind"


def check_forked(runs: Path) -> None:
    """preloaded: a `python SCRIPT.py` job runs in a forked child of the runner (it finds a module only the runner
    imported), with its arguments, the job's environment and its output in the log (stderr in a file of its own where
    given one), and runs none of the runner's
    exit handlers or finalizers at its exit (this check's temporary folder would vanish); a failing one is failed, one
    running at the deadline is stopped; a `python -c` job is still a new process."""
    import types

    import atexit

    plan = _runner.Plan(arms=["vanilla"], seeds=[0], model="organism:tiny", runs=str(runs), steps=1, eval_every=0)
    sys.modules["_runner_fork_marker"] = types.ModuleType("_runner_fork_marker")
    me = os.getpid()
    runner_exit = lambda: os.getpid() != me and (runs / f"runner_handler_ran_in_{os.getpid()}").touch()  # noqa: E731
    atexit.register(runner_exit)
    keep = tempfile.TemporaryDirectory()  # the runner's finalizer (weakref.finalize): a job's exit must not run it
    try:
        probe = runs / "probe_job.py"
        probe.write_text("import os, sys\nprint('FORKED', '_runner_fork_marker' in sys.modules, 'THREADS', "
                         "os.environ['PGRPO_THREADS'], 'CACHE', bool(os.environ.get('PGRPO_SAMPLE_CACHE')), 'ARGV', *sys.argv[1:])\n")
        tell = "import sys; print('FORKED', '_runner_fork_marker' in sys.modules)"
        out = _runner.run_all([("f", [sys.executable, str(probe), "x", "y"], [], ["f_s0"]),
                               ("c", [sys.executable, "-c", tell], [], ["c_s0"])], plan, 1, time.time() + 60,
                              every_s=1e9, preloaded=True)
        got = (runs / "_logs" / "f.log").read_text().split()
        assert out.done == ["f_s0", "c_s0"] and got == ["FORKED", "True", "THREADS", "1", "CACHE", "True", "ARGV", "x", "y"], \
            f"a preloaded job: {got} ({vars(out)})"
        assert (runs / "_logs" / "c.log").read_text().split() == ["FORKED", "False"], "a python -c job was forked"
        (runs / "two_streams.py").write_text("import sys\nprint('OUT')\nprint('ERR', file=sys.stderr)\n")
        with (runs / "out.txt").open("w") as o, (runs / "err.txt").open("w") as e:
            assert _runner.ForkedJob([sys.executable, str(runs / "two_streams.py")], dict(os.environ), o, e).wait() == 0
        streams = [(runs / f).read_text().split() for f in ("out.txt", "err.txt")]
        assert streams == [["OUT"], ["ERR"]], f"a forked job's stdout and stderr went to {streams}, not their own files"
        assert "PGRPO_SAMPLE_CACHE" not in os.environ, "preload left the jobs' environment in the runner's"
        ran = list(runs.glob("runner_handler_ran_in_*"))
        assert not ran, f"a forked job ran the runner's exit handler at its exit: {ran}"
        assert Path(keep.name).is_dir(), "a forked job's exit removed the runner's temporary folder"
        (runs / "bad.py").write_text("raise SystemExit(3)\n")
        (runs / "sleepy.py").write_text("import time\ntime.sleep(60)\n")
        t0 = time.time()
        out = _runner.run_all([("b", [sys.executable, str(runs / "bad.py")], [], ["b_s0"]),
                               ("s", [sys.executable, str(runs / "sleepy.py")], [], ["s_s0"])], plan, 2, t0 + 3,
                              every_s=1e9, preloaded=True, late_starts=True)
        assert out.failed == ["b_s0"] and out.stopped == ["s_s0"] and time.time() - t0 < 20, vars(out)
    finally:
        del sys.modules["_runner_fork_marker"]
        atexit.unregister(runner_exit)
        keep.cleanup()


def check_forked_extraction(_: Path) -> None:
    """preloaded: extract_vhacks runs each extraction in a forked child of the runner (no interpreter start), on the
    plan's device (a file names its device and dtype, and a run on another device refuses it); on the tiny organism the file it writes holds the same tensors and metadata as the extraction script run as a fresh
    process (full tier) or in this process (fast tier: shares the runner's state with the fork, so it checks the
    arguments, the thread count and the output path, not independence from inherited state); a failing extraction
    raises, its output written to stderr and held by the error."""
    (_runner.ROOT / "out").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=_runner.ROOT / "out", prefix="verify_runner_") as t:  # extract_vhacks names
        extraction_equal(Path(t))  # its files relative to the repository


def extraction_equal(d: Path) -> None:
    import extract_vhack_grad
    import torch
    from safetensors import safe_open

    def content(path: Path) -> tuple[dict, dict]:
        with safe_open(str(path), "pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()

    plan = _runner.Plan(arms=["route"], seeds=[0], model="organism:tiny", runs=str(d / "runs"), steps=1,
                        eval_every=0, device="cpu")
    args = arms.vhack_extract_args("own", plan.model, "cpu")
    assert args[-2:] == ["--device", "cpu"], args
    real_path, real_args, devices = arms.vhack_path, arms.vhack_extract_args, []

    def forked_args(kind, model, device=""):  # the registry's arguments on the device the runner passes
        devices.append(device)
        return real_args(kind, model, device) + ["--out", str(d / "forked.safetensors")]
    try:
        arms.vhack_path = lambda kind, model: str(d / "forked.safetensors")
        arms.vhack_extract_args = forked_args
        assert _runner.extract_vhacks(plan, preloaded=True) == [str((d / "forked.safetensors").relative_to(_runner.ROOT))]
        assert devices == [plan.device], f"extract_vhacks extracted on device {devices}, not the plan's {plan.device!r}"
        arms.vhack_extract_args = lambda kind, model, device="": real_args(kind, model, device) + [
            "--pairs", str(d / "missing.md")]
        (d / "forked.safetensors").rename(d / "first.safetensors")
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                _runner.extract_vhacks(plan, preloaded=True)
            raise AssertionError("a failing forked extraction did not raise")
        except subprocess.CalledProcessError as e:
            assert "missing.md" in e.stderr, f"the failure's output is not in the error: {e.stderr[-300:]}"
    finally:
        arms.vhack_path, arms.vhack_extract_args = real_path, real_args
    ref = args + ["--out", str(d / "reference.safetensors")]
    if full_tier():
        subprocess.run([sys.executable, "scripts/extract_vhack_grad.py", *ref], cwd=_runner.ROOT, check=True,
                       env=dict(os.environ, PGRPO_THREADS="1"), stdout=subprocess.DEVNULL)
    else:
        threads = torch.get_num_threads()
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.chdir(_runner.ROOT):
                extract_vhack_grad.main(ref)  # sets one torch thread (PGRPO_THREADS unset or 1 in the gates)
        finally:
            torch.set_num_threads(threads)
    (fa, ma), (fb, mb) = content(d / "first.safetensors"), content(d / "reference.safetensors")
    assert fa.keys() == fb.keys() and all(torch.equal(fa[k], fb[k]) for k in fa) and ma == mb, \
        f"the forked extraction's file differs from the extraction {'in a fresh process' if full_tier() else 'in this process'}"


def check_resume_jobs(runs: Path) -> None:
    """A job whose runs all stopped after the same checkpointed step resumes them (--resume); checkpoints of different
    steps, or a missing one, start the job from step 0."""
    import torch

    plan = _runner.Plan(arms=["erase-random"], seeds=[0, 1], model="organism:tiny", runs=str(runs), steps=20,
                        eval_every=0, device="cpu", runs_per_process=2, direction_seed_offset=1000)
    for s in (0, 1):  # the args.json each stopped run wrote: the planned configuration
        (runs / f"erase-random_s{s}").mkdir(parents=True)
        (runs / f"erase-random_s{s}" / "args.json").write_text(json.dumps(_runner.planned_args(plan, "erase-random", s)))
    for seeds_steps, want in (({}, False), ({0: 9, 1: 9}, True), ({0: 9, 1: 4}, False), ({0: 9}, False)):
        for s in (0, 1):
            (runs / f"erase-random_s{s}" / "ckpt" / "last.pt").unlink(missing_ok=True)
        for s, step in seeds_steps.items():
            (runs / f"erase-random_s{s}" / "ckpt").mkdir(parents=True, exist_ok=True)
            torch.save(dict(step=step), runs / f"erase-random_s{s}" / "ckpt" / "last.pt")
        (cmd,) = [j[1] for j in _runner.jobs(plan)]
        assert ("--resume" in cmd) is want, f"checkpoints {seeds_steps}: --resume {'--resume' in cmd}, want {want}"
    # stopped with another direction seed than this call plans: started again, not resumed
    for s in (0, 1):
        (runs / f"erase-random_s{s}" / "ckpt").mkdir(parents=True, exist_ok=True)
        torch.save(dict(step=9), runs / f"erase-random_s{s}" / "ckpt" / "last.pt")
    assert "--resume" in _runner.jobs(plan)[0][1]
    other = dataclasses.replace(plan, direction_seed_offset=2000)
    (cmd,) = [j[1] for j in _runner.jobs(other)]
    assert "--resume" not in cmd, "a run stopped with another direction seed was resumed"


def check_pack_roundtrip(d: Path) -> None:
    """pack_runs --xz stores step logs unzipped and --unpack writes them back as the logs write them, byte for byte."""
    import pack_runs

    run = d / "runs" / "vanilla_s0"
    run.mkdir(parents=True)
    logs.write_step(run, 0, [{"step": 0, "completion": "x" * 50}] * 8)
    logs.write_jsonl(run / "metrics.jsonl", [{"step": 0}])
    parts = pack_runs.pack(d / "runs", d / "p", 2**20, xz=True)
    assert [p.name for p in parts] == ["p.part0.tar.xz"], parts
    with tarfile.open(parts[0]) as tar:
        names = tar.getnames()
    assert "runs/vanilla_s0/step_0000.jsonl" in names, names
    pack_runs.unpack(parts, d / "back")
    for f in ("step_0000.jsonl.gz", "metrics.jsonl"):
        assert (d / "back/runs/vanilla_s0" / f).read_bytes() == (run / f).read_bytes(), f"{f} changed by pack/unpack"
    pack_runs.unpack(parts, d / "lean", step_logs=False)  # what results.py reads, the step logs left out
    got = sorted(f.name for f in (d / "lean/runs/vanilla_s0").iterdir())
    assert got == ["metrics.jsonl"], f"unpack without step logs wrote {got}"
    # a truncated part (a transfer cut short) writes nothing: every header is read before any file
    for i in range(1, 6):
        run = d / "runs" / f"vanilla_s{i}"
        run.mkdir()
        logs.write_jsonl(run / "metrics.jsonl", [{"step": k, "x": os.urandom(64).hex()} for k in range(400)])
    whole = pack_runs.pack(d / "runs", d / "t", 2**24, xz=True)[0]
    cut = d / "cut.part0.tar.xz"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 3 // 4])
    try:
        pack_runs.unpack([cut], d / "cut")
        raise AssertionError("a truncated part unpacked without an error")
    except (EOFError, tarfile.ReadError, lzma.LZMAError):
        pass
    wrote = [f for f in (d / "cut").rglob("*") if f.is_file()] if (d / "cut").exists() else []
    assert not wrote, f"a truncated part wrote {len(wrote)} files before failing: {wrote[:3]}"


def check_unpack_keeps_machine_runs(d: Path) -> None:
    """decisive_call.sh unpacks the carried parts with keep_existing: a run folder (or a file beside the runs) the
    machine already holds is left whole, none of the part's older files mixed into it (session 14 lost ten runs to
    exactly that mix); runs it lacks are written. --checkpoints packs the last checkpoint of unfinished runs only."""
    import pack_runs

    runs = d / "kr" / "org"
    for name, done in (("a_s0", True), ("b_s0", False)):
        run = runs / name
        (run / "ckpt").mkdir(parents=True)
        logs.write_jsonl(run / "metrics.jsonl", [{"step": 0}, {"step": 1}])
        logs.write_jsonl(run / "eval.jsonl", [{"step": 1}])
        (run / "ckpt" / "last.pt").write_bytes(b"ckpt")
        if done:
            (run / "DONE").write_text("")
    (runs / "decisive_calls.jsonl").write_text('{"call": 1}\n')
    parts = pack_runs.pack(runs, d / "kr" / "p", 2**20, xz=True, checkpoints=True)
    with tarfile.open(parts[0]) as tar:
        names = set(tar.getnames())
    assert "org/b_s0/ckpt/last.pt" in names and "org/a_s0/ckpt/last.pt" not in names, names
    machine = d / "kr" / "machine"
    (machine / "org" / "b_s0").mkdir(parents=True)  # b_s0 started again here: one metrics row so far, no eval yet
    logs.write_jsonl(machine / "org" / "b_s0" / "metrics.jsonl", [{"step": 0, "again": True}])
    (machine / "org" / "decisive_calls.jsonl").write_text('{"call": 2}\n')
    pack_runs.unpack(parts, machine, keep_existing=True)
    b = machine / "org" / "b_s0"
    assert sorted(f.name for f in b.iterdir()) == ["metrics.jsonl"], list(b.iterdir())
    assert logs.read_jsonl(b / "metrics.jsonl") == [{"step": 0, "again": True}], "a carried part rewrote a run here"
    assert (machine / "org" / "decisive_calls.jsonl").read_text() == '{"call": 2}\n', "the call record was replaced"
    assert (machine / "org" / "a_s0" / "DONE").exists(), "a run the machine lacks was not unpacked"
    # many small parts (each run whole in one part), unpacked with keep_existing into an empty folder: every file back
    for i in range(6):
        run = runs / f"c_s{i}"
        run.mkdir()
        logs.write_jsonl(run / "metrics.jsonl", [{"step": k, "x": "y" * 400} for k in range(40)])
        for k in range(3):
            logs.write_step(run, k, [{"step": k, "completion": f"{i} {k} " + "z" * 300}] * 8)
        (run / "DONE").write_text("")
    parts = pack_runs.pack(runs, d / "kr" / "q", 600, xz=True, checkpoints=True)
    assert len(parts) >= 4, f"expected many parts, got {len(parts)}"
    for p in parts:
        with tarfile.open(p) as tar:
            units = {pack_runs.unit(n) for n in tar.getnames()}
        for u in units - {"org/decisive_calls.jsonl"}:
            assert all(pack_runs.unit(n) != u for q in parts if q != p for n in tarfile.open(q).getnames()), (
                f"run {u} split between parts")
    fresh = d / "kr" / "fresh"
    pack_runs.unpack(parts, fresh, keep_existing=True)
    want = sorted(str(f.relative_to(runs.parent)) for f in pack_runs.evidence(runs, checkpoints=True))
    got = sorted(str(f.relative_to(fresh)) for f in fresh.rglob("*") if f.is_file())
    assert got == want, f"a multi-part unpack into an empty folder lost {sorted(set(want) - set(got))[:5]}"


def check_content_hash(d: Path) -> None:
    """run_meta's vhack_sha256 hashes a direction file's content, not its bytes: two saves of the same tensors and
    metadata (safetensors writes metadata keys in a random order) hash alike; a changed value or metadata does not."""
    import torch
    from safetensors.torch import save_file

    from projected_grpo.loop.models import safetensors_content_sha256 as digest

    t = {"v_grad.a": torch.arange(6.0).view(2, 3), "v_grad.b": torch.ones(4, dtype=torch.bfloat16)}
    meta = {f"k{i}": str(i) for i in range(12)}
    for i in range(3):
        save_file(t, str(d / f"{i}.safetensors"), metadata=meta)
    assert len({digest(d / f"{i}.safetensors") for i in range(3)}) == 1, "equal content, different digests"
    save_file(dict(t, **{"v_grad.b": torch.full((4,), 1.0078125, dtype=torch.bfloat16)}), str(d / "x.safetensors"),
              metadata=meta)
    save_file(t, str(d / "y.safetensors"), metadata=dict(meta, k0="zero"))
    assert len({digest(d / f) for f in ("0.safetensors", "x.safetensors", "y.safetensors")}) == 3, "change unseen"

def main() -> None:
    check_flags()
    with tempfile.TemporaryDirectory() as d:
        check_vhack_current(Path(d))
    check_recipe_values()
    for check in (check_decisive_plan, check_deadline_skip, check_forked, check_forked_extraction, check_resume_jobs, check_pack_roundtrip,
                  check_unpack_keeps_machine_runs, check_content_hash):
        with tempfile.TemporaryDirectory() as d:
            check(Path(d))
    with tempfile.TemporaryDirectory() as d:
        check_other_config_refused(Path(d))
    with tempfile.TemporaryDirectory() as d:
        check_packing(Path(d))
    with tempfile.TemporaryDirectory() as d:
        check_longest_first(Path(d))
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
          "also when seeds are packed into processes (--runs-per-process: each job waits for its seeds' matched runs), "
          "not for one finished earlier; finished runs skipped unless --fresh; bad driver flags refused with one line; the recipe's values reach train.py "
          "from the plan and from emergence.py; a finished run of another configuration (the intervention's flags included) "
          "refused, one differing only in logs.CONFIG_EXCLUDED accepted; a v_hack file of other weights, another pair set or another model or adapter identity is stale; "
          "decisive.py gives every run the prereg's flags and direction seeds and refuses other values; a job that would "
          "not finish before the deadline is skipped, not started (started and stopped with late_starts); a job whose runs "
          "stopped at one checkpointed step resumes them; a forked v_hack extraction writes what the script writes in-process; pack_runs --xz round-trips step logs byte for byte (and leaves them out when asked; a truncated part writes nothing); carried parts never rewrite a run folder the "
          "machine holds, and --checkpoints packs unfinished runs' checkpoints only")


if __name__ == "__main__":
    run_gate("verify_runner", main)
