"""Gate: the whole pipeline end to end on the tiny organism (a few steps per arm).

tiny organism -> v_hack from the organism pairs (shared and own quarantine) -> vanilla, erase,
route, route-random (matched to route's routed fraction) for 2 steps each with a final evaluation
-> results table -> routing diagnostics. Checks that every stage wrote what the next one reads.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from projected_grpo import logs  # noqa: E402

PY = sys.executable


def sh(*cmd: str) -> str:
    r = subprocess.run([PY, *cmd], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, f"{' '.join(cmd)} failed:\n{r.stdout[-1500:]}\n{r.stderr[-3000:]}"
    return r.stdout


def main() -> None:
    from projected_grpo.organism.build import build, preset

    build(preset("tiny"), n_per_cell=0)
    with tempfile.TemporaryDirectory() as t:
        t = Path(t)
        vs, vo = str(t / "v_shared.safetensors"), str(t / "v_own.safetensors")
        meta = json.loads(sh("scripts/extract_vhack_grad.py", "--model", "organism:tiny", "--out", vs).strip().splitlines()[-1])
        sh("scripts/extract_vhack_grad.py", "--model", "organism:tiny", "--quarantine", "own", "--out", vo)
        common = ["--model", "organism:tiny", "--out-dir", str(t / "runs"), "--steps", "2", "--prompts-per-step", "4",
                  "--group", "4", "--n-eval", "2", "--eval-every", "0", "--max-new-tokens", "40"]
        sh("scripts/train.py", "--arm", "vanilla", "--run", "vanilla_s0", *common)
        sh("scripts/train.py", "--arm", "erase", "--vhack", vs, "--run", "erase_s0", *common)
        sh("scripts/train.py", "--arm", "route", "--vhack", vo, "--quarantine", "own", "--route-frac", "0.5",
           "--run", "route_s0", *common)
        sh("scripts/train.py", "--arm", "route-random", "--vhack", vo, "--quarantine", "own", "--match-run",
           str(t / "runs" / "route_s0"), "--run", "route-random_s0", *common)
        # a v_hack extracted for the shared adapter is refused by the own-quarantine adapter
        r = subprocess.run([PY, "scripts/train.py", "--arm", "route", "--vhack", vs, "--quarantine", "own", "--run",
                            "bad_s0", *common], cwd=ROOT, capture_output=True, text=True)
        assert r.returncode != 0 and "VhackMismatch" in r.stderr, r.stderr[-500:]
        runs = t / "runs"
        for name in ("vanilla_s0", "erase_s0", "route_s0", "route-random_s0"):
            assert (runs / name / "DONE").exists(), name
            assert len(logs.step_files(runs / name)) == 2, name
            ev = logs.read_jsonl(runs / name / "eval.jsonl")
            assert {r["quarantine"] for r in ev} == {"kept", "ablated"}, name
        m = logs.read_jsonl(runs / "erase_s0" / "metrics.jsonl")
        assert any("cos_in" in r for r in m), "erase logged no cos_in"
        rr = logs.read_jsonl(runs / "route_s0" / "metrics.jsonl")
        rq = logs.read_jsonl(runs / "route-random_s0" / "metrics.jsonl")
        fr = [r.get("routed_frac") for r in rr]
        assert [r.get("routed_frac") for r in rq] == fr, (fr, [r.get("routed_frac") for r in rq])
        rows = logs.load_rollouts(runs / "route_s0")
        assert "route_score" in rows and rows["route_score"].notna().any(), "no per-rollout routing score logged"
        out = sh("scripts/results.py", "--runs", str(runs), "--out", str(t / "results"))
        assert "| route |" in out and "| vanilla |" in out, out
        assert (t / "results" / "eval_trajectories.png").exists()
        sh("scripts/diag_pinning.py", str(runs / "route_s0"))
        assert (runs / "route_s0" / "diag_pinning.json").exists()
    print(f"PASS e2e tiny: organism -> v_hack ({meta['n_pairs']} pairs, held-out sign acc "
          f"{meta.get('heldout_sign_acc')}) -> vanilla/erase/route/route-random (routed fractions matched {fr}) "
          "-> results -> diag_pinning; mismatched v_hack refused")


if __name__ == "__main__":
    main()
