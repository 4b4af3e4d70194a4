"""Shared driver of scripts/main_experiment.py and scripts/headline.py: arms x seeds from the arm
registry, side by side with one torch thread each, then results.py (and diag_pinning).

    v_hack files the arms need (arms.vhack_extract_args), extracted once when missing
    one job per (arm, seed): scripts/train.py --arm A --seed S --run A_sS (same model, device and flags
    for every run), or with --runs-per-process K one job per K seeds of an arm (scripts/train.py --seeds: the runs
    share one process, issue 28); an arm matched to another (route-random -> route) waits for those runs of its seeds
    `parallel` jobs at a time, progress every 30 s with the steps done and an estimate of the time left; at the wall-clock deadline running jobs are stopped (SIGTERM to their own
    process) and jobs not started are skipped
    a finished run (a DONE file) is skipped unless --fresh, and refused when its saved configuration differs from
    the one this call would run in any field but logs.CONFIG_EXCLUDED (refuse_other_config)
"""

from __future__ import annotations

import atexit
import logging
import os
import runpy
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from safetensors import safe_open

from projected_grpo.env import rollouts
from projected_grpo.loop import logs
from projected_grpo.loop.cli import given_fields
from projected_grpo.loop.config import saved
from projected_grpo.loop.models import weights_id
from projected_grpo.method import arms
from projected_grpo.method.pairs import load_pairs, pairset_hash

ROOT = Path(__file__).resolve().parents[1]

PY = sys.executable
GRADE_CACHE = ROOT / "out" / "grade_cache" / "grades.sqlite"  # grades shared by the processes of a driver and later calls


def add_plan_args(ap, arms_default: tuple[str, ...], seeds: str, eval_every: int, device: str, runs: str,
                  parallel: int, budget_min: float, runs_per_process: int = 1) -> None:
    """The command-line flags every driver shares (one place for their names, meaning and checks)."""
    ap.add_argument("--arms", default=",".join(arms_default), help="comma-separated registry arms")
    ap.add_argument("--seeds", default=seeds)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--eval-every", type=int, default=eval_every, help="evaluation period (0: only at the end)")
    ap.add_argument("--model", default="organism:cpu")
    ap.add_argument("--device", default=device, help="--device of every run ('' = train.py's default)")
    ap.add_argument("--parallel", type=int, default=parallel, help="processes at a time")
    ap.add_argument("--direction-seed-offset", type=int, default=-1,
                    help="random-direction arms get --direction-seed OFFSET + seed (-1: their training seed's value)")
    ap.add_argument("--runs-per-process", type=int, default=runs_per_process,
                    help="runs of one arm (its seeds) trained in one process (scripts/train.py --seeds)")
    ap.add_argument("--budget-min", type=float, default=budget_min, help="stop runs still going after this many minutes")
    ap.add_argument("--runs", default=runs, help="parent folder of the run folders")
    ap.add_argument("--fresh", action="store_true", help="rerun finished runs")
    add_recipe_args(ap)
    ap.add_argument("extra", nargs="*", help="extra flags for scripts/train.py (after --)")


RECIPE_FLAGS = ("--lr", "--weight-decay", "--weight-decay-quarantine")
"""The organism recipe's flags every driver passes to every run itself."""


def add_recipe_args(ap) -> None:
    """The organism recipe (arms.ORGANISM_LR, arms.ORGANISM_WEIGHT_DECAY) as a driver's own flags."""
    ap.add_argument("--lr", type=float, default=arms.ORGANISM_LR, help="GRPO learning rate of every run")
    ap.add_argument("--weight-decay", type=float, default=arms.ORGANISM_WEIGHT_DECAY,
                    help="AdamW weight decay of every run's deployed block")
    ap.add_argument("--weight-decay-quarantine", type=float, default=arms.ORGANISM_WEIGHT_DECAY,
                    help="AdamW weight decay of every run's quarantine block")


def recipe_flags(a) -> list[str]:
    """The recipe flags a driver hands to train.py."""
    return ["--lr", str(a.lr), "--weight-decay", str(a.weight_decay),
            "--weight-decay-quarantine", str(a.weight_decay_quarantine)]


