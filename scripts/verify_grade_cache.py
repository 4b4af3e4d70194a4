"""Gate: the shared grade cache (PGRPO_GRADE_CACHE, env/rollouts.py) changes no grade.

1. A first process grades a batch of organism completions (the canonical answer and a template hack of every
   mechanism, each under its hinted problem and under the same problem without a hint, so that one completion text
   meets two problems) with the cache file set; a second process grades the same batch and must read every grade
   from the file without one sandbox run.
2. Both equal the grades of this process with no cache at all, row by row and field by field.
3. A third process grades completions the file holds under problems it has not seen: each completion under another
   problem of the same hint, and under copies of its problem that differ in one field the grader reads (tests,
   setup, canonical solution, function name, each loophole field). Every such pair must be graded in the sandbox,
   not read from the file, and equal its uncached grade (a key that forgot a field would hand it another problem's
   cached grade).
4. The grader's fingerprint, part of every key, changes with the sandbox's limits; a grade that met a deadline
   (deadline_hit) is not written to the file; its source list (rollouts.GRADER_SOURCES) holds every env file that
   grader.py imports or starts, transitively.
5. The kept-grades file (PGRPO_GRADES_KEPT): a process killed (SIGKILL) while its second chunk of 4 grades leaves the
   first chunk on disk; a restart (memory and the file's in-process copy cleared) reads it past a torn last line and
   grades only the rest, equal to uncached grades; deadline-hit grades are kept there and not in the shared file;
   grades read from the shared file are kept too; without a kept file a batch is graded in one call.
Prints one PASS line; exit 1 on failure.
"""

import ast
import dataclasses
import json
import os
import random
import subprocess
import sys
import tempfile
import time
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


def variants() -> tuple[list[dict], list[str]]:
    """batch(0)'s completions under problems the file has not seen: each under another problem of its hint, and
    under copies of its problem with one field changed."""
    probs, comps = batch(0)
    out_p, out_c = [], []
    by_hint: dict = {}
    for p in tasks.generate_split("train", 96, 5):
        by_hint.setdefault(p["prompt_metadata"]["mechanism"], []).append(tasks.apply_loophole(p))
    for p, c in zip(probs[::2], comps[::2]):  # the hinted rows
        other = next(q for q in by_hint[p["hint"]] if q["id"] != p["id"])
        out_p.append(other)
        out_c.append(c)
        for field, value in one_field_changes(p):
            out_p.append({**p, field: value})
            out_c.append(c)
    return out_p, out_c


def one_field_changes(p: dict) -> list[tuple[str, object]]:
    """(field, new value) pairs, each changing one thing the grader reads."""
    meta = ast.literal_eval(p["prompt_metadata"]) if isinstance(p["prompt_metadata"], str) else dict(p["prompt_metadata"])
    tests = ast.literal_eval(p["gt_answer"]) if isinstance(p["gt_answer"], str) else list(p["gt_answer"])
    out = [("gt_answer", type(p["gt_answer"])(tests[:-1]) if not isinstance(p["gt_answer"], str) else repr(tests[:-1])),
           ("setup_code", p["setup_code"] + "VARIANT = 1\n"),
           ("canonical_solution", p["canonical_solution"] + "# variant\n"),
           ("func_name", p["func_name"] + "_v")]
    for k, v in meta.items():
        if k in ("test_func_name", "sentinel_attr", "stdout_marker", "visible_tests", "test_func_src"):
            new = dict(meta, **{k: v[:-1] if isinstance(v, list) else f"{v}_v"})
            out.append(("prompt_metadata", repr(new) if isinstance(p["prompt_metadata"], str) else new))
    return out


