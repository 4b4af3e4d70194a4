"""Organism runs per hour, the same runs two ways in one command: one process per run (today's way) against several
runs of one arm per process (grpo.Trainer over their configurations; `scripts/train.py --seeds`).

    python scripts/bench_runs.py                                   # route then route-random, seeds 0-7, 40 steps
    python scripts/bench_runs.py --seeds 0,1 --steps 3 --model organism:tiny --n-eval 2   # a quick check
    python scripts/bench_runs.py --seeds 0,1,...,15 --arms route   # route alone (the 16-seed sampled comparison)

separate   every run is `scripts/train.py --arm A --seed S` in its own process, --parallel of them side by side
           (default: the machine's cores), one torch thread and --grade-workers grading workers each, on the CPU
batched    the runs of one arm in processes of --runs-per-process runs (`train.py --seeds`; default: enough runs per
           process for at most max(2, cores / 2) processes an arm), side by side, the model on --batched-device
           (default: cuda when there is one, else cpu), the cores' grading workers split among them, and one grade
           cache file shared by them (env/rollouts.py; emptied before the batched way starts)
Both ways start route's processes first; a route-random process starts once the route process of its seeds has
finished (matched to the route run of its seed, of the same way) and a slot is free; with --follow, the batched way
starts every process at once, route-random's reading route's per-step routed fraction as route logs it (train.py
--match-follow). Every run evaluates once, at the
end (kept and ablated; --eval-every 0). Every run's folder is kept under --out (separate/, batched/).

Prints each phase's wall time, each way's runs per hour and busy CPU-seconds a run (the whole machine's, from
/proc/stat) with the completions graded in the sandbox and the CPU-seconds the sandbox servers reported for them
(grading's bound: separate busy CPU over batched sandbox CPU, the most the batched way could gain if all but the
sandbox's grading cost nothing), one run's time split (generation, grading and training from
its metrics; evaluation and start-up as the rest of its process's wall time), the per-seed final deployed strict hack
and no-hint solve both ways with their paired mean difference and 95% t interval (on one device: sampled runs part
once float order flips a token; with the batched way on the GPU the two ways differ in device and dtype, and the
interval compares those), the minutes the batched rate implies for a 300-run table of these runs, and ends with
`speedup N.Nx (separate A runs/h, batched B runs/h)`. Asserts only the workload's shape (one evaluation a run).
bench.json keeps the numbers with the commit (models.git_state), the CPU model and the GPU's name.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tqdm import tqdm

from projected_grpo.env import sandbox
from projected_grpo.loop import logs, models
from projected_grpo.loop.stats import t_interval
from projected_grpo.method import vhack
from projected_grpo.method.pairs import HACK_PAIRS

ROOT = Path(__file__).resolve().parents[1]
ARMS = ("route", "route-random")  # the default; --arms picks from these


def launch(cmds: list[list[str]], deps: list[int | None], parallel: int, env: dict, log_dir: Path,
           desc: str) -> tuple[float, list[float]]:
    """Run the commands, at most `parallel` at a time, command i only once command deps[i] has finished (None: at
    once), each logging to log_dir; (wall seconds of all, wall seconds of each). A failed one stops."""
    log_dir.mkdir(parents=True, exist_ok=True)
    t0, todo, running, took = time.time(), list(range(len(cmds))), [], [0.0] * len(cmds)
    bar = tqdm(total=len(cmds), desc=desc)
    while todo or running:
        for i in [i for i in todo if deps[i] is None or took[deps[i]] > 0][:max(0, parallel - len(running))]:
            todo.remove(i)
            f = (log_dir / f"{desc}_{i}.log").open("w")
            running.append((subprocess.Popen(cmds[i], cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT), i, f,
                            time.time()))
        for item in list(running):
            p, i, f, started = item
            if p.poll() is not None:
                f.close()
                running.remove(item)
                took[i] = time.time() - started
                bar.update(1)
                if p.returncode != 0:  # the others stop too (a follower would wait for a run that never logs)
                    for q, _, _, _ in running:
                        q.kill()
                assert p.returncode == 0, f"{' '.join(cmds[i])} exited {p.returncode} (log {f.name})"
        time.sleep(0.2)
    bar.close()
    return time.time() - t0, took


def final_rates(run: Path) -> tuple[float, float]:
    """(deployed strict hack on hinted prompts, no-hint solve) at the run's last evaluation."""
    rows = logs.read_jsonl(run / "eval.jsonl")
    last = max(r["step"] for r in rows)
    cell = {(r["quarantine"], r["split"]): r for r in rows if r["step"] == last and r["cell"] == "all"}
    return cell[("ablated", "hinted")]["hack_strict"], cell[("kept", "nohint")]["solve"]