def refuse_recipe_in_extra(extra: list[str], fail) -> None:
    """The drivers pass their own recipe flags to every run; one after `--` would reach train.py twice."""
    for flag in RECIPE_FLAGS:
        if any(x == flag or x.startswith(flag + "=") for x in extra):
            fail(f"{flag} after --: give it as this script's {flag} (it is passed to every run once)")


def plan_from_args(a, fail) -> "Plan":
    """Check the shared flags (bad input: `fail(one line)`, which exits 2) and build the Plan."""
    refuse_recipe_in_extra(a.extra, fail)
    names = [x for x in a.arms.split(",") if x]
    unknown = [x for x in names if x not in arms.BY_NAME]
    if unknown or not names:
        fail(f"--arms: unknown arm {unknown[0]!r} (registry: {', '.join(arms.BY_NAME)})" if unknown else "--arms: empty")
    try:
        seeds = [int(s) for s in a.seeds.split(",")]
    except ValueError:
        fail(f"--seeds {a.seeds!r}: not a comma-separated list of integers")
    if a.steps < 1 or a.parallel < 1 or a.budget_min <= 0 or a.eval_every < 0 or a.runs_per_process < 1:
        fail("--steps, --parallel, --runs-per-process and --budget-min must be positive, --eval-every not negative")
    plan = Plan(arms=arms.closure(names), seeds=seeds, model=a.model, runs=a.runs, steps=a.steps,
                eval_every=a.eval_every, device=a.device, extra=[*recipe_flags(a), *a.extra], fresh=a.fresh,
                runs_per_process=a.runs_per_process, direction_seed_offset=a.direction_seed_offset)
    if not plan.fresh:
        refuse_other_config(plan, fail)
    return plan


def planned_args(plan: "Plan", arm: str, seed: int) -> dict:
    """The args.json train.py would write for this run: its command line (flags after -- included) as train.py
    parses and resolves it (no file checked)."""
    return saved(arms.configure(given_fields(train_cmd(plan, arm, seed)[2:]))[0])


def refuse_other_config(plan: "Plan", fail) -> None:
    """A finished run is skipped, so one trained with another configuration (any field but logs.CONFIG_EXCLUDED,
    the intervention's flags included) would enter this call's table unseen: refuse, naming the field."""
    for arm in plan.arms:
        for seed in plan.seeds:
            run = ROOT / plan.runs / f"{arm}_s{seed}"
            if (run / "DONE").exists():
                try:
                    diff = logs.differences(logs.read_config(run), logs.config(planned_args(plan, arm, seed)))
                except (OSError, ValueError) as e:
                    fail(f"--runs {plan.runs}: {run.name} finished but its configuration cannot be read ({e}); "
                         f"--fresh reruns it")
                if diff:
                    k, (have, asked) = next(iter(diff.items()))
                    fail(f"--runs {plan.runs}: {run.name} finished with {k} {have}, this call asks {asked} "
                         f"(choose another --runs, or --fresh to rerun it)")
                trained_on = logs.read_run_meta(run)["model_sha256"]
                if trained_on != (want := weights_id(plan.model)):
                    fail(f"--runs {plan.runs}: {run.name} finished on weights {trained_on[:16]}, --model {plan.model} "
                         f"is {want[:16]} (choose another --runs, or --fresh to rerun it)")


@dataclass
class Plan:
    """What one experiment runs."""

    arms: list[str]
    """registry arm names (matched arms pull in the arm they match)"""
    seeds: list[int]
    """seeds of every arm"""
    model: str
    """model spec of every run"""
    runs: str
    """parent folder of the run folders"""
    steps: int
    """GRPO steps per run"""
    eval_every: int
    """evaluation period in steps"""
    device: str = ""
    """--device of every run ('' = train.py's default)"""
    extra: list[str] = field(default_factory=list)
    """extra scripts/train.py flags for every run"""
    fresh: bool = False
    """rerun finished runs (a DONE file) and re-extract v_hack"""
    runs_per_process: int = 1
    """seeds of one arm trained in one process (scripts/train.py --seeds)"""
    direction_seed_offset: int = -1
    """random-direction arms (arms.RANDOM_DIRECTION) run with --direction-seed offset + seed; -1: not passed (the
    run's training seed is its direction seed)"""


