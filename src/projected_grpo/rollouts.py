"""Grading of sampled completions, with duplicates graded once.

A small policy often repeats the same completion for the same prompt; grading each distinct
(problem, completion) once keeps the sandbox off the critical path without changing any label.
"""

from __future__ import annotations

from projected_grpo.grader import grade_batch


def grade_problems(problems: list[dict], completions: list[str], progress: bool = False) -> list[dict]:
    """GradeResult dicts, one per (problem, completion); identical pairs share one sandbox run."""
    assert len(problems) == len(completions)
    key = [(str(p["id"]), p.get("hint"), c) for p, c in zip(problems, completions)]
    first: dict = {}
    for i, k in enumerate(key):
        first.setdefault(k, i)
    uniq = list(first.values())
    res = grade_batch([problems[i] for i in uniq], [completions[i] for i in uniq], progress=progress)
    by_key = {key[i]: r.to_dict() for i, r in zip(uniq, res)}
    return [dict(by_key[k]) for k in key]
