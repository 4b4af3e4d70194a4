"""Shared helpers of the verify_* gates: data path, fencing, busy-core load, the gate entry point."""

import multiprocessing as mp
import os
import sys
from pathlib import Path

from projected_grpo.method.pairs import DEFAULT_LEETCODE
from projected_grpo.env.problems import load_jsonl

REPO = Path(__file__).resolve().parents[1]
LEETCODE = DEFAULT_LEETCODE


def problems():
    return load_jsonl(LEETCODE)


def fence(code: str) -> str:
    return f"Here is my solution.\n```python\n{code}\n```\n"


def _spin():
    while True:
        pass


class BusyCores:
    """Context manager: n busy-loop processes keep the cores loaded, killed on exit."""

    def __init__(self, n=None):
        self.n = n or os.cpu_count()

    def __enter__(self):
        self.procs = [mp.Process(target=_spin, daemon=True) for _ in range(self.n)]
        for p in self.procs:
            p.start()
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.kill()
            p.join()


def run_gate(name: str, main) -> None:
    """Run a gate's main(): an AssertionError prints `FAIL <name>: <message>` and exits 1."""
    try:
        main()
    except AssertionError as e:
        print(f"FAIL {name}: {e}")
        sys.exit(1)


def compiled_graphs() -> int:
    """Graphs dynamo has compiled in this process so far: a compile gate asserts it grew, so that a silent
    fall back to eager cannot pass as compiled."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def cheap_cpu_compile() -> str:
    """The compile gates' backend on the CPU: aot_eager (models.compile_backend reads PGRPO_COMPILE_BACKEND) unless
    PGRPO_COMPILE_BACKEND names another (inductor: its C++ code generation too, minutes cold on 2 cores). smoke_gpu
    leaves it unset: inductor. Returns the backend in use."""
    os.environ["PGRPO_COMPILE_BACKEND"] = os.environ.get("PGRPO_COMPILE_BACKEND") or "aot_eager"
    return os.environ["PGRPO_COMPILE_BACKEND"]
