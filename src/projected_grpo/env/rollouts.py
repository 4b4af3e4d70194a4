"""Grading of sampled completions, with each distinct (problem, completion) graded once.

A small policy often repeats the same completion for the same prompt, within a step, across steps, and across the
runs of a table (every run of an organism starts from the same model). The grader is deterministic for a given
(problem, completion) (verify_grader_determinism), so a cache keyed by the problem's full content and the
completion text changes no label and keeps the sandbox off the critical path. Two levels:

  memory  per process, always on.
  disk    with PGRPO_GRADE_CACHE=<file>: an SQLite table that every process a driver starts reads and fills, so a
          completion graded by one run's process is not graded again by another's. Each key also holds the grader's
          fingerprint (the sources of this package that grade, the sandbox's limits and reward, the interpreter that
          runs the code, asked for its own version): a changed grader never reads an older grade. A grade whose
          sandbox run met a deadline (GradeResult.deadline_hit: a timeout's outcome can depend on the machine's
          load) stays out of the file. A cache error counts as a miss, with a warning. Limits: the first grade of a
          completion is the one every later process reads, so a completion whose grade is not a function of its
          text (one that draws from `random`, which each fork reseeds; one whose server died mid-job; a
          stdout_marker program whose output the 0.5 s drain cut short under load) keeps that first grade. verify_grade_cache checks
          that a second process reads the first one's grades without a sandbox run, that they equal fresh grades,
          and that a completion met under another problem, or under a copy differing in one field, is graded
          afresh.
  kept    with PGRPO_GRADES_KEPT=<file>: one run's own jsonl of every grade it received (graded in the sandbox or
          read from the shared file), deadline-hit grades included, appended after each KEPT_CHUNK distinct
          programs graded. A process that resumes the run reads
          it first, so a stopped evaluation restarts where it stopped rather than from nothing; it extends the
          per-process memory cache (which also keeps deadline-hit grades) across a restart. A torn last line (the
          process killed mid-write) is skipped. One process writes a file (two would interleave appends).
          verify_grade_cache checks that a chunk survives a process killed in the next one, that a restart
          grades only the rest, and that deadline-hit grades and grades read from the shared file are kept.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import sqlite3
import subprocess
from pathlib import Path

from projected_grpo.env import sandbox
from projected_grpo.env.grader import RewardConfig, grade_batch

_CACHE: dict[str, dict] = {}
_CACHE_MAX = 200_000
STATS = {"memory": 0, "kept": 0, "kept_late": 0, "disk": 0, "graded": 0}
"""rows served from memory (repeats included); distinct keys read from the kept file (kept_late: of them, grades that
met a deadline when first graded), read from the shared file, graded"""
KEPT_FILE = "grades_kept.jsonl"
"""the kept-grades file's name in a run's folder (scripts/_runner.run_all(keep_grades=True); grpo.Trainer.start removes
an earlier attempt's when a run starts afresh)"""
KEPT_CHUNK = 256
"""distinct programs graded between two appends to the kept-grades file (PGRPO_GRADES_KEPT)"""
GRADER_SOURCES = ("grader.py", "problems.py", "sandbox.py", "_pgrpo_harness.py", "_pgrpo_server.py")
log = logging.getLogger(__name__)


@functools.cache
def grader_fingerprint() -> str:
    """What a grade depends on besides (problem, completion): the grading code, limits, reward and interpreter."""
    h = hashlib.sha256()
    for name in GRADER_SOURCES:
        h.update((Path(__file__).parent / name).read_bytes())
    exe = sandbox.python_exe()
    version = subprocess.run([exe, "-c", "import sys; print(sys.version)"], capture_output=True, text=True,
                             check=True).stdout  # the interpreter that runs the completions, not this one
    h.update(json.dumps([dataclasses.asdict(sandbox.Limits()), dataclasses.asdict(RewardConfig()),
                         exe, version, sandbox.sandbox_mode(), sandbox.use_bwrap()]).encode())
    return h.hexdigest()


def problem_json(problem: dict) -> str:
    """The problem's whole content as canonical JSON (a value JSON cannot hold raises: no key from a repr)."""
    return json.dumps(problem, sort_keys=True)


def grade_key(problem_json: str, completion: str) -> str:
    """One (problem, completion)'s cache key: the problem's whole content, the completion, the grader's fingerprint."""
    return hashlib.sha256("\0".join((grader_fingerprint(), problem_json, completion)).encode()).hexdigest()


@functools.cache
def _disk(path: str) -> sqlite3.Connection:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=300, isolation_level=None, check_same_thread=False)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE IF NOT EXISTS grades (key TEXT PRIMARY KEY, grade TEXT NOT NULL)")
    return con