@dataclass
class Outcome:
    """What happened to the jobs."""

    done: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    """running at the deadline, stopped"""
    skipped: list[str] = field(default_factory=list)
    """not started: deadline, or the run they wait for failed"""


def vhack_current(path: Path, model: str, kind: str, device: str = "") -> bool:
    """Whether a direction file of `kind` (arms.VHACK_FILES) was extracted from the model `model` resolves to now
    (by the weights' sha256: the `organism:cpu` file name stays when the pinned organism changes), from its pair file
    as it reads now (by the pair set's hash: an edited pair file needs a new v_hack), and under the model and adapter
    identity the loader checks now on the runs' device and its dtype (vhack.load_tensors: a file written before that
    identity changed, or for bf16 on the GPU when the runs are float32 on the CPU, is refused)."""
    from projected_grpo.method import vhack

    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    if meta.get("model_sha256") != weights_id(model) or \
            meta.get("pairset_hash") != pairset_hash(load_pairs(f"{ROOT}/{arms.PAIRS[kind]}")):
        return False
    v = arms.VHACK_FILES[kind]
    policy, _, _ = vhack.wrapped_policy(model, v.adapter, v.rank, v.quarantine, 0, device)
    return (meta.get("model_identity"), meta.get("adapter_identity")) == (vhack.model_identity(policy),
                                                                          vhack.adapter_identity(policy))


def extract_vhacks(plan: Plan, preloaded: bool = False) -> list[str]:
    """The v_hack files the plan's arms need, extracted where missing, stale (vhack_current) or all with fresh. The
    extractions run side by side, each its own process; preloaded (CPU plans): forked children of this process once it
    has imported the training loop (preload), so that no extraction pays the imports again (ForkedJob)."""
    kinds = sorted({arms.arm(a).vhack for a in plan.arms} - {"none"})
    paths, procs = [], []
    env = dict(os.environ, PGRPO_THREADS="1", PYTHONUNBUFFERED="1")
    for k in kinds:
        path = ROOT / arms.vhack_path(k, plan.model)
        current = path.exists() and vhack_current(path, plan.model, k, plan.device)
        if path.exists() and not plan.fresh and not current:
            print(f"{path.relative_to(ROOT)}: extracted for another model or pair set; extracting again", flush=True)
        if plan.fresh or not current:
            cmd = [PY, "scripts/extract_vhack_grad.py", *arms.vhack_extract_args(k, plan.model, plan.device)]
            err = tempfile.TemporaryFile()  # the child's output (a fork's stdout too), written to stderr if it fails
            if preloaded and not procs:
                preload(env)
            procs.append((cmd, err, ForkedJob(cmd, env, err) if preloaded else
                          subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err, env=env)))
        paths.append(str(path.relative_to(ROOT)))
    failed = [(cmd, err, p.returncode) for cmd, err, p in procs if p.wait()]  # every extraction ends before a raise
    for cmd, err, code in failed:
        err.seek(0)
        output = err.read().decode(errors="replace")
        sys.stderr.write(f"{' '.join(map(str, cmd))} failed (exit {code}):\n{output}")
    for _, err, _ in procs:
        err.close()
    if failed:
        raise subprocess.CalledProcessError(failed[0][2], failed[0][0], stderr=output if len(failed) == 1 else None)
    return paths


def direction_seed(plan: Plan, arm: str, seed: int) -> int | None:
    """The direction seed the plan gives a run of `arm` (None: the run's own default)."""
    random_arm = arms.arm(arm).intervention in arms.RANDOM_DIRECTION
    return plan.direction_seed_offset + seed if random_arm and plan.direction_seed_offset >= 0 else None