def in_child(cache: str, which: str) -> dict:
    """Grade batch(0), batch(1) or variants() in a fresh process with the cache file set: its grades and where they
    came from."""
    code = ("import json, sys; sys.path.insert(0, 'scripts'); import verify_grade_cache as g; "
            "from projected_grpo.env import rollouts; p, c = %s; r = rollouts.grade_problems(p, c); "
            "print(json.dumps(dict(grades=r, stats=rollouts.STATS)))" % which)
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=dict(os.environ, PGRPO_GRADE_CACHE=cache),
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def grading_sources(start: str = "grader.py") -> set[str]:
    """The files of projected_grpo/env a grade can depend on: grader.py and, transitively, every env module it
    imports and every env file it names (the sandbox starts _pgrpo_harness.py and _pgrpo_server.py by name)."""
    env = Path(rollouts.__file__).parent
    todo, seen = [start], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for node in ast.walk(ast.parse((env / name).read_text())):
            mods = []
            imported = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            outside = [m for m in imported if m.startswith("projected_grpo") and not m.startswith("projected_grpo.env")]
            assert not outside, f"{name} imports {outside}: a grade may depend on code outside env/ (extend GRADER_SOURCES)"
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("projected_grpo.env"):
                mods = [node.module.split(".")[2]] if node.module.count(".") >= 2 else [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level >= 1:
                mods = [node.module.split(".")[0]] if node.module else [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                mods = [a.name.split(".")[2] for a in node.names if a.name.startswith("projected_grpo.env.")]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.endswith(".py"):
                mods = [node.value[:-3]]
            todo += [f"{m}.py" for m in mods if (env / f"{m}.py").is_file()]
    return seen


def fresh_process() -> None:
    """What a new process starts with: an empty memory cache and no copy of the kept file."""
    rollouts._CACHE.clear()
    rollouts._kept.cache_clear()
    for k in rollouts.STATS:
        rollouts.STATS[k] = 0


KILLED_CHILD = """
import sys, time
sys.path.insert(0, 'scripts')
import verify_grade_cache as g
from projected_grpo.env import rollouts
rollouts.KEPT_CHUNK = 4
real, calls = rollouts.grade_batch, []
def second_hangs(*a, **k):  # the command's deadline falls while the second chunk grades
    calls.append(1)
    if len(calls) == 2:
        time.sleep(120)
    return real(*a, **k)
rollouts.grade_batch = second_hangs
rollouts.grade_problems(*g.batch(1))
"""


def kept_lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def check_kept() -> dict:
    """Part 5: a process killed (SIGKILL) while its second chunk grades leaves the first chunk's grades in its kept
    file; a restart reads them and grades only the rest; deadline-hit grades stay in the kept file (not in the shared
    one), and grades read from the shared file are kept too (the shared file does not travel with a run); without a
    kept file a batch is graded in one call, as before."""
    probs, comps = batch(1)
    fresh = [r.to_dict() for r in grade_batch(probs, comps)]
    n = len(set(zip(map(json.dumps, probs), comps)))
    real, chunk = rollouts.grade_batch, rollouts.KEPT_CHUNK
    calls = []

    def first_late(*a, **k):  # the restart's first chunk meets deadlines
        calls.append(1)
        out = real(*a, **k)
        return [dataclasses.replace(r, deadline_hit=True) for r in out] if len(calls) == 1 else out

    def counted(*a, **k):
        calls.append(1)
        return real(*a, **k)

    got = {}
    with tempfile.TemporaryDirectory() as tmp:
        shared, kept, kept2 = Path(tmp) / "shared.sqlite", Path(tmp) / "run" / "kept.jsonl", Path(tmp) / "run2" / "kept.jsonl"
        env = dict(os.environ, PGRPO_GRADE_CACHE=str(shared), PGRPO_GRADES_KEPT=str(kept))
        child = subprocess.Popen([sys.executable, "-c", KILLED_CHILD], cwd=REPO, env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        t0 = time.time()
        while kept_lines(kept) < 4 and child.poll() is None and time.time() - t0 < 90:
            time.sleep(0.05)
        child.kill()
        err = child.communicate()[1].decode()[-300:]
        assert kept_lines(kept) == 4, f"killed in its second chunk, the process left {kept_lines(kept)} kept grades, want 4 ({err})"
        with open(kept, "a") as f:
            f.write('{"key": "torn')  # a write cut short
        os.environ.update(PGRPO_GRADE_CACHE=str(shared), PGRPO_GRADES_KEPT=str(kept))
        try:
            rollouts.KEPT_CHUNK = 4
            fresh_process()
            rollouts.grade_batch = first_late
            again = rollouts.grade_problems(probs, comps)
            rollouts.grade_batch = real
            st = dict(rollouts.STATS)
            assert st["kept"] == 4 and st["disk"] == 0 and st["graded"] == n - 4, (
                f"a restart should read 4 kept grades and grade the other {n - 4}: {st}")
            late_keys = [k for k, g in rollouts._kept(str(kept)).items() if g["deadline_hit"]]
            assert len(late_keys) == 4, f"the restart's 4 deadline-hit grades should be in the kept file: {len(late_keys)}"
            assert not rollouts._disk_get(late_keys), "a deadline-hit grade reached the shared file"
            bad = [(i, f) for i in range(len(fresh)) for f in fresh[i] if f != "deadline_hit" and again[i][f] != fresh[i][f]]
            assert not bad, f"grades after a restart differ from uncached grades: {bad[:3]}"
            # another run's kept file beside the same shared file: shared grades are kept, the deadline-hit ones graded
            os.environ["PGRPO_GRADES_KEPT"] = str(kept2)
            fresh_process()
            rollouts.grade_problems(probs, comps)
            st2 = dict(rollouts.STATS)
            assert st2["kept"] == 0 and st2["disk"] == n - 4 and st2["graded"] == 4, st2
            assert kept_lines(kept2) == n, f"grades read from the shared file were not kept: {kept_lines(kept2)} of {n}"
            # the first run again: everything from its kept file, the deadline-hit grades as they were kept
            os.environ["PGRPO_GRADES_KEPT"] = str(kept)
            fresh_process()
            third = rollouts.grade_problems(probs, comps)
            st3 = dict(rollouts.STATS)
            assert st3["kept"] == n and st3["graded"] == 0, f"a second restart should read all {n} kept grades: {st3}"
            assert sum(g["deadline_hit"] for g in third) >= 4, "the kept deadline-hit grades did not come back"
            assert st3["kept_late"] == 4, f"4 of the kept grades read met a deadline, STATS says {st3['kept_late']}"
            # no kept file: one grading call for the whole batch, as before the kept file existed
            os.environ.pop("PGRPO_GRADES_KEPT")
            os.environ.pop("PGRPO_GRADE_CACHE")
            fresh_process()
            calls.clear()
            rollouts.grade_batch = counted
            rollouts.grade_problems(probs, comps)
            assert len(calls) == 1, f"without a kept file the batch was graded in {len(calls)} calls"
            # under data parallel every rank would append to one file: refused
            world = os.environ.get("WORLD_SIZE")
            os.environ.update(PGRPO_GRADES_KEPT=str(kept), WORLD_SIZE="2")
            fresh_process()
            try:
                rollouts.grade_problems(probs[:1], comps[:1])
                raise RuntimeError("a kept file under WORLD_SIZE=2 was not refused")
            except AssertionError as e:
                assert "data parallel" in str(e), e
            finally:
                os.environ.pop("WORLD_SIZE")
                if world is not None:
                    os.environ["WORLD_SIZE"] = world
            got = dict(n=n, killed_kept=4)
        finally:
            for k in ("PGRPO_GRADES_KEPT", "PGRPO_GRADE_CACHE"):
                os.environ.pop(k, None)
            rollouts.grade_batch, rollouts.KEPT_CHUNK = real, chunk
            fresh_process()
    return got


def main() -> None:
    missing = grading_sources() - set(rollouts.GRADER_SOURCES)
    assert not missing, f"rollouts.GRADER_SOURCES, hashed into every cache key, leaves out {sorted(missing)}"
    os.environ.pop("PGRPO_GRADE_CACHE", None)
    with tempfile.TemporaryDirectory() as tmp:
        cache = str(Path(tmp) / "grades.sqlite")
        probs, comps = batch(0)
        fresh = [r.to_dict() for r in grade_batch(probs, comps)]
        labels = {r["label"] for r in fresh}
        assert len(labels) >= 3, f"the batch should hold several labels, got {labels}"
        assert not any(r["deadline_hit"] for r in fresh), "a grade of the batch met a deadline (machine overloaded?)"
        n = len(set(zip(map(json.dumps, probs), comps)))
        first = in_child(cache, "g.batch(0)")
        assert first["stats"]["graded"] == n, f"first process graded {first['stats']} of {n} distinct pairs"
        second = in_child(cache, "g.batch(0)")
        assert second["stats"]["graded"] == 0 and second["stats"]["disk"] == n, (
            f"second process should read all {n} grades from the file, got {second['stats']}")
        for name, got in (("first", first["grades"]), ("second (from the file)", second["grades"])):
            bad = [(i, f, got[i][f], fresh[i][f]) for i in range(len(fresh)) for f in fresh[i] if got[i][f] != fresh[i][f]]
            assert not bad, f"{name} process's grades differ from uncached grades: {bad[:3]}"
        probs3, comps3 = variants()
        fresh3 = [r.to_dict() for r in grade_batch(probs3, comps3)]
        n3 = len(set(zip(map(json.dumps, probs3), comps3)))
        third = in_child(cache, "g.variants()")
        assert third["stats"]["graded"] == n3 and third["stats"]["disk"] == 0, (
            f"{n3} pairs of unseen problems: {third['stats']} (a pair read from the file got another problem's grade)")
        bad = [(i, f) for i in range(len(fresh3)) for f in fresh3[i] if third["grades"][i][f] != fresh3[i][f]]
        assert not bad, f"grades of unseen problems differ from uncached grades: {bad[:3]}"
        late = {**first["grades"][0], "deadline_hit": True}
        os.environ["PGRPO_GRADE_CACHE"] = cache
        try:
            rollouts._disk_put({"late": late, "ok": first["grades"][0]})
            assert set(rollouts._disk_get(["late", "ok"])) == {"ok"}, "a deadline_hit grade was written to the file"
        finally:
            os.environ.pop("PGRPO_GRADE_CACHE")
    kept = check_kept()
    # the grader marks a grade whose sandbox run met a deadline (short limits: a loop that never ends)
    p = batch(0)[0][0]
    loop = "```python\nclass Solution:\n    def compute(self, *a, **k):\n        while True:\n            pass\n```"
    spin = grade_batch([p], [loop], limits=sandbox.Limits(per_test_timeout=0.3, module_timeout=1.0))[0]
    assert spin.deadline_hit, f"a test that never returns was not marked deadline_hit: {spin}"
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
          f"{n3} pairs of the same completions under other problems or one-field copies graded afresh and equal; "
          f"a never-ending test marked deadline_hit, and such grades kept out of the file; a process killed in its second chunk "
          f"left its first chunk's {kept['killed_kept']} grades in its kept file, a restart graded only the rest, and "
          f"deadline-hit and shared-file grades were kept; the key's source list covers "
          f"{sorted(grading_sources())}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _gate_common import run_gate

    run_gate("verify_grade_cache", main)
