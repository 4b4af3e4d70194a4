"""Gate: hostile completions are graded 'Incorrect' (never eq_correct), leave no file outside the
sandbox and no process behind, and the grader survives; in both sandboxes (the server and the
per-process reference), each with bwrap and with the inner layer only (PGRPO_NO_BWRAP=1).
Short limits keep the gate fast.

Tiers (_gate_common.full_tier): `just smoke-full` runs the four configurations against the problem's 70 tests;
`just smoke` runs the server with bwrap and with the inner layer only and the per-process reference with bwrap (three
configurations), against the problem's first 4 tests (every hostile case still runs its tests; the memory bomb re-fills
160 MB once per test, 8 of the 11 CPU-s a configuration took with 70)."""

import multiprocessing as mp
import os
import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _gate_common import REPO, fence, full_tier, hostile, problems, run_gate, tier  # noqa: E402

from projected_grpo.env import sandbox  # noqa: E402
from projected_grpo.env.grader import grade_batch  # noqa: E402
from projected_grpo.env.problems import method_name  # noqa: E402

# short CPU limits and a 160 MB address space keep the timeout and memory cases quick (a 1 GB bomb
# re-filled by each of the problem's 70 tests took 35 s on a loaded machine)
LIMITS = sandbox.Limits(per_test_timeout=0.5, module_timeout=1.0, start_timeout=10.0, wall_factor=2.0, memory_mb=160,
                        grace=0.5)
# tests of the problem the hostile completions are graded on: all in the full tier, the first 4 in the fast one
N_TESTS = None if full_tier() else 4


# A local listener of the gate's own: the only address the network case tries (loopback, this machine).
_listener = socket.socket()
_listener.bind(("127.0.0.1", 0))
_listener.listen(8)
LISTENER_PORT = _listener.getsockname()[1]

def snapshot():
    files = set()
    for root in (Path("/tmp"), REPO, Path("/root"), Path("/var/tmp"), Path("/dev/shm")):  # outside-ok: where an escaped write would land
        if root == REPO:
            files |= {str(p) for p in REPO.rglob("*") if ".git" not in p.parts and "__pycache__" not in p.parts}
        else:
            files |= {str(p) for p in root.iterdir()} if root.exists() else set()
    return files


def ours_now(uid: int) -> bool:
    """A slot uid of this process: its sandbox servers', or one it leased earlier and released
    (a released uid leased now belongs to another grader process running in parallel)."""
    return uid in sandbox.held_uids() or (uid in sandbox.used_uids() and not sandbox.uid_leased(uid))


def leftover_processes():
    """Processes of this process's slot uids (job processes; the servers themselves run as root)."""
    out = subprocess.run(["ps", "-eo", "uid=,pid=,args="], capture_output=True, text=True, check=True).stdout
    return [ln for ln in out.splitlines() if ours_now(int(ln.split()[0]))]


def run_mode(p, mode: str, no_bwrap: bool):
    os.environ["PGRPO_SANDBOX"] = mode
    os.environ["PGRPO_NO_BWRAP"] = "1" if no_bwrap else "0"
    cases = hostile(method_name(p), LISTENER_PORT)
    target = dict(p, gt_answer=p["gt_answer"][:N_TESTS])
    before = snapshot()
    t0 = time.time()
    results = grade_batch([target] * len(cases), [fence(c) for c in cases.values()], limits=LIMITS)
    dt = time.time() - t0
    time.sleep(0.5)
    bad = [(name, r.label, r.eq_correct) for name, r in zip(cases, results) if r.label != "Incorrect" or r.eq_correct]
    assert not bad, f"hostile completions mislabelled: {bad}"
    new = snapshot() - before

    def ours(f):  # other people edit the repo in parallel: count only sandbox-made files
        try:
            return "adv_marker" in f or ours_now(os.lstat(f).st_uid)
        except OSError:
            return False
    new = {f for f in new if ours(f)}
    assert not new, f"files left outside the sandbox: {sorted(new)[:10]}"
    procs = leftover_processes()
    assert not procs, f"processes left behind: {procs[:5]}"
    net = sandbox.run_job(sandbox.Job(p["setup_code"], cases["network"], []), 0, LIMITS)
    if not no_bwrap:
        assert "NET OK" not in net.stdout, "network reachable inside bwrap"
    after = grade_batch([p], [fence(p["canonical_solution"])])[0]
    assert after.label == "Correct", f"grader did not survive: {after}"
    return len(cases), dt, "NET OK" in net.stdout


def run_config(mode: str, no_bwrap: bool) -> str:
    p = problems()[0]
    n, dt, net = run_mode(p, mode, no_bwrap)
    return (f"{mode}/{'inner-only' if no_bwrap else 'bwrap'}: {n} hostile cases on {len(p['gt_answer'][:N_TESTS])} tests "
            f"Incorrect in {dt:.1f}s "
            f"(network reachable: {net})")


def main():
    configs = [(mode, nb) for mode in sandbox.SANDBOX_MODES for nb in (False, True)
               if nb or shutil.which("bwrap") is not None]
    if shutil.which("bwrap") is None:
        print("WARNING: bwrap missing; testing the inner layer only")
    elif not full_tier():  # fast tier: the per-process reference in one configuration (with bwrap)
        configs = [(m, nb) for m, nb in configs if m == "server" or not nb]
    # the configurations side by side, each in a forked process with its own servers and slot uids
    # (most of each one's time is waiting for deadlines); every check is per process and per uid
    with ProcessPoolExecutor(len(configs), mp_context=mp.get_context("fork")) as ex:
        summaries = list(ex.map(run_config, *zip(*configs)))
    print("PASS verify_sandbox_adversarial: " + "; ".join(summaries)
          + f"; no files outside, no processes left, canonical still Correct ({tier()} tier)")


if __name__ == "__main__":
    run_gate("verify_sandbox_adversarial", main)
