"""Run every scripts/verify_*.py gate (BEARTYPE=1), then print 'N passed, N failed'.

    python scripts/smoke.py                 all gates
    python scripts/smoke.py adapters pairs  gates whose name contains any of these words

Each gate is a separate process; its last output line is shown, and its full output is kept in
out/smoke/<gate>.log. Exit status is nonzero when any gate fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# cheap gates first, the end-to-end pipeline last
ORDER = ["verify_pair_parser", "verify_adapters", "verify_per_sample_grads", "verify_grpo", "verify_erase",
         "verify_routing", "verify_vhack", "verify_results", "verify_organism", "verify_grader_labels",
         "verify_pairs", "verify_sandbox_adversarial", "verify_grader_canonical", "verify_loading", "verify_queue",
         "verify_e2e_tiny"]


def gates(filters: list[str]) -> list[Path]:
    found = sorted((ROOT / "scripts").glob("verify_*.py"))
    rank = {n: i for i, n in enumerate(ORDER)}
    found.sort(key=lambda p: (rank.get(p.stem, len(ORDER) - 1), p.stem))
    return [p for p in found if not filters or any(f in p.stem for f in filters)]


def main() -> int:
    env = dict(os.environ, BEARTYPE="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    logdir = ROOT / "out" / "smoke"
    logdir.mkdir(parents=True, exist_ok=True)
    passed, failed = [], []
    t_all = time.time()
    for g in gates(sys.argv[1:]):
        t = time.time()
        r = subprocess.run([sys.executable, str(g)], cwd=ROOT, env=env, capture_output=True, text=True)
        out = (r.stdout + r.stderr).strip()
        (logdir / f"{g.stem}.log").write_text(out + "\n")
        lines = out.splitlines()
        last = next((ln for ln in reversed(lines) if ln.startswith("PASS")), lines[-1] if lines else "")
        ok = r.returncode == 0
        (passed if ok else failed).append(g.stem)
        print(f"{'PASS' if ok else 'FAIL'} {g.stem:32s} {time.time() - t:6.1f}s  {last[:150]}", flush=True)
        if not ok:
            print("    " + "\n    ".join(out.splitlines()[-15:]), flush=True)
    print(f"smoke: {time.time() - t_all:.0f}s; failed: {', '.join(failed) or 'none'}")
    print(f"{len(passed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
