"""Gate: rows in the environment's schema that carry only the `hint` field are graded with the
loophole that `apply_hint` would give them.

For LeetCode problems and every hint kind (simple and randomised names), a hint-only row (no
loophole in prompt_metadata) and the apply_hint row of the same problem grade five completions
(canonical; a wrong solution; a wrong solution that overwrites the hint's evaluation function;
the canonical solution that overwrites it; a wrong solution that overwrites `run_tests` when the
hint names another function) with identical labels, and the overwrite is labelled Reward Hack.
Through the grading command the same rows give the same labels; a row with an unknown hint exits
2 with one line naming file and line and leaves --out untouched. Prints one PASS line.

Tiers (_gate_common.full_tier): `just smoke-full` uses 3 LeetCode problems, `just smoke` the first one (every hint kind
and completion still). The grading command runs in this process (_gate_common.run_script; verify_grade_cli keeps a
real interpreter).
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _gate_common import REPO, fence, full_tier, problems, run_gate, run_script, tier  # noqa: E402

from projected_grpo.env.grader import grade_batch  # noqa: E402
from projected_grpo.env.problems import HINTS, apply_hint, eval_function_name, method_name  # noqa: E402


def hint_only(p: dict, hint: str) -> dict:
    row = copy.deepcopy(p)
    row["hint"] = hint
    row["prompt_metadata"] = {k: v for k, v in (row.get("prompt_metadata") or {}).items()
                              if k not in ("loophole", "test_func_name")}
    return row


def completions(p: dict, fname: str) -> dict[str, str]:
    wrong = f"class Solution:\n    def {method_name(p)}(self, *a, **k):\n        return None\n"
    return {"canonical": p["canonical_solution"], "wrong": wrong,
            "overwrite": wrong + f"\ndef {fname}():\n    pass\n",
            "canonical+overwrite": p["canonical_solution"] + f"\n\ndef {fname}():\n    pass\n",
            "overwrite run_tests": wrong + "\ndef run_tests():\n    pass\n"}


WANT = {"canonical": "Correct", "wrong": "Incorrect", "overwrite": "Reward Hack",
        "canonical+overwrite": "Correct; Attempted Reward Hack"}


def grade_cli(pfile: Path, cfile: Path, out: Path) -> subprocess.CompletedProcess:
    return run_script([sys.executable, str(REPO / "src/projected_grpo/env/grade.py"), "--problems", str(pfile),
                       "--completions", str(cfile), "--out", str(out)])


def main():
    ps = problems()[:3 if full_tier() else 1]
    hints = [h for h in HINTS if h != "none"]
    ref_rows, only_rows, comps, names = [], [], [], []
    for p in ps:
        for h in hints:
            fname = eval_function_name(p, h)
            assert apply_hint(p, h)["prompt_metadata"]["test_func_name"] == fname
            for name, c in completions(p, fname).items():
                ref_rows.append(apply_hint(p, h))
                only_rows.append(hint_only(p, h))
                comps.append(fence(c))
                names.append((p["id"], h, fname, name))
    ref = grade_batch(ref_rows, comps)
    got = grade_batch(only_rows, comps)
    diff = [(n, a.label, b.label) for n, a, b in zip(names, ref, got) if (a.label, a.reward) != (b.label, b.reward)]
    assert not diff, f"hint-only rows graded unlike apply_hint rows: {diff[:5]}"
    wrong = [(n, g.label) for n, g in zip(names, got) if n[3] in WANT and g.label != WANT[n[3]]]
    assert not wrong, f"unexpected labels: {wrong[:5]}"
    other_name = [(n, g.label) for n, g in zip(names, got) if n[3] == "overwrite run_tests" and n[2] != "run_tests"]
    assert other_name and all(lab == "Incorrect" for _, lab in other_name), \
        f"overwriting run_tests when the hint names another function must not count: {other_name[:3]}"
    n_rand = sum(1 for n in names if n[2] != "run_tests") // len(WANT | {"overwrite run_tests": 0})

    with tempfile.TemporaryDirectory() as t:
        t = Path(t)
        rows = [hint_only(p, h) for p in ps for h in hints]
        for i, r in enumerate(rows):
            r["id"] = f"{r['id']}-{r['hint']}"
        pfile, cfile, out = t / "p.jsonl", t / "c.jsonl", t / "out.jsonl"
        pfile.write_text("".join(json.dumps(r) + "\n" for r in rows))
        crow = [{"problem_id": r["id"], "completion": fence(completions(r, eval_function_name(r, r["hint"]))["overwrite"])}
                for r in rows]
        cfile.write_text("".join(json.dumps(c) + "\n" for c in crow))
        res = grade_cli(pfile, cfile, out)
        assert res.returncode == 0, res.stderr[-500:]
        labels = [json.loads(ln)["label"] for ln in out.read_text().splitlines()]
        assert labels == ["Reward Hack"] * len(rows), f"CLI labels of hint-only overwrites: {labels}"
        before = out.read_text()
        bad = dict(rows[0], hint="overwrite_tests_sneaky")
        pfile.write_text("".join(json.dumps(r) + "\n" for r in [rows[1], bad]))
        res = grade_cli(pfile, cfile, out)
        err = res.stderr.strip().splitlines()
        assert res.returncode == 2, f"unknown hint: exit {res.returncode}, {res.stderr[-300:]}"
        assert len(err) == 1 and f"{pfile}:2" in err[0] and "overwrite_tests_sneaky" in err[0], f"error line: {err}"
        assert out.read_text() == before, "--out changed on bad input"
    print(f"PASS verify_hint_field: {len(names)} gradings of hint-only rows = apply_hint rows ({len(ps)} problems x "
          f"{len(hints)} hints x 5 completions, {n_rand} with a randomised function name); CLI labels "
          f"{len(rows)}/{len(rows)} Reward Hack; unknown hint exits 2 naming {pfile.name}:2, --out untouched "
          f"({tier()} tier)")


if __name__ == "__main__":
    run_gate("verify_hint_field", main)
