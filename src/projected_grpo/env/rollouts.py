"""Grading of sampled completions, with each distinct (problem, hint, completion) graded once.

A small policy often repeats the same completion for the same prompt, within a step and across
steps. The grader is deterministic for a given (problem, completion) (verify_grader_determinism),
so a process-wide cache keyed by problem id, hint and completion text changes no label and keeps
the sandbox off the critical path.
"""

from __future__ import annotations

from projected_grpo.env.grader import grade_batch

_CACHE: dict[tuple, dict] = {}
_CACHE_MAX = 200_000


def grade_problems(problems: list[dict], completions: list[str], progress: bool = False) -> list[dict]:
    """GradeResult dicts, one per (problem, completion); identical pairs share one sandbox run."""
    assert len(problems) == len(completions)
    key = [(str(p["id"]), p["func_name"], hash(tuple(p["gt_answer"])), p.get("hint"),
            (p.get("prompt_metadata") or {}).get("loophole"), c) for p, c in zip(problems, completions)]
    todo: dict[tuple, int] = {}
    for i, k in enumerate(key):
        if k not in _CACHE:
            todo.setdefault(k, i)
    if todo:
        idx = list(todo.values())
        res = grade_batch([problems[i] for i in idx], [completions[i] for i in idx], progress=progress)
        if len(_CACHE) + len(idx) > _CACHE_MAX:
            _CACHE.clear()
        for i, r in zip(idx, res):
            _CACHE[key[i]] = r.to_dict()
    return [dict(_CACHE[k]) for k in key]
