"""Gate: the sandbox server prepares a job's setup code before it forks the job, and that changes
nothing a job can see.

The server compiles each job's (trusted) setup once, and where the setup is declarative
(_pgrpo_server.declarative_setup: imports of modules the server has loaded, definitions and
assignments whose definition-time expressions only look names up) it executes it once and hands
each forked job the resulting globals instead of executing the setup in the job. Checked here:

  1. declarative_setup accepts both setups of the environment's data (LeetCode, organism) and
     rejects every setup below that could run code (an unloaded import, a call, a decorator, a
     default or annotation that computes, a class body statement, an attribute assignment);
  2. a job's globals after setup (names, types, qualnames, modules, constant values) are the same
     in the server as in the per-process reference, for both real setups and synthetic ones;
  3. a job that mutates the setup's classes, functions and globals leaves nothing for the next job
     of the same setup on the same server;
  4. a setup that is not declarative runs in the job itself: its globals record the job's uid and
     pid, not the server's (root);
  5. a declarative setup that raises fails in the job exactly as in the reference (status 1, its
     traceback's last line on stderr), and the server is not restarted.

One worker slot; server and process sandbox with bubblewrap where present. Prints one PASS line;
nonzero exit on failure.
"""

import ast
import os
import sys
from pathlib import Path

os.environ["PGRPO_GRADE_WORKERS"] = "1"

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _gate_common import problems, run_gate  # noqa: E402

from projected_grpo.env import _pgrpo_server as server_mod  # noqa: E402
from projected_grpo.env import sandbox  # noqa: E402
from projected_grpo.organism import tasks  # noqa: E402

for _name in server_mod.PRELOAD:  # declarative_setup judges imports against the loaded modules, as the server
    __import__(_name)

LIMITS = sandbox.Limits(per_test_timeout=5.0, module_timeout=5.0)

REJECT = {
    "unloaded import": "import pgrpo_no_such_module\n",
    "from-import of a submodule not loaded": "from pgrpo_no_such_package import x\n",
    "relative import": "from . import x\n",
    "call at module level": "import random\nrandom.seed(1)\n",
    "assignment from a call": "import os\nUID = os.getuid()\n",
    "power": "X = 2 ** 100\n",
    "attribute assignment": "import os\nos.environ['A'] = '1'\n",
    "computing default": "def f(x=print(1)):\n    return x\n",
    "computing annotation": "def f(x: print(1)):\n    return x\n",
    "decorator": "import functools\n@functools.lru_cache\ndef f():\n    return 1\n",
    "class body statement": "class A:\n    print(1)\n",
    "metaclass keyword": "class A(metaclass=type):\n    pass\n",
    "computing base": "class A(type('B', (), {})):\n    pass\n",
    "float of input": "X = float(input())\n",
    "loop": "for i in range(3):\n    pass\n",
}

SYNTHETIC = {
    "defs and constants": ("from typing import *\nimport collections\ninf = float('inf')\nNAMES = ['a', 'b']\n"
                           "class Node:\n    '''doc'''\n    kind = 'node'\n    def __init__(self, v: int = 0, nxt: Optional['Node'] = None):\n"
                           "        self.v, self.nxt = v, nxt\n"
                           "def build(vals: List[int]) -> Optional[Node]:\n    return Node(vals[0]) if vals else None\n"),
    "empty": "",
}

DESCRIBE = """
def describe():
    out = []
    for k, v in sorted(globals().items()):
        if k in ('describe', 'mutate', 'pristine') or k.startswith('__') and k not in ('__name__',):
            continue
        row = [k, type(v).__name__, getattr(v, '__module__', None) if callable(v) else None,
               getattr(v, '__qualname__', None) if callable(v) else None]
        if isinstance(v, (int, float, str, bool, type(None), list, tuple)):
            row.append(repr(v))
        if type(v).__name__ == 'function':
            row.append(repr(v.__defaults__))
        if isinstance(v, type):
            row.append(sorted(n for n in vars(v) if not n.startswith('__') or n == '__init__'))
        out.append(row)
    return out
"""

MUTATE = """
def mutate():
    for k, v in list(globals().items()):
        if isinstance(v, type) and v.__module__ == '__main__' and k not in ('describe', 'mutate', 'pristine'):
            v.pgrpo_leak_mark = 1
            v.__init__ = lambda self, *a, **kw: None
        elif type(v).__name__ == 'function' and k not in ('describe', 'mutate', 'pristine'):
            v.__defaults__ = ('pgrpo_leak_mark',) * len(v.__defaults__ or ())
            v.pgrpo_leak_mark = 1
        elif isinstance(v, list):
            v.append('pgrpo_leak_mark')
    globals()['pgrpo_leak_mark'] = 1
    globals()['inf'] = 'pgrpo_leak_mark'
    return True
"""