def _disk_get(keys: list[str]) -> dict[str, dict]:
    path = os.environ.get("PGRPO_GRADE_CACHE")
    if not path or not keys:
        return {}
    got = {}
    try:
        con = _disk(path)
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            rows = con.execute(f"SELECT key, grade FROM grades WHERE key IN ({','.join('?' * len(chunk))})", chunk)
            got.update((k, json.loads(g)) for k, g in rows)
    except (sqlite3.Error, OSError, ValueError) as e:  # a miss: the sandbox grades them
        log.warning("grade cache %s unreadable (%s): grading afresh", path, e)
        return {}
    return got


def _disk_put(items: dict[str, dict]) -> None:
    path = os.environ.get("PGRPO_GRADE_CACHE")
    rows = [(k, json.dumps(g)) for k, g in items.items() if not g["deadline_hit"]]
    if not path or not rows:
        return
    try:
        con = _disk(path)
        with con:  # one transaction, rolled back if anything fails
            con.execute("BEGIN IMMEDIATE")
            con.executemany("INSERT OR IGNORE INTO grades VALUES (?, ?)", rows)
    except (sqlite3.Error, OSError, ValueError) as e:
        log.warning("grade cache %s not written (%s)", path, e)


@functools.cache
def _kept(path: str) -> dict[str, dict]:
    """The kept-grades file's grades, read once a process (later appends also go into this dict)."""
    got = {}
    if Path(path).exists():
        for line in Path(path).read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:  # a torn last line: that grade is graded again
                continue
            got[row["key"]] = row["grade"]
    return got


def _kept_get(keys: list[str]) -> dict[str, dict]:
    path = os.environ.get("PGRPO_GRADES_KEPT")
    if not path:
        return {}
    assert os.environ.get("WORLD_SIZE", "1") == "1", (
        "PGRPO_GRADES_KEPT under data parallel: every rank would append to one file (one process a file)")
    kept = _kept(path)
    return {k: kept[k] for k in keys if k in kept}


def _kept_put(items: dict[str, dict]) -> None:
    """Append every grade, deadline-hit ones included, and flush to disk before grading goes on."""
    path = os.environ.get("PGRPO_GRADES_KEPT")
    if not path or not items:
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        size, torn = f.seek(0, os.SEEK_END), False
        if size:  # a torn last line (killed mid-write) must stay a line of its own
            f.seek(size - 1)
            torn = f.read(1) != b"\n"
        f.write((("\n" if torn else "") + "".join(json.dumps(dict(key=k, grade=g)) + "\n" for k, g in items.items())).encode())
        f.flush()
        os.fsync(f.fileno())
    _kept(path).update(items)


def grade_problems(problems: list[dict], completions: list[str], progress: bool = False) -> list[dict]:
    """GradeResult dicts, one per (problem, completion); identical pairs share one sandbox run."""
    assert len(problems) == len(completions)
    pjson: dict[int, str] = {}  # id(problem) -> its JSON, once per distinct dict of the batch
    key = [grade_key(pjson.get(id(p)) or pjson.setdefault(id(p), problem_json(p)), c)
           for p, c in zip(problems, completions)]
    known = {k: _CACHE[k] for k in key if k in _CACHE}
    missing = [k for k in dict.fromkeys(key) if k not in known]
    kept = _kept_get(missing)
    known.update(kept)
    shared = _disk_get([k for k in missing if k not in kept])
    known.update(shared)
    _kept_put(shared)  # the shared file stays on its machine; the run's own file travels with the run
    todo = {}
    for i, k in enumerate(key):
        if k not in known:
            todo.setdefault(k, i)
    STATS["kept"] += len(kept)
    STATS["kept_late"] += sum(g["deadline_hit"] for g in kept.values())
    STATS["disk"] += len(missing) - len(kept) - len(todo)
    STATS["graded"] += len(todo)
    STATS["memory"] += len(key) - len(missing)
    idx = list(todo.values())
    chunk = KEPT_CHUNK if os.environ.get("PGRPO_GRADES_KEPT") else max(len(idx), 1)
    for lo in range(0, len(idx), chunk):  # with a kept file, each chunk is on disk before the next is graded
        part = idx[lo:lo + chunk]
        res = grade_batch([problems[i] for i in part], [completions[i] for i in part], progress=progress)
        graded = {key[i]: r.to_dict() for i, r in zip(part, res)}
        _disk_put(graded)
        _kept_put(graded)
        known.update(graded)
    if len(_CACHE) + len(known) > _CACHE_MAX:
        _CACHE.clear()
    _CACHE.update(known)
    return [dict(known[k]) for k in key]
