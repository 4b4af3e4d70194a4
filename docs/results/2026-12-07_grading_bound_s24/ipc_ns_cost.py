"""What a job's private IPC namespace costs (issue 28, session 24): 1000 forks of a small Python process whose child
exits at once, against 1000 whose child first calls unshare(CLONE_NEWIPC), as a sandbox server's job does; per fork
the wall time and the whole machine's busy CPU from /proc/stat (the namespace's teardown may run in kernel workers,
outside the child). Needs root. A one-off script kept beside its output; run it from the repository's root:

    python3 docs/results/2026-12-07_grading_bound_s24/ipc_ns_cost.py
"""
import ctypes
import os
import time

libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWIPC = 0x08000000


def busy() -> int:
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[0] + v[1] + v[2] + v[5] + v[6]  # user nice system irq softirq


def measure(label: str, unshare: bool, n: int = 1000) -> None:
    hz = os.sysconf("SC_CLK_TCK")
    b0, t0 = busy(), time.perf_counter()
    for _ in range(n):
        pid = os.fork()
        if pid == 0:
            if unshare:
                assert libc.unshare(CLONE_NEWIPC) == 0
            os._exit(0)
        os.waitpid(pid, 0)
    time.sleep(1.0)  # deferred teardown work lands in the count
    b1, dt = busy(), time.perf_counter() - t0 - 1.0
    print(f"{label}: {1e3 * dt / n:.2f} ms wall a fork, machine busy CPU {1e3 * (b1 - b0) / hz / n:.2f} ms a fork")


for _ in range(2):
    measure("fork + exit", False)
    measure("fork + unshare(CLONE_NEWIPC) + exit", True)