def train_cmd(plan: Plan, arm: str, seed: int) -> list[str]:
    dev = ["--device", plan.device] if plan.device else []
    d = direction_seed(plan, arm, seed)
    return [PY, "scripts/train.py", "--arm", arm, "--seed", str(seed), "--run", f"{arm}_s{seed}", "--out-dir",
            plan.runs, "--model", plan.model, "--steps", str(plan.steps), "--eval-every", str(plan.eval_every),
            *dev, *([] if d is None else ["--direction-seed", str(d)]), *plan.extra]


def batched_cmd(plan: Plan, arm: str, seeds: list[int]) -> list[str]:
    """The runs of `arm` at `seeds` in one process: train_cmd with --seeds (folders A_sS as train_cmd's)."""
    cmd = train_cmd(plan, arm, seeds[0])
    i = cmd.index("--seed")
    cmd[i:i + 2] = ["--seeds", ",".join(map(str, seeds))]
    j = cmd.index("--run")
    del cmd[j:j + 2]
    if "--direction-seed" in cmd:
        k = cmd.index("--direction-seed")
        cmd[k:k + 2] = ["--direction-seeds", ",".join(str(direction_seed(plan, arm, s)) for s in seeds)]
    return cmd


def jobs(plan: Plan) -> list[tuple[str, list[str], list[str], list[str]]]:
    """(job name, command, runs it waits for, runs it trains): matched arms after the arm they match; with
    runs_per_process K, K seeds of one arm per job."""
    todo = [(arm, seed) for arm in arms.closure(plan.arms) for seed in plan.seeds
            if plan.fresh or not (ROOT / plan.runs / f"{arm}_s{seed}" / "DONE").exists()]
    names = {f"{arm}_s{seed}" for arm, seed in todo}
    out = []
    for arm in arms.closure(plan.arms):
        seeds = [s for a, s in todo if a == arm]
        for chunk in (seeds[i:i + plan.runs_per_process] for i in range(0, len(seeds), plan.runs_per_process)):
            m = arms.arm(arm).matches
            # wait for the matched run exactly when it runs in this call (one finished earlier is read as it is)
            deps = [f"{m}_s{s}" for s in chunk if m and f"{m}_s{s}" in names]
            runs = [f"{arm}_s{s}" for s in chunk]
            cmd = train_cmd(plan, arm, chunk[0]) if plan.runs_per_process == 1 else batched_cmd(plan, arm, chunk)
            if not plan.fresh and resumable(plan, arm, chunk):
                cmd.append("--resume")
            out.append((runs[0] if len(runs) == 1 else f"{arm}_s{','.join(map(str, chunk))}", cmd, deps, runs))
    return out


Job = tuple[str, list[str], list[str], list[str]]
"""(job name, command, runs it waits for, runs it trains): an element of jobs()."""


def longest_first(jobs_: list[Job]) -> list[Job]:
    """The same jobs, reordered so that the machine's last minutes are not spent on one long run alone: first the
    jobs other jobs wait for (route before its matched controls), then the arms that train a quarantine block
    (evaluated twice, kept and ablated), then the rest, and last the arms with no intervention (no hook, the cheapest
    step: the lone last run is a short one); the order within each group is kept. Runs do not depend on the order."""
    waited_for = {d for _, _, deps, _ in jobs_ for d in deps}

    def rank(job) -> tuple[bool, bool, bool]:
        kind = arms.arm(job[3][0].rsplit("_s", 1)[0]).intervention
        return (not any(r in waited_for for r in job[3]), kind not in arms.ROUTING, kind == "none")

    return sorted(jobs_, key=rank)


RESUME_REPLICATE = ("seed", "direction_seed", "match_run")
"""Fields logs.CONFIG_EXCLUDED lets runs of one cell differ in, that a stopped run and its resumption must share."""


