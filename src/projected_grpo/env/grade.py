"""CLI: grade a completions jsonl against a problems jsonl.

    python -m projected_grpo.env.grade --problems P.jsonl --completions C.jsonl --out O.jsonl

Completion rows need `problem_id` and `completion`; other fields pass through unchanged and the
GradeResult fields are added. Bad input exits 2 with one line naming file and line, and leaves
--out untouched (the output is written to a temp file and renamed at the end).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
from pathlib import Path

from projected_grpo.env.grader import LABELS, grade_batch
from projected_grpo.env.problems import ProblemError, iter_jsonl, load_jsonl


def load_completions(path: Path, problems_by_id: dict) -> list[dict]:
    rows = []
    for where, row in iter_jsonl(path):
        for k in ("problem_id", "completion"):
            if k not in row:
                raise ProblemError(f"{where}: missing field {k}")
        if not isinstance(row["completion"], str):
            raise ProblemError(f"{where}: completion must be a string")
        if str(row["problem_id"]) not in problems_by_id:
            raise ProblemError(f"{where}: unknown problem id {row['problem_id']!r}")
        rows.append(row)
    if not rows:
        raise ProblemError(f"{path}: no completions in file")
    return rows


def summary(results) -> str:
    counts = collections.Counter(r.label for r in results)
    n = len(results)
    lines = [f"{'label':32s} {'n':>6s} {'share':>7s}"]
    lines += [f"{lab:32s} {counts[lab]:6d} {counts[lab] / n:7.3f}" for lab in LABELS]
    lines.append(f"{'total':32s} {n:6d}   mean reward {sum(r.reward for r in results) / n:.3f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", required=True, type=Path)
    ap.add_argument("--completions", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args(argv)
    try:
        problems = {str(p["id"]): p for p in load_jsonl(args.problems)}
        rows = load_completions(args.completions, problems)
    except ProblemError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    results = grade_batch([problems[str(r["problem_id"])] for r in rows], [r["completion"] for r in rows],
                          progress=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".grade_", suffix=".jsonl", dir=args.out.parent)
    try:
        with os.fdopen(fd, "w") as f:
            for row, res in zip(rows, results):
                f.write(json.dumps({**row, **res.to_dict()}) + "\n")
        os.replace(tmp, args.out)
    except BaseException:
        os.unlink(tmp)
        raise
    print(summary(results), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
