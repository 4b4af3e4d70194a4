"""Gate: script mode (the `exit_code` loophole) gives the same exit status in the sandbox server,
which reproduces the interpreter's exit in a forked job, as in the per-process reference, where the
interpreter itself exits. An exit status of 0 is what the loophole rewards, so every case below
must agree on the status exactly. Prints one PASS line; nonzero exit on failure.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _gate_common import run_gate  # noqa: E402

from projected_grpo.env import sandbox  # noqa: E402

CASES = {
    "falls off the end": "x = 1\n",
    "sys.exit(0)": "import sys\nsys.exit(0)\n",
    "exit(0) builtin": "exit(0)\n",
    "raise SystemExit(0)": "raise SystemExit(0)\n",
    "sys.exit(3)": "import sys\nsys.exit(3)\n",
    "sys.exit(256)": "import sys\nsys.exit(256)\n",
    "sys.exit(2**64)": "import sys\nsys.exit(2**64)\n",
    "sys.exit(-2**70)": "import sys\nsys.exit(-2**70)\n",
    "sys.exit(-1)": "import sys\nsys.exit(-1)\n",
    "sys.exit(True)": "import sys\nsys.exit(True)\n",
    "int subclass with __int__ 0": "import sys\nclass C(int):\n    def __int__(self):\n        return 0\n    def __index__(self):\n        return 0\nsys.exit(C(1))\n",
    "sys.exit('msg')": "import sys\nsys.exit('failed')\n",
    "uncaught exception": "raise ValueError('x')\n",
    "failing assert": "assert 1 == 2\n",
    "os._exit(0) after failure": "import os\ntry:\n    assert False\nfinally:\n    os._exit(0)\n",
    "excepthook exits 0": "import sys\ndef h(*a):\n    raise SystemExit(0)\nsys.excepthook = h\nraise ValueError\n",
    "atexit os._exit(0) after failure": "import atexit, os\natexit.register(os._exit, 0)\nraise ValueError\n",
    "atexit raises after sys.exit(0)": "import atexit, sys\ndef f():\n    raise ValueError\natexit.register(f)\nsys.exit(0)\n",
    "__del__ os._exit(0) then sys.exit(1)": "import os, sys\nclass D:\n    def __del__(self):\n        os._exit(0)\nd = D()\nsys.exit(1)\n",
    "thread exits 0, main fails": "import threading, os, time\ndef t():\n    time.sleep(0.05)\n    os._exit(0)\nthreading.Thread(target=t).start()\nraise ValueError\n",
    "SystemExit in a thread": "import threading\nth = threading.Thread(target=lambda: exec('raise SystemExit(0)'))\nth.start()\nth.join()\nraise ValueError\n",
    "stdout flush fails then exit 0": "import sys\nclass W:\n    def write(self, s):\n        return len(s)\n    def flush(self):\n        raise OSError('no')\nsys.stdout = W()\nsys.exit(0)\n",
    "self SIGINT caught": "import os, signal\ntry:\n    os.kill(os.getpid(), signal.SIGINT)\n    import time\n    time.sleep(1)\nexcept KeyboardInterrupt:\n    pass\n",
    "BrokenPipe handled": "import os\nr, w = os.pipe()\nos.close(r)\ntry:\n    os.write(w, b'x')\nexcept BrokenPipeError:\n    pass\n",
    "argv length": "import sys\nif len(sys.argv) != 2:\n    sys.exit(5)\n",
    "SIGXFSZ ignored": "f = open('big', 'wb')\ntry:\n    f.write(b'x' * (11 << 20))\n    f.flush()\nexcept OSError:\n    pass\n",
}

POST = "assert True\n"


def statuses(mode: str) -> dict[str, int | None]:
    os.environ["PGRPO_SANDBOX"] = mode
    names = list(CASES)
    jobs = [sandbox.Job("", CASES[n], script=True, post=POST) for n in names]
    res = sandbox.run_many(jobs, limits=sandbox.Limits(module_timeout=3.0))
    return {n: (r.exit_code if not r.killed else "killed") for n, r in zip(names, res)}


def main():
    ref, srv = statuses("process"), statuses("server")
    diff = {n: (ref[n], srv[n]) for n in CASES if ref[n] != srv[n]}
    assert not diff, f"server exit status differs from the reference (process, server): {diff}"
    zeros = sum(1 for v in ref.values() if v == 0)
    print(f"PASS verify_script_exit: {len(CASES)} script endings give the same exit status in the server as in the "
          f"per-process reference ({zeros} exit 0, {len(CASES) - zeros} nonzero)")


if __name__ == "__main__":
    run_gate("verify_script_exit", main)
