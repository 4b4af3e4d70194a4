"""How often a smoke gate fails with torch's 'Invalid thread pool!' after fork, with smoke.py as it is at a commit.

    python3 scripts/probe_fork_race.py --rev c4ae92e~1 --tries 30     # smoke.py before the fix
    python3 scripts/probe_fork_race.py --rev HEAD --tries 30          # smoke.py now

Runs `PGRPO_SMOKE_FULL=1 python3 <smoke.py of REV> <gate>` --tries times (the gate's own code from the working tree)
and counts the tries whose gate log holds 'Invalid thread pool', and those that failed otherwise. The race is
nondeterministic: the count is a rate, not a gate. Journal, 2026-12-06/07 session 15.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rev", default="HEAD", help="the commit whose scripts/smoke.py runs the gate")
    ap.add_argument("--tries", type=int, default=30)
    ap.add_argument("--gate", default="verify_runner")
    a = ap.parse_args()
    if a.tries < 1:
        ap.error(f"--tries {a.tries}: must be at least 1")
    src = subprocess.run(["git", "show", f"{a.rev}:scripts/smoke.py"], cwd=ROOT, capture_output=True, text=True)
    if src.returncode != 0:
        ap.error(f"--rev {a.rev}: no scripts/smoke.py there ({src.stderr.strip()})")
    smoke = ROOT / "scripts" / "_probe_smoke.py"  # beside smoke.py, so that its ROOT and gate paths resolve the same
    smoke.write_text(src.stdout)
    log = ROOT / "out" / "smoke" / f"{a.gate}.log"
    race = other = 0
    try:
        for _ in tqdm(range(a.tries), desc=f"{a.gate} with smoke.py of {a.rev}"):
            r = subprocess.run([sys.executable, str(smoke), a.gate], cwd=ROOT, capture_output=True, text=True,
                               env=dict(os.environ, PGRPO_SMOKE_FULL="1"))
            text = log.read_text(errors="replace") if log.exists() else ""
            if "Invalid thread pool" in text:
                race += 1
            elif r.returncode != 0:
                other += 1
    finally:
        smoke.unlink(missing_ok=True)
    print(f"smoke.py of {a.rev}: {race} of {a.tries} tries failed with 'Invalid thread pool', {other} failed otherwise")


if __name__ == "__main__":
    main()