def resumable(plan: "Plan", arm: str, seeds: list[int]) -> bool:
    """Whether a job's runs were stopped after one and the same checkpointed step (each has ckpt/last.pt and no DONE)
    with the configuration this call plans for them (any field but logs.CONFIG_EXCLUDED): the job resumes them
    (train.py --resume), as the pre-registration asks of a run that stops. Otherwise the job starts them again."""
    import torch

    dirs = [ROOT / plan.runs / f"{arm}_s{s}" for s in seeds]
    ckpts = [d / "ckpt" / "last.pt" for d in dirs]
    if not all(c.exists() and not (d / "DONE").exists() for c, d in zip(ckpts, dirs)):
        return False
    for d, s in zip(dirs, seeds):
        try:
            have, want = logs.read_args(d), planned_args(plan, arm, s)
            diff = logs.differences(logs.config(have), logs.config(want))
            for k in RESUME_REPLICATE:  # excluded when pooling runs, but a resumed run must keep its own
                got, asked = (x.get(k, x.get("intervention", {}).get(k)) for x in (have, want))
                if got != asked:
                    diff[k] = (got, asked)
        except (OSError, ValueError):
            diff = {"args.json": ("unreadable", "")}
        if diff:
            print(f"{d.name}: stopped with {next(iter(diff))} {next(iter(diff.values()))[0]!r}, this call plans "
                  f"{next(iter(diff.values()))[1]!r}: started again, not resumed", flush=True)
            return False
    steps = {torch.load(c, map_location="cpu", weights_only=False)["step"] for c in ckpts}
    return len(steps) == 1


def progress(run_dir: Path) -> int:
    m = run_dir / "metrics.jsonl"
    return len(m.read_text().splitlines()) if m.exists() else 0


def on_cpu(plan: Plan) -> bool:
    """Whether the plan's runs train on the CPU (--device cpu, or no --device on a machine without CUDA)."""
    if plan.device:
        return plan.device == "cpu"
    import torch  # noqa: PLC0415

    return not torch.cuda.is_available()


PRELOAD = ("torch", "transformers", "transformers.models.qwen3.modeling_qwen3", "projected_grpo.loop.cli",
           "projected_grpo.loop.grpo", "projected_grpo.env.grader", "projected_grpo.env.sandbox", "projected_grpo.method.vhack",
           "projected_grpo.loop.plots")
"""what a training job imports (scripts/train.py), imported once by preload: a forked job starts with it"""


def preload(env: dict) -> None:
    """Import PRELOAD in this process, with the environment of the first jobs forked from it (the v_hack extractions,
    else the training jobs; later calls import nothing new). Of that environment only BEARTYPE, PGRPO_LEETCODE and
    PGRPO_SHAPE_CALLS are read at import time, the same for both. A thread pool torch made here is rebuilt in each
    child (ForkedJob._child)."""
    import importlib  # noqa: PLC0415

    saved = dict(os.environ)
    os.environ.update(env)  # as a job would see it at import time; this process's own is restored after
    try:
        for name in PRELOAD:
            importlib.import_module(name)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_as_main(argv: list[str]) -> int:
    """Run the script argv[0] in this process as `python argv...` would run it; its exit code (SystemExit's; an
    uncaught exception: its traceback and 1). Shared by forked jobs here and scripts/smoke.py's forked gates."""
    sys.argv = list(argv)
    try:
        runpy.run_path(argv[0], run_name="__main__")
        return 0
    except SystemExit as e:
        if not isinstance(e.code, (int, type(None))):
            print(e.code, file=sys.stderr)
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
        return 1


