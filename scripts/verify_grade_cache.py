"""Gate: the shared grade cache (PGRPO_GRADE_CACHE, env/rollouts.py) changes no grade.

1. A first process grades a batch of organism completions (the canonical answer and a template hack of every
   mechanism, each under its hinted problem and under the same problem without a hint, so that one completion text
   meets two problems) with the cache file set; a second process grades the same batch and must read every grade
   from the file without one sandbox run.
2. Both equal the grades of this process with no cache at all, row by row and field by field.
3. A third process grades the same completions under problems the file has not seen (another hint) and must run the
   sandbox for them and again equal the uncached grades (a key that forgot part of the problem would hand it a
   cached grade of another problem).
4. The grader's fingerprint, part of every key, changes with the sandbox's limits.
Prints one PASS line; exit 1 on failure.
"""

import dataclasses
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from projected_grpo.env import rollouts, sandbox
from projected_grpo.env.grader import MECHANISMS, grade_batch
from projected_grpo.organism import tasks

REPO = Path(__file__).resolve().parents[1]  # the children import this file, not _gate_common (torch: 4 s a process)


def batch(hint_seed: int) -> tuple[list[dict], list[str]]:
    """Problems and completions: per mechanism, the canonical answer and a hack, each under the hinted problem and the
    problem without a hint (hint_seed picks which hack template and which problems)."""
    by_mech: dict[str, list] = {}
    for p in tasks.generate_split("train", 48, hint_seed):
        by_mech.setdefault(p["prompt_metadata"]["mechanism"], []).append(p)
    rng = random.Random(hint_seed)
    probs, comps = [], []
    for mech in MECHANISMS:
        p = by_mech[mech][0]
        hinted = tasks.apply_loophole(p)
        for text in (tasks.canonical_response(hinted), tasks.hack_response(hinted, mech, rng)):
            probs += [hinted, p]
            comps += [text, text]
    return probs, comps


def in_child(cache: str, hint_seed: int) -> dict:
    """Grade batch(hint_seed) in a fresh process with the cache file set: its grades and where they came from."""
    code = ("import json, sys; sys.path.insert(0, 'scripts'); import verify_grade_cache as g; "
            "from projected_grpo.env import rollouts; p, c = g.batch(%d); r = rollouts.grade_problems(p, c); "
            "print(json.dumps(dict(grades=r, stats=rollouts.STATS)))" % hint_seed)
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=dict(os.environ, PGRPO_GRADE_CACHE=cache),
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    os.environ.pop("PGRPO_GRADE_CACHE", None)
    with tempfile.TemporaryDirectory() as tmp:
        cache = str(Path(tmp) / "grades.sqlite")
        probs, comps = batch(0)
        fresh = [r.to_dict() for r in grade_batch(probs, comps)]
        labels = {r["label"] for r in fresh}
        assert len(labels) >= 3, f"the batch should hold several labels, got {labels}"
        n = len(set(zip(map(json.dumps, probs), comps)))
        first = in_child(cache, 0)
        assert first["stats"]["graded"] == n, f"first process graded {first['stats']} of {n} distinct pairs"
        second = in_child(cache, 0)
        assert second["stats"]["graded"] == 0 and second["stats"]["disk"] == n, (
            f"second process should read all {n} grades from the file, got {second['stats']}")
        for name, got in (("first", first["grades"]), ("second (from the file)", second["grades"])):
            bad = [(i, f, got[i][f], fresh[i][f]) for i in range(len(fresh)) for f in fresh[i] if got[i][f] != fresh[i][f]]
            assert not bad, f"{name} process's grades differ from uncached grades: {bad[:3]}"
        probs3, comps3 = batch(1)
        fresh3 = [r.to_dict() for r in grade_batch(probs3, comps3)]
        third = in_child(cache, 1)
        assert third["stats"]["graded"] > 0, f"unseen problems were served from the file: {third['stats']}"
        bad = [(i, f) for i in range(len(fresh3)) for f in fresh3[i] if third["grades"][i][f] != fresh3[i][f]]
        assert not bad, f"grades of unseen problems differ from uncached grades: {bad[:3]}"
    before = rollouts.grader_fingerprint()
    rollouts.grader_fingerprint.cache_clear()
    real = sandbox.Limits
    sandbox.Limits = dataclasses.make_dataclass("Limits", [("per_test_timeout", float, 99.0)], bases=(real,))
    try:
        changed = rollouts.grader_fingerprint()
    finally:
        sandbox.Limits = real
        rollouts.grader_fingerprint.cache_clear()
    assert changed != before, "the grader's fingerprint ignores the sandbox's limits"
    print(f"PASS verify_grade_cache: {n} distinct (problem, completion) pairs, {len(fresh)} rows, labels {sorted(labels)}; "
          f"a second process read all {n} from the file, no sandbox run, equal to uncached grades; "
          f"{third['stats']['graded']} pairs of unseen problems graded afresh and equal")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _gate_common import run_gate

    run_gate("verify_grade_cache", main)
