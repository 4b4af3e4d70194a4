"""Run every scripts/verify_*.py gate (BEARTYPE=1), then print 'N passed, N failed'.

    python scripts/smoke.py                 all gates
    python scripts/smoke.py adapters pairs  gates whose name contains any of these words
    PGRPO_SMOKE_FULL=1 python scripts/smoke.py   the full tier (`just smoke-full`)

Two tiers. `just smoke` (the one to run before every run; two minutes on the idle 2-core machine) runs every gate, the
gates with a combinatorial matrix (decoder, per-rollout gradients, grading under load, ...) on a covering subset:
every code path, architecture and adapter structure at least once (_gate_common.full_tier). `just smoke-full` runs
every gate on its whole matrix, the grading-under-load gates alone beside busy loops. Both end in 'N passed, N failed'.

The tiny organism the gates load is pinned in data/organisms (nothing is built). This process imports what nearly every gate
imports (torch, transformers, the package; about 5 CPU-seconds, which 29 separate interpreters
paid once each) and runs each gate in a forked child of itself, as `python gate.py` would
(runpy, __main__, its own argv and cwd, exit status from SystemExit), up to PGRPO_SMOKE_JOBS
(default 3) at a time, longest first (durations of the last run are kept in
out/smoke/durations.json); the gates that load both cores on purpose (EXCLUSIVE) run alone at the
end (full tier; in the fast tier they start first and the other gates load the cores). PGRPO_SMOKE_FORK=0 runs every gate in a fresh interpreter instead. Each gate's PASS line is
shown as it finishes, with its wall seconds and (forked) its CPU seconds: the gate's and those of the processes it
waited for (out/smoke/cpu.json; the last line sums them with this process's). Its full output is kept in
out/smoke/<gate>.log. Exit status is nonzero when any gate fails.
"""

from __future__ import annotations

import atexit
import json
import os
import resource
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOGDIR = ROOT / "out" / "smoke"
# gates that keep both cores busy on purpose (grading under load): in `just smoke-full` nothing else may run beside
# them; in `just smoke` they start first, loaded by the gates beside them (each prints the busy fraction it saw)
EXCLUSIVE = ("verify_grader_canonical", "verify_grader_determinism") if os.environ.get("PGRPO_SMOKE_FULL") == "1" else ()
# started first: the longest gate cold (inductor's C++ compile), the grading gates that the others load, and verify_runner (it sleeps)
FIRST = ("verify_per_sample_grads", "verify_grader_canonical", "verify_grader_determinism", "verify_runner")
# each gate's wall seconds in a run of the fast tier (no out/smoke/durations.json: a fresh clone) on the idle 2-core machine, 3 at
# a time (session 20's cold runs); the order they give (longest first) is used until a run has recorded real durations;
# unlisted gates: 5. verify_runner sleeps on purpose (about 16 s, little CPU): started last, it ran alone at the end.
GUESS = {"verify_decoder": 35, "verify_per_sample_grads": 30, "verify_grpo": 22, "verify_scorda": 20,
         "verify_runner": 16, "verify_probe": 15, "verify_e2e_tiny": 15, "verify_routing": 14,
         "verify_grader_canonical": 13, "verify_batched_runs": 12, "verify_sandbox_adversarial": 11,
         "verify_grader_determinism": 10, "verify_golden_trace": 10, "verify_sandbox_isolation": 10,
         "verify_grade_cache": 9, "verify_vhack": 9, "verify_ddp": 8, "verify_organism": 6,
         "verify_decisive_results": 6, "verify_results": 4}


def gates(filters: list[str]) -> list[Path]:
    found = sorted((ROOT / "scripts").glob("verify_*.py"))
    return [p for p in found if not filters or any(f in p.stem for f in filters)]