PRISTINE = """
def pristine():
    bad = []
    for k, v in list(globals().items()):
        if k in ('describe', 'mutate', 'pristine'):
            continue
        if (k == 'pgrpo_leak_mark' or (isinstance(v, str) and v == 'pgrpo_leak_mark')
                or getattr(v, 'pgrpo_leak_mark', None) is not None
                or 'pgrpo_leak_mark' in repr(getattr(v, '__defaults__', None))
                or (isinstance(v, list) and 'pgrpo_leak_mark' in v)):
            bad.append(k)
    return bad
"""


def run(setup: str, code: str, test: str) -> sandbox.RunResult:
    return sandbox.run_job(sandbox.Job(setup, code, [("value", test)]), 0, LIMITS)


def value(setup: str, code: str, test: str):
    r = run(setup, code, test)
    assert r.done and r.tests[0].status == "ok", \
        f"{os.environ['PGRPO_SANDBOX']}: job failed: {r.tests[0]} {r.module_err} {r.stderr[-400:]}"
    return r.tests[0].value


def main():
    assert os.geteuid() == 0, "this gate needs root (slot uids)"
    real = {"leetcode": problems()[0]["setup_code"],
            "organism": tasks.generate_split("eval", 1, seed=1)[0]["setup_code"]}
    # 1. the judgement
    for name, src in real.items():
        assert server_mod.declarative_setup(ast.parse(src)), f"the {name} setup is not declarative"
    for name, src in SYNTHETIC.items():
        assert server_mod.declarative_setup(ast.parse(src)), f"synthetic setup {name!r} is not declarative"
    accepted = [name for name, src in REJECT.items() if server_mod.declarative_setup(ast.parse(src))]
    assert not accepted, f"declarative_setup accepted setups that run code: {accepted}"

    setups = {**real, **SYNTHETIC}
    described = {}
    for mode in ("process", "server"):
        os.environ["PGRPO_SANDBOX"] = mode
        # 2. the globals a job sees
        described[mode] = {name: value(src, DESCRIBE, "describe()") for name, src in setups.items()}
        # 3. mutations of the setup's objects do not reach the next job of the same setup
        for name, src in setups.items():
            seen = value(src, MUTATE + PRISTINE, "mutate() and pristine()")  # the probe sees mutations in their own job
            assert seen and "pgrpo_leak_mark" in seen, f"{mode}: setup {name!r}: the probe missed mutations: {seen}"
            assert value(src, MUTATE, "mutate()") is True
            left = value(src, PRISTINE, "pristine()")
            assert left == [], f"{mode}: setup {name!r}: a job's mutations reached the next job: {left}"
        # a declarative setup that raises fails in the job as in the reference, and the server keeps serving
        r = run("X = float('not a number')\n", "", "1")
        assert not r.setup_ok and not r.done and r.exit_code == 1 and \
            r.stderr.strip().splitlines()[-1] == "ValueError: could not convert string to float: 'not a number'", \
            f"{mode}: failing setup: {r}"
        if mode == "server":
            assert sandbox.SERVERS.all[0].restarts == 0, "a failing setup restarted the server"
        # 4. a setup that is not declarative runs in the job
        ids = value("import os\nSETUP_IDS = [os.getuid(), os.getpid()]\n", "import os",
                    "SETUP_IDS == [os.getuid(), os.getpid()] and os.getuid() != 0")
        assert ids is True, f"{mode}: the non-declarative setup did not run in the job (uid/pid of another process)"
    for name in setups:
        assert described["server"][name] == described["process"][name], \
            f"setup {name!r}: globals differ between server and process sandbox:\n" \
            f"  server  {described['server'][name]}\n  process {described['process'][name]}"
    n_names = sum(len(v) for v in described["server"].values())
    sandbox.SERVERS.close()
    print(f"PASS verify_server_setup: both data setups and {len(SYNTHETIC)} synthetic ones declarative, "
          f"{len(REJECT)} code-running setups rejected; the globals after setup ({n_names} names over {len(setups)} setups) "
          f"are the same in the server as in the process sandbox; a job's mutations of them never reached the next job; "
          f"a non-declarative setup ran as the job's uid and pid (bwrap: {sandbox.use_bwrap()})")


if __name__ == "__main__":
    run_gate("verify_server_setup", main)
