"""Gate: the grading command `python -m projected_grpo.env.grade`.

A valid run writes one output row per completion with the input fields passed through and the
grade fields added. Bad input (missing file, malformed json line, unknown problem id, missing
field) exits 2 with one line on stderr naming the file and line, and leaves --out untouched
(absent, or with its earlier content).

The malformed-line case runs `python -m projected_grpo.env.grade` in a real interpreter (its exit status as a shell
sees it); the others run the command's file in this process (_gate_common.run_script: exit status and captured
output, without an interpreter's imports).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from _gate_common import run_gate, run_script  # noqa: E402
from projected_grpo.organism import tasks  # noqa: E402

GRADE = str(ROOT / "src/projected_grpo/env/grade.py")


def grade(problems: Path, completions: Path, out: Path, real: bool = False) -> subprocess.CompletedProcess:
    """The grading command on these files: in a real interpreter (`python -m`) if `real`, else in this process."""
    args = ["--problems", str(problems), "--completions", str(completions), "--out", str(out)]
    if not real:
        return run_script([sys.executable, GRADE, *args])
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return subprocess.run([sys.executable, "-m", "projected_grpo.env.grade", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True)


def main() -> None:
    with tempfile.TemporaryDirectory() as t:
        t = Path(t)
        probs = [tasks.apply_loophole(p) for p in tasks.generate_split("eval", 4, seed=3)]
        pfile = t / "problems.jsonl"
        pfile.write_text("".join(json.dumps(p) + "\n" for p in probs))
        rows = [dict(problem_id=p["id"], completion=tasks.canonical_response(p), tag=i) for i, p in enumerate(probs)]
        good = t / "completions.jsonl"
        good.write_text("".join(json.dumps(r) + "\n" for r in rows))
        out = t / "out.jsonl"
        r = grade(pfile, good, out)
        assert r.returncode == 0, r.stderr[-800:]
        res = [json.loads(x) for x in out.read_text().splitlines()]
        assert [x["tag"] for x in res] == [0, 1, 2, 3], "input fields not passed through in order"
        assert all(x["label"] == "Correct" and x["eq_correct"] and x["reward"] == 3.5 for x in res), res
        before = out.read_text()
        bad = {
            "malformed": (good.read_text() + "{not json\n", ":5:"),
            "unknown_id": (good.read_text() + json.dumps(dict(problem_id="nope", completion="x")) + "\n", ":5:"),
            "missing_field": (json.dumps(dict(problem_id=probs[0]["id"])) + "\n", ":1:"),
        }
        for name, (text, where) in bad.items():
            f = t / f"{name}.jsonl"
            f.write_text(text)
            r = grade(pfile, f, out, real=name == "malformed")
            lines = r.stderr.strip().splitlines()
            assert r.returncode == 2, (name, r.returncode, r.stderr[-300:])
            assert len(lines) == 1 and str(f) + where in lines[0], (name, r.stderr)
            assert out.read_text() == before, f"{name}: --out was modified"
            fresh = t / f"fresh_{name}.jsonl"
            grade(pfile, f, fresh)
            assert not fresh.exists(), f"{name}: a partial output file was written"
        r = grade(t / "missing.jsonl", good, out)
        assert r.returncode == 2 and "missing.jsonl" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert not list(t.glob(".grade_*")), "temporary output left behind"
    print(f"PASS grade_cli: {len(res)} completions graded with fields passed through; malformed line, unknown id, "
          "missing field and missing file each exit 2 with one file:line error and no output written (malformed line "
          "in a real interpreter)")


if __name__ == "__main__":
    run_gate("verify_grade_cli", main)