class ForkedJob:
    """A job `python SCRIPT.py ARGS` run in a forked child of this process (its imports already done: preload): its
    environment, the working directory (the repository), stdout into the log and stderr into `err` (default: the log
    too), SIGTERM to stop it; poll(),
    terminate(), wait() and returncode as Popen's. Unlike a new process, the child inherits the runner's open file
    descriptors, hash seed and the state of modules the runner used; it runs its own exit handlers (not the
    runner's) and then ends with os._exit, without joining threads it left running. A training job seeds its own
    generators and leaves no thread working at its end."""

    def __init__(self, cmd: list[str], env: dict, log, err=None):
        sys.stdout.flush()
        sys.stderr.flush()
        self.returncode: int | None = None
        self.pid = os.fork()
        if self.pid == 0:
            self._child(cmd, env, log, log if err is None else err)

    @staticmethod
    def _child(cmd: list[str], env: dict, log, err) -> None:
        code = 1
        try:
            # the runner's exit handlers and finalizers are not the job's: the job's exit would otherwise run them (and
            # remove, say, a temporary folder of the runner's); the job's own register anew and run at its exit
            atexit._clear()
            for f in list(weakref.finalize._registry):
                f.atexit = False
            weakref.finalize._registered_with_atexit = False
            atexit.register(logging.shutdown)  # registered at import by logging, which the runner imported
            os.dup2(log.fileno(), 1)
            os.dup2(err.fileno(), 2)
            sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__  # fds 1 and 2, whatever the runner redirected
            sys.stdout.reconfigure(write_through=True)
            os.environ.clear()
            os.environ.update(env)
            os.chdir(ROOT)
            import torch  # noqa: PLC0415

            # the pool torch marked stale in the fork is rebuilt now, while the child has one thread (scripts/smoke.py)
            torch.set_num_threads(int(env.get("PGRPO_THREADS", "1")))
            code = run_as_main(cmd[1:])
        except BaseException:  # noqa: BLE001
            traceback.print_exc()
        finally:
            try:  # whatever fails here, the child ends here: it never returns into the runner's loop
                atexit._run_exitfuncs()
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self) -> int:
        if self.returncode is None:
            self.returncode = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        return self.returncode

    def terminate(self) -> None:
        if self.poll() is None:
            os.kill(self.pid, signal.SIGTERM)


def report(running: dict, runs: Path, steps: int, n_total: int, out: Outcome, t0: float) -> None:
    """One progress line: runs done, failed and running (each running run's steps), and the time left estimated from
    the steps done so far."""
    live = sorted(r for _, _, rs, _ in running.values() for r in rs)
    done_steps = steps * len(out.done) + sum(min(progress(runs / n), steps) for n in live)
    elapsed = time.time() - t0
    left = elapsed * (steps * n_total - done_steps) / done_steps if done_steps else float("nan")
    prog = " ".join(f"{n}:{progress(runs / n)}/{steps}" for n in live)
    print(f"[{elapsed / 60:5.1f} min] done {len(out.done)}/{n_total}, failed {len(out.failed)}, "
          f"running {len(live)}, {done_steps}/{steps * n_total} steps, about {left / 60:.1f} min left: {prog}",
          flush=True)


def run_all(jobs_: list[tuple[str, list[str], list[str], list[str]]], plan: Plan, parallel: int, deadline: float,
            every_s: float = 30.0, grade_workers: int = 0, late_starts: bool = False,
            keep_grades: bool = False, preloaded: bool = False) -> Outcome:
    """Run jobs `parallel` at a time until done or the deadline (time.time() seconds); the outcome names runs.
    Once a job has finished, a job whose start would leave less time than the longest finished job took is not
    started (skipped: it would be stopped at the deadline), unless late_starts (a stopped job resumes from its
    checkpoint in a later call: `resumable`). grade_workers > 0 sets each job's sandbox workers. The jobs share one
    grade cache file (GRADE_CACHE, unless PGRPO_GRADE_CACHE is set; set it empty for none). keep_grades: each job
    keeps every grade it receives, deadline-hit ones included, in its first run's folder (rollouts.KEPT_FILE, read first
    when the job resumes: env/rollouts.py), so that a stopped evaluation restarts where it stopped. Unless
    PGRPO_SAMPLE_CACHE is set, the jobs share a sample cache folder of this call (loop/sample_cache.py), removed at
    its end (set it empty for none). preloaded: a job whose command is `python SCRIPT.py ...` runs in a forked child of
    this process, which imported the training loop once (ForkedJob; CPU runs only: nothing here touches CUDA)."""
    runs = ROOT / plan.runs
    (runs / "_logs").mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PGRPO_THREADS="1", PYTHONUNBUFFERED="1")
    env.setdefault("PGRPO_GRADE_CACHE", str(GRADE_CACHE))  # the jobs share their grades (env/rollouts.py)
    own_samples = "PGRPO_SAMPLE_CACHE" not in env  # the jobs share equal decodes (loop/sample_cache.py), this call only
    if own_samples:
        env["PGRPO_SAMPLE_CACHE"] = tempfile.mkdtemp(prefix="sample_cache_", dir=runs / "_logs")
    if grade_workers:
        env["PGRPO_GRADE_WORKERS"] = str(grade_workers)
    try:
        if preloaded:
            preload(env)
        return _run_jobs(jobs_, plan, parallel, deadline, every_s, late_starts, keep_grades, env, runs, preloaded)
    finally:
        if own_samples:
            shutil.rmtree(env["PGRPO_SAMPLE_CACHE"], ignore_errors=True)