def env() -> dict:
    e = dict(os.environ, BEARTYPE="1", PYTHONUNBUFFERED="1", PGRPO_SMOKE="1")
    e["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + e.get("PYTHONPATH", "")
    return e


PRELOAD = ("torch", "transformers", "numpy", "scipy.stats", "matplotlib.pyplot", "tqdm",
           "transformers.models.qwen3.modeling_qwen3", "transformers.models.llama.modeling_llama",
           "projected_grpo.loop.grpo", "projected_grpo.method.adapters", "projected_grpo.env.sandbox", "projected_grpo.env.grader",
           "projected_grpo.method.vhack", "projected_grpo.method.interventions", "projected_grpo.loop.logs", "projected_grpo.method.arms",
           "projected_grpo.loop.decoder", "projected_grpo.loop.distributed", "projected_grpo.organism.build",
           "projected_grpo.organism.tasks", "projected_grpo.method.pairs", "projected_grpo.loop.plots")
GATE_TIMEOUT = 900


def preload() -> None:
    """Import in this process what the gates import, before any thread exists (the children are forks)."""
    os.environ.update(env())
    import matplotlib  # noqa: PLC0415
    matplotlib.use("Agg")
    import importlib  # noqa: PLC0415
    for name in PRELOAD:
        importlib.import_module(name)
    import torch  # noqa: PLC0415
    torch.set_num_threads(int(os.environ.get("PGRPO_THREADS", "1")))
    from projected_grpo.loop import models  # noqa: PLC0415
    models.loaded_organism(models.resolve("organism:tiny"), torch.float32)  # most gates load it: once, here
    sys.path.insert(0, str(ROOT / "scripts"))
    importlib.import_module("_runner")  # run_as_main, which each forked gate runs its script with


def start_gate(g: Path) -> int:
    """Fork a child that runs gate `g` as `python g` would, its output into out/smoke/<gate>.log."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        fd = os.open(LOGDIR / f"{g.stem}.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        # torch marks its parent-made thread pool stale in a fork and rebuilds it at the next request for the pool; a new
        # thread's first parallel op makes one, so the loader's worker threads can race that rebuild and one reads no
        # pool ('Invalid thread pool!', CI stop 36). Rebuilt here, while the child has one thread.
        import torch  # noqa: PLC0415
        torch.set_num_threads(torch.get_num_threads())
        os.chdir(ROOT)
        from _runner import run_as_main  # noqa: PLC0415  (imported by preload)

        code = run_as_main([str(g)])
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def finish_gate(g: Path, status: int, dt: float, cpu: float | None) -> tuple:
    out = (LOGDIR / f"{g.stem}.log").read_text(errors="replace").strip()
    lines = out.splitlines()
    last = next((ln for ln in reversed(lines) if ln.startswith("PASS")), lines[-1] if lines else "")
    return g, os.waitstatus_to_exitcode(status) == 0, dt, last, out, cpu


def run_forked(todo: list[Path], jobs: int, done, ready=lambda g: True) -> None:
    """Run gates as forked children, `jobs` at a time, each once ready(gate); done(result) as each ends."""
    queue, running = list(todo), {}
    while queue or running:
        while len(running) < jobs and any(ready(g) for g in queue):
            g = next(g for g in queue if ready(g))
            queue.remove(g)
            running[start_gate(g)] = (g, time.time())
        if not running:
            time.sleep(0.05)
            continue
        pid, status, usage = os.wait4(-1, os.WNOHANG)
        if pid == 0:
            time.sleep(0.05)
            for p, (_, t) in running.items():
                if time.time() - t > GATE_TIMEOUT:  # a hung gate fails instead of hanging the smoke
                    os.kill(p, signal.SIGKILL)
            continue
        if pid in running:
            g, t = running.pop(pid)
            # CPU-seconds of the gate and of the processes it waited for (sandbox servers, busy loops, workers)
            done(finish_gate(g, status, time.time() - t, usage.ru_utime + usage.ru_stime))


def run_gate(g: Path) -> tuple:
    """A gate in a fresh interpreter (PGRPO_SMOKE_FORK=0)."""
    t = time.time()
    r = subprocess.run([sys.executable, str(g)], cwd=ROOT, env=env(), capture_output=True, text=True,
                       timeout=GATE_TIMEOUT)
    out = (r.stdout + r.stderr).strip()
    (LOGDIR / f"{g.stem}.log").write_text(out + "\n")
    lines = out.splitlines()
    last = next((ln for ln in reversed(lines) if ln.startswith("PASS")), lines[-1] if lines else "")
    return g, r.returncode == 0, time.time() - t, last, out, None


def report(res, passed: list, failed: list, durations: dict, cpus: dict) -> None:
    g, ok, dt, last, out, cpu = res
    durations[g.stem] = round(dt, 1)
    if cpu is not None:
        cpus[g.stem] = round(cpu, 1)
    (passed if ok else failed).append(g.stem)
    cpu_s = f"{cpu:6.1f}" if cpu is not None else "     -"
    print(f"{'PASS' if ok else 'FAIL'} {g.stem:32s} {dt:6.1f}s cpu {cpu_s}s  {last[:150]}", flush=True)
    if not ok:
        print("    " + "\n    ".join(out.splitlines()[-15:]), flush=True)


def main() -> int:
    LOGDIR.mkdir(parents=True, exist_ok=True)
    dfile = LOGDIR / ("durations-full.json" if EXCLUSIVE else "durations.json")
    durations = json.loads(dfile.read_text()) if dfile.exists() else {}
    todo = gates(sys.argv[1:])
    alone = [g for g in todo if g.stem in EXCLUSIVE]
    shared = sorted((g for g in todo if g.stem not in EXCLUSIVE),
                    key=lambda g: (FIRST.index(g.stem) if g.stem in FIRST else len(FIRST),
                                   -durations.get(g.stem, GUESS.get(g.stem, 5))))
    jobs = max(1, int(os.environ.get("PGRPO_SMOKE_JOBS", 3)))
    t_all = time.time()
    print(f"smoke: {len(shared)} gates, {jobs} at a time, "
          f"then {len(alone)} alone", flush=True)
    passed, failed, cpus = [], [], {}
    done = lambda res: report(res, passed, failed, durations, cpus)  # noqa: E731
    if os.environ.get("PGRPO_SMOKE_FORK", "1") == "1":
        t = time.time()
        preload()
        print(f"smoke: preloaded torch, transformers and the package in {time.time() - t:.0f}s", flush=True)
        run_forked(shared, jobs, done)
        for g in alone:
            run_forked([g], 1, done)
    else:
        with ThreadPoolExecutor(jobs) as ex:
            for f in as_completed([ex.submit(run_gate, g) for g in shared]):
                done(f.result())
        for g in alone:
            done(run_gate(g))
    dfile.write_text(json.dumps(durations, indent=1, sort_keys=True))
    (LOGDIR / "cpu.json").write_text(json.dumps(cpus, indent=1, sort_keys=True))
    own = resource.getrusage(resource.RUSAGE_SELF)
    cpu_all = f", {sum(cpus.values()) + own.ru_utime + own.ru_stime:.0f} CPU-s (gates and preload)" if cpus else ""
    print(f"smoke: {time.time() - t_all:.0f}s{cpu_all}; failed: {', '.join(failed) or 'none'}")
    print(f"{len(passed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