PHASES = ("generate", "grade", "train")


def phase_split(run: Path, total: float, column: str) -> dict:
    """One run's process's seconds in generation, grading and training from its metrics (column "t_": wall;
    "t_cpu_": the CPU of the process's own threads, whatever its number of runs), and the rest of `total` (the
    process's wall or CPU: start-up and evaluation)."""
    m = logs.read_jsonl(run / "metrics.jsonl")
    split = {k: sum(r[f"{column}{k}"] for r in m) for k in PHASES}
    split["evaluation and start-up"] = total - sum(split.values())
    return split


def busy_jiffies() -> int:
    """The machine's CPU time spent on work since boot in clock ticks (models.cpu_jiffies): user, nice, system, irq
    and softirq; not idle, iowait or steal (another guest's time on this host)."""
    j = models.cpu_jiffies()
    return j["user"] + j["nice"] + j["system"] + j["irq"] + j["softirq"]


def last_line(f: Path, prefix: str) -> str:
    lines = [x for x in f.read_text().splitlines() if x.startswith(prefix)]
    assert lines, f"{f}: no {prefix!r} line"
    return lines[-1]


def process_cpu(log: Path) -> float:
    """The CPU-seconds of a training process's own threads (its log's 'process cpu:' line, grpo.Trainer.run)."""
    return float(last_line(log, "process cpu: ").split()[2])


def sandbox_work(log_dir: Path, way: str) -> tuple[int, float, float]:
    """(completions the way's processes graded in the sandbox, CPU-seconds their sandbox servers reported for the
    jobs, CPU-seconds of the processes' own threads): each process's last 'grades:' line (the other completions came
    from memory or the shared cache file) and its 'process cpu:' line."""
    n, cpu, own = 0, 0.0, 0.0
    for f in log_dir.glob(f"{way}_*.log"):
        line = last_line(f, "grades: ")
        n += int(line.split()[1])
        m = re.search(r"sandbox server jobs, ([0-9.]+) CPU-s", line)
        assert m, f"{f}: the 'grades:' line names no sandbox CPU: {line}"
        cpu += float(m.group(1))
        own += process_cpu(f)
    return n, cpu, own