def _run_jobs(jobs_, plan: Plan, parallel: int, deadline: float, every_s: float, late_starts: bool, keep_grades: bool,
              env: dict, runs: Path, preloaded: bool = False) -> Outcome:
    """run_all's loop: start, watch and stop the jobs."""
    pending, running, out = list(jobs_), {}, Outcome()
    n_runs = sum(len(j[3]) for j in jobs_)
    t0 = last = time.time()
    longest = 0.0  # wall seconds of the longest finished job
    while pending or running:
        if time.time() > deadline:
            for name, (p, log, rs, started) in running.items():
                p.terminate()
                p.wait()
                log.close()
                # a run that wrote DONE in this job before the process ended (an older DONE, e.g. under --fresh, is not)
                finished = [r for r in rs if (runs / r / "DONE").exists() and (runs / r / "DONE").stat().st_mtime >= started]
                out.done += finished
                out.stopped += [r for r in rs if r not in finished]
            out.skipped += [r for j in pending for r in j[3]]
            break
        for job in list(pending):
            name, cmd, deps, rs = job
            if any(d in out.failed + out.skipped for d in deps) or (not late_starts and time.time() + longest > deadline):
                pending.remove(job)
                out.skipped += rs
            elif len(running) < parallel and all(d in out.done for d in deps):
                pending.remove(job)
                log = open(runs / "_logs" / f"{name}.log", "w")
                job_env = dict(env, PGRPO_GRADES_KEPT=str(runs / rs[0] / rollouts.KEPT_FILE)) if keep_grades else env
                forked = preloaded and len(cmd) > 1 and cmd[0] == PY and cmd[1].endswith(".py")
                proc = ForkedJob(cmd, job_env, log) if forked else \
                    subprocess.Popen(cmd, cwd=ROOT, env=job_env, stdout=log, stderr=subprocess.STDOUT)
                running[name] = (proc, log, rs, time.time())
        time.sleep(1)
        for name, (p, log, rs, started) in list(running.items()):
            if p.poll() is not None:
                log.close()
                del running[name]
                longest = max(longest, time.time() - started)
                (out.done if p.returncode == 0 else out.failed).extend(rs)
                if p.returncode:
                    print(f"FAILED {name} (exit {p.returncode}; {plan.runs}/_logs/{name}.log)", flush=True)
        if time.time() - last > every_s:
            report(running, runs, plan.steps, n_runs, out, t0)
            last = time.time()
    report(running, runs, plan.steps, n_runs, out, t0)
    return out


def finished_arms(plan: Plan) -> list[str]:
    """Arms with at least one finished run (eval.jsonl and DONE) among the plan's seeds."""
    return [a for a in arms.closure(plan.arms)
            if any((ROOT / plan.runs / f"{a}_s{s}" / "DONE").exists() for s in plan.seeds)]


def results(plan: Plan, out_dir: str, allow_unequal_n: bool, preloaded: bool = False) -> None:
    """scripts/results.py on the finished arms (table, results.json, plots) into out_dir; preloaded: in a forked child
    of this process (ForkedJob), which has imported the training loop already."""
    done = finished_arms(plan)
    assert done, "no finished runs"
    cmd = [PY, "scripts/results.py", "--runs", plan.runs, "--arms", ",".join(done), "--out", out_dir, "--require-done"]
    cmd += ["--allow-unequal-n"] if allow_unequal_n else []
    if not preloaded:
        subprocess.run(cmd, cwd=ROOT, check=True)
        return
    code = ForkedJob(cmd, dict(os.environ), sys.__stdout__, sys.__stderr__).wait()
    if code:
        raise subprocess.CalledProcessError(code, cmd)
