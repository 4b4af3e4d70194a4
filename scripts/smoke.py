"""Run every scripts/verify_*.py gate (BEARTYPE=1), then print 'N passed, N failed'.

    python scripts/smoke.py                 all gates
    python scripts/smoke.py adapters pairs  gates whose name contains any of these words

First the artefacts that several gates share are built once (the tiny organism, without base
rates), so no two gates build them concurrently. Then the gates run as separate processes, up to
PGRPO_SMOKE_JOBS (default 3) at a time, longest first (durations of the last run are kept in
out/smoke/durations.json); the gates that load both cores on purpose (EXCLUSIVE) run alone at the
end. Each gate's PASS line is shown as it finishes; its full output is kept in
out/smoke/<gate>.log. Exit status is nonzero when any gate fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOGDIR = ROOT / "out" / "smoke"
# gates that keep both cores busy on purpose (grading under load): nothing else may run beside them
EXCLUSIVE = ("verify_grader_canonical", "verify_grader_determinism")
# a first guess of each gate's duration, in seconds, used until a run has recorded real ones
GUESS = {"verify_e2e_tiny": 90, "verify_ddp": 45, "verify_grpo": 30, "verify_sandbox_adversarial": 25,
         "verify_organism": 15, "verify_probe": 15, "verify_loading": 15, "verify_decoder": 13}


def gates(filters: list[str]) -> list[Path]:
    found = sorted((ROOT / "scripts").glob("verify_*.py"))
    return [p for p in found if not filters or any(f in p.stem for f in filters)]


def env() -> dict:
    e = dict(os.environ, BEARTYPE="1", PYTHONUNBUFFERED="1")
    e["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + e.get("PYTHONPATH", "")
    return e


def prepare() -> None:
    """Shared artefacts: the tiny organism (cached under out/organism; base rates not measured)."""
    r = subprocess.run([sys.executable, "-m", "projected_grpo.organism.build", "--size", "tiny", "--n-per-cell", "0"],
                       cwd=ROOT, env=env(), capture_output=True, text=True)
    assert r.returncode == 0, f"building the tiny organism failed:\n{r.stdout[-2000:]}{r.stderr[-2000:]}"


def run_gate(g: Path) -> tuple[Path, bool, float, str, str]:
    t = time.time()
    r = subprocess.run([sys.executable, str(g)], cwd=ROOT, env=env(), capture_output=True, text=True)
    out = (r.stdout + r.stderr).strip()
    (LOGDIR / f"{g.stem}.log").write_text(out + "\n")
    lines = out.splitlines()
    last = next((ln for ln in reversed(lines) if ln.startswith("PASS")), lines[-1] if lines else "")
    return g, r.returncode == 0, time.time() - t, last, out


def report(res, passed: list, failed: list, durations: dict) -> None:
    g, ok, dt, last, out = res
    durations[g.stem] = round(dt, 1)
    (passed if ok else failed).append(g.stem)
    print(f"{'PASS' if ok else 'FAIL'} {g.stem:32s} {dt:6.1f}s  {last[:150]}", flush=True)
    if not ok:
        print("    " + "\n    ".join(out.splitlines()[-15:]), flush=True)


def main() -> int:
    LOGDIR.mkdir(parents=True, exist_ok=True)
    dfile = LOGDIR / "durations.json"
    durations = json.loads(dfile.read_text()) if dfile.exists() else {}
    todo = gates(sys.argv[1:])
    alone = [g for g in todo if g.stem in EXCLUSIVE]
    shared = sorted((g for g in todo if g.stem not in EXCLUSIVE),
                    key=lambda g: -durations.get(g.stem, GUESS.get(g.stem, 5)))
    jobs = max(1, int(os.environ.get("PGRPO_SMOKE_JOBS", 3)))
    t_all = time.time()
    prepare()
    print(f"smoke: shared artefacts ready in {time.time() - t_all:.0f}s; {len(shared)} gates, {jobs} at a time, "
          f"then {len(alone)} alone", flush=True)
    passed, failed = [], []
    with ThreadPoolExecutor(jobs) as ex:
        for f in as_completed([ex.submit(run_gate, g) for g in shared]):
            report(f.result(), passed, failed, durations)
    for g in alone:
        report(run_gate(g), passed, failed, durations)
    dfile.write_text(json.dumps(durations, indent=1, sort_keys=True))
    print(f"smoke: {time.time() - t_all:.0f}s; failed: {', '.join(failed) or 'none'}")
    print(f"{len(passed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