def paired(a: list[float], b: list[float]) -> str:
    """The per-seed differences b - a as 'mean [95% t-interval] (n)' (stats.t_interval)."""
    d = [y - x for x, y in zip(a, b)]
    ci = t_interval(d)
    if ci is None:
        return f"{sum(d) / len(d):+.3f} (n={len(d)})"
    return f"{ci[0]:+.3f} [{ci[1]:+.3f}, {ci[2]:+.3f}] (n={len(d)})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2,3,4,5,6,7", help="training seeds of each arm")
    ap.add_argument("--arms", default=",".join(ARMS), help="comma-separated, of route and route-random, route first "
                    "(route-random is matched to route's run of its seed)")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--model", default="organism:cpu")
    ap.add_argument("--n-eval", type=int, default=12, help="eval problems per cell (RunConfig.n_eval)")
    ap.add_argument("--parallel", type=int, default=os.cpu_count(), help="separate: processes side by side")
    ap.add_argument("--grade-workers", type=int, default=2, help="separate: grading workers per process")
    ap.add_argument("--runs-per-process", type=int, default=0,
                    help="batched: runs of one arm per process (0: at most max(2, cores/2) processes an arm)")
    ap.add_argument("--batched-parallel", type=int, default=0, help="batched: processes side by side (0: all)")
    ap.add_argument("--batched-device", default="", help="batched: the model's device (default cuda if any, else cpu)")
    ap.add_argument("--batched-threads", type=int, default=1, help="batched: torch threads per process")
    ap.add_argument("--batched-cuda-sync", default="spin", choices=models.CUDA_SYNC,
                    help="batched on CUDA: PGRPO_CUDA_SYNC (blocking: a thread waiting for the GPU sleeps)")
    ap.add_argument("--batched-decoder", default="auto", help="batched: --decoder (hf samples all runs of a process in "
                    "one generate call; the fast decoder samples them one after another)")
    ap.add_argument("--follow", action="store_true", help="batched: route-random's processes start with route's and "
                    "follow its per-step routed fraction as route logs it (--match-follow), instead of waiting for "
                    "route to end; --batched-parallel 0 then means every process at once")
    ap.add_argument("--out", default="out/bench_runs")
    ap.add_argument("--skip-separate", action="store_true", help="only the batched way (no speedup line)")
    a = ap.parse_args()
    seeds = [int(s) for s in a.seeds.split(",")]
    arms = tuple(a.arms.split(","))
    if any(x not in ARMS for x in arms) or len(set(arms)) < len(arms) or (
            "route-random" in arms and arms[0] != "route"):
        ap.error(f"--arms {a.arms}: give route, or route,route-random (route-random needs route's runs)")
    cores = os.cpu_count() or 2
    rpp = a.runs_per_process or math.ceil(len(seeds) / max(2, cores // 2))
    import torch

    dev = a.batched_device or ("cuda" if torch.cuda.is_available() else "cpu")
    # one evaluation, at the end (train.py's default --eval-every 10 would evaluate five times: the bench of sessions
    # 11 and 13 did, by this omission)
    common = ["--model", a.model, "--steps", str(a.steps), "--n-eval", str(a.n_eval), "--eval-every", "0"]
    env = dict(os.environ, PGRPO_THREADS="1", PYTHONUNBUFFERED="1", PGRPO_GRADE_WORKERS=str(a.grade_workers),
               PGRPO_GRADE_CACHE="")
    out = Path(a.out).resolve()  # the processes run at the repository's root
    vh = {}  # the route arms' v_grad for this model on each way's device and dtype (a v_hack file names both)
    for way, d in (("separate", "cpu"), ("batched", dev)):
        vh[way] = out / f"vhack_own_{d}.safetensors"
        if not vh[way].exists():
            vh[way].parent.mkdir(parents=True, exist_ok=True)
            vhack.extract_to_file(vh[way], HACK_PAIRS, a.model, quarantine="own", device=d)
    walls: dict[str, float] = {}
    ways = ["batched"] if a.skip_separate else ["separate", "batched"]
    cache = out / "grades.sqlite"  # the batched way's shared grades; the separate way (today's) has none
    for f in out.glob("grades.sqlite*"):
        f.unlink()
    took: dict[str, list[float]] = {}
    cpu_s: dict[str, float] = {}  # the machine's busy CPU-seconds (all cores, every process) during each way
    for way in ways:
        runs = out / way
        if way == "separate":
            units = [[s] for s in seeds]
            par, e = a.parallel, env
        else:
            units = [seeds[i:i + rpp] for i in range(0, len(seeds), rpp)]
            # following, every process at once (route-random's beside route's); grading workers as one arm's
            par = a.batched_parallel or len(units) * (len(arms) if a.follow else 1)
            e = dict(env, PGRPO_THREADS=str(a.batched_threads), PGRPO_GRADE_CACHE=str(cache),
                     PGRPO_GRADE_WORKERS=str(max(a.grade_workers, cores // len(units))),
                     PGRPO_CUDA_SYNC=a.batched_cuda_sync)
        cmds = []
        for arm in arms:  # route's processes first; a route-random process waits for the route process of its seeds
            for u in units:
                where = (["--seed", str(u[0]), "--run", f"{arm}_s{u[0]}", "--device", "cpu"] if way == "separate" else
                         ["--seeds", ",".join(map(str, u)), "--device", dev, "--decoder", a.batched_decoder])
                cmds.append([sys.executable, "scripts/train.py", "--arm", arm, "--out-dir", str(runs), "--vhack",
                             str(vh[way]), *where, *common])
        follow = a.follow and way == "batched"  # the separate way stays today's: route-random after route
        if follow:
            cmds = [c + ["--match-follow"] if "route-random" in c else c for c in cmds]
        deps = [None] * len(units) + ([None] * len(units) if follow else list(range(len(units)))) * (len(arms) - 1)
        if runs.exists():  # a follower must never read an earlier call's run folders
            shutil.rmtree(runs)
        for f in (out / "logs").glob(f"{way}_*.log"):  # an earlier call's logs (sandbox_work reads them all)
            f.unlink()
        busy0, hz = busy_jiffies(), os.sysconf("SC_CLK_TCK")
        walls[way], took[way] = launch(cmds, deps, par, e, out / "logs", way)
        cpu_s[way] = (busy_jiffies() - busy0) / hz
        print(f"{way}: {len(cmds)} processes, {len(seeds) * len(arms)} runs in {walls[way]:.0f} s", flush=True)
    n = len(seeds) * len(arms)
    rate = {w: n / walls[w] * 3600 for w in ways}
    graded: dict[str, int] = {}
    sandbox_cpu: dict[str, float] = {}  # CPU-seconds the sandbox servers reported (job processes and servers)
    own_cpu: dict[str, float] = {}  # CPU-seconds of the training processes' own threads
    for w in ways:
        print(f"{w}: {n} runs of {a.steps} steps, {rate[w]:.0f} runs/h")
        first = out / w / f"route_s{seeds[0]}"
        split = phase_split(first, took[w][0], "t_")
        print(f"  route_s{seeds[0]} process's wall (s): " + ", ".join(f"{k} {v:.1f}" for k, v in split.items()))
        csplit = phase_split(first, process_cpu(out / "logs" / f"{w}_0.log"), "t_cpu_")
        print(f"  route_s{seeds[0]} process's own CPU (s): " + ", ".join(f"{k} {v:.1f}" for k, v in csplit.items()))
        graded[w], sandbox_cpu[w], own_cpu[w] = sandbox_work(out / "logs", w)
        print(f"  the machine's busy CPU: {cpu_s[w]:.0f} core-s, {cpu_s[w] / n:.1f} a run (of {cores} cores x "
              f"{walls[w]:.0f} s: {cpu_s[w] / cores / walls[w]:.0%} busy); {graded[w]} completions graded in the "
              f"sandbox, {graded[w] / n:.0f} a run")
        print(f"  CPU-s a run: training processes' own threads {own_cpu[w] / n:.1f}, sandbox servers "
              f"{sandbox_cpu[w] / n:.1f}, the rest of the machine's busy CPU {(cpu_s[w] - own_cpu[w] - sandbox_cpu[w]) / n:.1f}")
    if len(ways) == 2 and sandbox_cpu["batched"] > 0:
        print(f"grading's bound: the batched way's sandbox servers use {sandbox_cpu['batched'] / n:.1f} CPU-s a run, "
              f"a separate run {cpu_s['separate'] / n:.1f} busy CPU-s in all; where the cores limit both ways, at most "
              f"{cpu_s['separate'] / sandbox_cpu['batched']:.1f}x, were all but the sandbox's work free")
    evals = {r["step"] for w in ways for arm in arms for s in seeds for r in logs.read_jsonl(out / w / f"{arm}_s{s}" / "eval.jsonl")}
    assert evals == {a.steps - 1}, f"the runs evaluated at steps {sorted(evals)}, not once at the end"
    box = "bubblewrap" if sandbox.use_bwrap() else "inner layer only (no bubblewrap)"
    weights = models.weights_id(a.model)
    print(f"workload: {a.model} (weights {weights[:16]}), {a.steps} steps, one evaluation at step {a.steps - 1} (kept "
          f"and ablated), --n-eval {a.n_eval}; sandbox: {box}")
    res = {w: {arm: [final_rates(out / w / f"{arm}_s{s}") for s in seeds] for arm in arms} for w in ways}
    for arm in arms:
        for w in ways:
            print(f"{arm} {w}: deployed strict hack " + " ".join(f"{h:.3f}" for h, _ in res[w][arm])
                  + " | no-hint solve " + " ".join(f"{s:.3f}" for _, s in res[w][arm]))
        if len(ways) == 2:
            if dev != "cpu":
                print(f"  (the ways ran on different devices, cpu float32 and {dev}: the difference below compares "
                      "devices, not batching; --batched-device cpu compares batching on one device)")
            print(f"{arm} batched - separate: hack {paired([h for h, _ in res['separate'][arm]], [h for h, _ in res['batched'][arm]])}"
                  f", solve {paired([s for _, s in res['separate'][arm]], [s for _, s in res['batched'][arm]])}")
    print(f"a 300-run table of these runs ({a.steps} steps, --n-eval {a.n_eval}, {rpp} runs a process) at the batched "
          f"rate: {300 / rate['batched'] * 60:.1f} min")
    machine = dict(git=models.git_state(), cpu=models.cpu_model(), sandbox=box, model_sha256=weights,
                   gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
    (out / "bench.json").write_text(json.dumps(dict(walls=walls, rate=rate, busy_cpu_s=cpu_s, graded_in_sandbox=graded, sandbox_cpu_s=sandbox_cpu, process_cpu_s=own_cpu, seeds=seeds, arms=arms, steps=a.steps, device=dev,
                                                    runs_per_process=rpp, batched_parallel=a.batched_parallel, follow=a.follow,
                                                    cuda_sync=a.batched_cuda_sync, n_eval=a.n_eval, results=res, **machine), indent=1))
    if len(ways) == 2:
        print(f"speedup {rate['batched'] / rate['separate']:.1f}x (separate {rate['separate']:.0f} runs/h, "
              f"batched {rate['batched']:.0f} runs/h)")


if __name__ == "__main__":
    main()
