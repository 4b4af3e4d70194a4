"""Gate: `just queue` really enqueues and runs a job on the machine's queue (task-spooler here,
pueue where installed), with a label carrying why: and resolve:, and refuses a job without them.

Uses a private task-spooler server (TS_SOCKET in a temp dir), started by the first enqueue.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    assert shutil.which("tsp") or shutil.which("pueue"), "no queue backend: run scripts/setup.sh"
    with tempfile.TemporaryDirectory() as t:
        env = dict(os.environ, TS_SOCKET=str(Path(t) / "ts.sock"), TMPDIR=t)
        # refused without a label
        r = subprocess.run(["bash", "scripts/queue.sh", "add", "--version"], cwd=ROOT, env=env, capture_output=True,
                           text=True)
        assert r.returncode == 2 and "WHY" in r.stderr, (r.returncode, r.stderr)
        env.update(WHY="gate check", RESOLVE="verify_queue")
        r = subprocess.run(["just", "queue", "--version"], cwd=ROOT, env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        out = r.stdout + r.stderr
        job = out.split("queued job ")[1].split()[0] if "queued job " in out else None
        assert job is not None, out
        f = subprocess.run(["just", "queue-follow", job], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert f.returncode == 0, (f.returncode, f.stdout, f.stderr)
        assert "just" in f.stdout, f.stdout
        st = subprocess.run(["just", "queue-status"], cwd=ROOT, env=env, capture_output=True, text=True)
        assert "why:gate check resolve:verify_queue" in st.stdout, st.stdout
        assert "finished" in st.stdout, st.stdout
        subprocess.run(["tsp", "-K"], env=env, capture_output=True)  # stop the private server
    print(f"PASS queue: job {job} enqueued with a why:/resolve: label, ran to exit 0 and was followed; "
          "a job without a label was refused")


if __name__ == "__main__":
    main()
