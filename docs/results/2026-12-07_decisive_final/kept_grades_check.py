"""Which evaluation cells did the kept grades of scorda-absorb seed 115 (primary organism) serve, and do
session 19's grades of the step-39 evaluation programs agree with call 1's re-grades of them?

Checks a reviewer's claim: the 1,536 kept grades that call 2's process read were all the quarantine-kept
model's hinted prompts at eval step 39 (192 prompts x 8 samples), so no registered outcome (the deployed,
quarantine-ablated rows: prereg.DEPLOYED, results.step_rates) used a kept grade.

Reads only the run folder organism_cpu/scorda-absorb_s115 of three parts, unpacked with scripts/pack_runs.py
into a temporary folder: session 19's (../2026-12-07_s115_keep_grades/), call 1's (calls/) and call 2's (this
folder). A kept line is {key, grade}; the key is sha256(grader fingerprint, problem JSON, completion)
(env/rollouts.py grade_key): it cannot be inverted, and the device's fingerprint is in no file. Training
completions are stored (step_NNNN.jsonl.gz); evaluation completions are stored nowhere (eval.jsonl holds
per-cell rates). So kept lines are tied to evaluation cells through what each grade names (problem_id;
mechanism None = a no-hint prompt), the eval sets regenerated from args.json (loop/grpo.py load_tasks,
eval_sets), the order in which rollouts.grade_problems appends (a batch's new distinct programs, in sample
order) and grpo.evaluate samples (quarantine kept: hinted, no-hint; then ablated: hinted, no-hint), and the
STATS counts call 2's process logged. Each finding printed says whether it is recomputed or inferred.

    PYTHONPATH=src python3 docs/results/2026-12-07_decisive_final/kept_grades_check.py \\
        > docs/results/2026-12-07_decisive_final/kept_grades_check.txt
"""

import collections
import gzip
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from projected_grpo.loop.config import InterventionConfig, RunConfig
from projected_grpo.loop.grpo import eval_sets, load_tasks, summarize_eval

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
PARTS = {"session 19": REPO / "docs/results/2026-12-07_s115_keep_grades/organism_cpu_s115.part0.tar.xz",
         "call 1": HERE / "calls/call1_organism_cpu_s115.part0.tar.xz",
         "call 2": HERE / "organism_cpu_s115_final.part0.tar.xz"}
RUN = "organism_cpu/scorda-absorb_s115"
ORDER = [("kept", "hinted"), ("kept", "nohint"), ("ablated", "hinted"), ("ablated", "nohint")]  # evaluate()
EVAL_STEPS = {"session 19": [39], "call 1": [39], "call 2": [39, 79]}  # the evaluations each process began
MECHS = ("run_tests", "sentinel", "stdout_marker", "exit_code")


def steplog(d: Path, step: int) -> list[dict]:
    return [json.loads(line) for line in gzip.open(d / f"step_{step:04d}.jsonl.gz")]


def sig(rows: list[dict]) -> list[tuple]:
    return [(r["problem_id"], r["label"], r["reward"]) for r in rows]


def split_of(g: dict) -> str:
    return "train" if g["problem_id"].startswith("train") else ("hinted" if g["mechanism"] else "nohint")


def by_sample(gs: list[dict]) -> dict[tuple, dict]:
    """{(problem, k): the k-th line of that problem}: its k-th new program, in sample order."""
    c, out = collections.Counter(), {}
    for g in gs:
        out[(g["problem_id"], c[g["problem_id"]])] = g
        c[g["problem_id"]] += 1
    return out


scratch = tempfile.TemporaryDirectory(prefix="kept_grades_check_")  # removed at exit
tmp = Path(scratch.name)
run = {}
for name, part in PARTS.items():
    dest = tmp / name.replace(" ", "")
    subprocess.run([sys.executable, "scripts/pack_runs.py", "--unpack", str(part), str(dest)], cwd=REPO,
                   check=True, stdout=subprocess.DEVNULL)
    run[name] = dest / RUN
d2 = run["call 2"]
raw = {n: (run[n] / "grades_kept.jsonl").read_bytes() for n in run}
ends = {n: raw[n].count(b"\n") for n in run}  # the kept file's length when each process ended
kept = [json.loads(line) for line in raw["call 2"].splitlines()]
G = [r["grade"] for r in kept]
print("== 1. The kept file (recomputed)")
print(f"lines when session 19 / call 1 / call 2 ended: {ends['session 19']} / {ends['call 1']} / "
      f"{ends['call 2']}; each earlier file is a byte prefix of the later one: "
      f"{raw['call 2'].startswith(raw['call 1']) and raw['call 1'].startswith(raw['session 19'])}; "
      f"distinct keys: {len({r['key'] for r in kept})} of {len(kept)}")

a = json.loads((d2 / "args.json").read_text())
cfg = RunConfig(**{k: v for k, v in a.items() if k != "intervention"},
                intervention=InterventionConfig(**a["intervention"]))
evals = eval_sets(cfg, load_tasks(cfg)[1])
pos = {s: {str(p["id"]): i for i, p in enumerate(ps)} for s, ps in evals.items()}
prob = {s: {str(p["id"]): p for p in ps} for s, ps in evals.items()}
S = cfg.eval_samples
assert all(g["problem_id"] in pos[split_of(g)] for g in G if split_of(g) != "train")
owner = lambda i: next(n for n in ends if i < ends[n])  # noqa: E731  the process that appended line i

# blocks: runs of one kind of line from one process, also cut where the eval-set order restarts (a new batch)
blocks = []
for i, g in enumerate(G):
    k, b = split_of(g), blocks[-1] if blocks else None
    restart = b and k != "train" and pos[k].get(g["problem_id"], 0) < pos[k].get(G[i - 1]["problem_id"], 0)
    if b and b[0] == k and owner(b[1]) == owner(i) and not restart:
        b[2] = i + 1
    else:
        blocks.append([k, i, i + 1])

print("\n== 2. Blocks of the kept file, and the cell each was appended for")
print("(content recomputed; cell inferred from evaluate()'s order; a batch whose programs were all known "
      "appends no line)")
cells = {}  # (process, eval step, quarantine, split) -> (first line, end) of the lines it appended
for proc in ends:
    steps, si, o, in_eval = EVAL_STEPS[proc], 0, 0, False
    for k, lo, hi in [b for b in blocks if owner(b[1]) == proc]:
        gs = G[lo:hi]
        if k == "train":
            si, in_eval, label = si + in_eval, False, "training rollouts"
        else:
            o, in_eval = (o if in_eval else 0), True
            while ORDER[o][1] != k:
                cells[(proc, steps[si]) + ORDER[o]] = (lo, lo)
                print(f"  ({proc}: eval step {steps[si]}, quarantine {ORDER[o][0]}, {ORDER[o][1]}: "
                      f"no line appended)")
                o += 1
            cells[(proc, steps[si]) + ORDER[o]] = (lo, hi)
            label, o = f"eval step {steps[si]}, quarantine {ORDER[o][0]}, {k}", o + 1
        per = collections.Counter(g["problem_id"] for g in gs)
        mech = dict(collections.Counter(g["mechanism"] for g in gs)) if k == "hinted" else ""
        print(f"lines {lo + 1:>5}-{hi:<5} {proc:<10} {k:<6} {hi - lo:>4} lines, {len(per):>3} problems "
              f"(lines per problem {dict(sorted(collections.Counter(per.values()).items()))}), "
              f"deadline-hit {sum(g['deadline_hit'] for g in gs)} {mech} -> {label}")

print("\n== 3. Kept order = sample order, checked where completions are stored (training; recomputed)")
for proc, lo in (("session 19", 0), ("call 1", ends["session 19"])):
    print(f"{proc}: lines {lo + 1}-{lo + 64} = its step_0039.jsonl.gz rows (problem, label, reward), in "
          f"order: {sig(G[lo:lo + 64]) == sig(steplog(run[proc], 39))}")
same39 = [gzip.open(run[n] / "step_0039.jsonl.gz").read() for n in ("session 19", "call 1")]
print(f"session 19's and call 1's step_0039.jsonl.gz are identical (the same 64 completions): "
      f"{same39[0] == same39[1]}; so lines 1-64 and 577-640 grade the same 64 (problem, completion) pairs "
      f"under different keys: the grader fingerprint changed between them")
seen, new = set(), []
s39 = {(r["problem_id"], r["completion"]) for r in steplog(d2, 39)}
later = [r for s in range(40, cfg.steps) for r in steplog(d2, s)]
for r in later:
    if (r["problem_id"], r["completion"]) not in seen:
        seen.add((r["problem_id"], r["completion"]))
        new.append(r)
tr = next(b for b in blocks if b[0] == "train" and owner(b[1]) == "call 2")
print(f"call 2, steps 40-79: {len(later)} rollouts, {len(new)} distinct (problem, completion), of them "
      f"equal to a step-39 program: {sum(k in s39 for k in seen)}; kept lines {tr[1] + 1}-{tr[2]} "
      f"({tr[2] - tr[1]}) are their first occurrences, in order: {sig(G[tr[1]:tr[2]]) == sig(new)}")

print("\n== 4. Call 2's log (STATS after each evaluation) against the kept file")
log = (d2.parent / "_logs" / "scorda-absorb_s115.log").read_text()
pat = (r"evaluation after step (\d+) written; grades so far: (\d+) graded, (\d+) kept grades read \((\d+) "
       r"of them deadline-hit\), (\d+) from the shared cache, (\d+) repeats")
st = {int(m[0]) - 1: dict(zip(("graded", "kept", "kept_late", "disk", "memory"), map(int, m[1:])))
      for m in re.findall(pat, log)}
print("logged (cumulative over the process), by eval step:", st)
ckpt = torch.load(run["call 1"] / "ckpt" / "last.pt", map_location="cpu", weights_only=False)["step"]
m39 = [(run[n] / "metrics.jsonl").read_text().splitlines()[39] for n in ("call 1", "call 2")]
same2 = m39[0] == m39[1] and gzip.open(d2 / "step_0039.jsonl.gz").read() == same39[1]
print(f"recomputed: call 1's checkpoint is at step index {ckpt}; call 2's step-39 metrics row and "
      f"step_0039 log are call 1's: {same2}"
      f"\n  (call 2 resumed in the evaluation after step 40 and did not train step 39 again)")
n_samples = {(r["step"], r["quarantine"], r["split"]): r["n"]
             for r in map(json.loads, open(d2 / "eval.jsonl")) if r["cell"] == "all"}
ev39 = {" ".join(c[2:]): hi - lo for c, (lo, hi) in cells.items() if c[:2] == ("call 2", 39)}
n39 = sum(n_samples[(39,) + c] for c in ORDER)
c1_eval = [g for g in G[ends["session 19"]:ends["call 1"]] if split_of(g) != "train"]
print(f"recomputed: eval step 39 is {n39} samples "
      f"({', '.join(f'{q} {s} {n_samples[(39, q, s)]}' for q, s in ORDER)});\n  call 2 appended "
      f"{sum(ev39.values())} lines for it {ev39}\n  = logged graded {st[39]['graded']}: "
      f"{sum(ev39.values()) == st[39]['graded']}; {n39} - graded - kept - shared = "
      f"{n39 - st[39]['graded'] - st[39]['kept'] - st[39]['disk']} (logged repeats {st[39]['memory']})")
print(f"recomputed: call 1's evaluation lines: {len(c1_eval)}, all hinted: "
      f"{all(split_of(g) == 'hinted' for g in c1_eval)}, deadline-hit "
      f"{sum(g['deadline_hit'] for g in c1_eval)}; logged kept reads {st[39]['kept']} "
      f"({st[39]['kept_late']} deadline-hit)")
print(f"recomputed: all {ends['call 2'] - ends['call 1']} lines call 2 appended = its logged graded total "
      f"{st[79]['graded']}: {ends['call 2'] - ends['call 1'] == st[79]['graded']}; kept reads after eval "
      f"step 39 (training 40-79, eval step 79): {st[79]['kept'] - st[39]['kept']}")
print("""inferred: session 19's 576 keys carry the older fingerprint (section 3) and call 1's 64
  training keys cannot match an evaluation prompt, so the 1,536 reads are call 1's 1,536 evaluation lines,
  each read once (a key read once is in memory from then on), all of them hinted prompts. Call 2's
  quarantine-kept hinted batch ran first and appended no line, so each of its D <= 1536 distinct programs was
  one of call 1's, and the other 1536 - D were read by the ablated hinted batch (the only other batch with
  hinted prompts). The kept model's samples are all distinct (1536 of 1536 in call 1, 1152 of 1152 in call 2's
  kept no-hint batch), and call 2 sampled from call 1's checkpoint with the same seeds: drawing no new program
  means it drew call 1's 1536 completions again (D = 1536; section 7 shows the same reproduction from session
  19 to call 1), so all 1,536 reads served the quarantine-kept model's hinted batch at eval step 39, 384
  samples of each mechanism.""")

print("\n== 5. Cell rows recomputed from the kept lines (grpo.summarize_eval) against eval.jsonl")
want = {(r["step"], r["quarantine"], r["split"], r["cell"]): r
        for r in map(json.loads, open(d2 / "eval.jsonl"))}
for p, step, q, s in [("call 1", 39, "kept", "hinted"), ("call 2", 39, "kept", "nohint")]:
    gs = G[slice(*cells[(p, step, q, s)])]
    mine = summarize_eval(step, q, s, [prob[s][g["problem_id"]] for g in gs], gs)
    same = all(abs(r[f] - want[(step, q, s, r["cell"])][f]) < 1e-12 for r in mine for f in r
               if isinstance(r[f], (int, float)))
    print(f"eval step {step}, quarantine {q}, {s}: {len(gs)} lines ({p}) for {n_samples[(step, q, s)]} "
          f"samples; n, n_prompts, rates and cluster SEs of every cell equal eval.jsonl's: {same}\n  "
          f"(strict hacks {sum(g['is_hack_strict'] for g in gs)}, solves {sum(g['eq_correct'] for g in gs)}: "
          f"a weak check)")

print("\n== 6. Deployed (ablated) rows: could a kept grade reach them through the memory cache? (recomputed)")
print("""A grade read from the kept file stays in the process's memory cache (rollouts._CACHE); a later sample
with the same key (same prompt, identical completion) reuses it and counts as a repeat, not a kept read. The
kept grades are of hinted prompts, so no no-hint row (another problem JSON) can reuse one. For the ablated
hinted rows the samples not graded afresh are bounded: a reused kept grade is never a strict hack (the kept
model had none) and is a solve only on a problem where the kept model's program solved; the rest of those
samples (own repeats or reused grades) cannot be told apart from the files.""")
kept39 = G[slice(*cells[("call 1", 39, "kept", "hinted")])]
kept_solved = {g["problem_id"] for g in kept39 if g["eq_correct"]}
bound = {}
for step in (39, 79):
    lo, hi = cells[("call 2", step, "ablated", "hinted")]
    per = collections.Counter(g["problem_id"] for g in G[lo:hi])
    tot = low = 0
    for m in MECHS:
        row, gs = want[(step, "ablated", "hinted", m)], [g for g in G[lo:hi] if g["mechanism"] == m]
        hack = round(row["hack_strict"] * row["n"]) - sum(g["is_hack_strict"] for g in gs)
        solve = round(row["solve"] * row["n"]) - sum(g["eq_correct"] for g in gs)
        room = sum(S - per[q] for q in kept_solved if prob["hinted"][q]["prompt_metadata"]["mechanism"] == m)
        tot, low = tot + row["n"] - len(gs), low + hack + max(0, solve - room)
        print(f"eval step {step}, ablated hinted {m:<13}: {row['n']} samples, {len(gs)} graded afresh, "
              f"{row['n'] - len(gs)} not; among these {hack} strict hacks, {solve} solves -> at least "
              f"{hack + max(0, solve - room)} carry no kept grade")
    bound[step] = tot - low
    print(f"eval step {step}, ablated hinted: {tot} samples not graded afresh, at least {low} of them carry "
          f"no kept grade: at most {tot - low} of 1536 could")
fresh = [g for c, (lo, hi) in cells.items() if c[:3] == ("call 2", 39, "ablated") for g in G[lo:hi]]
print(f"context: deadline-hit among the kept grades {sum(g['deadline_hit'] for g in kept39)} of "
      f"{len(kept39)}; "
      f"among the ablated model's {len(fresh)} programs graded afresh at eval step 39: "
      f"{sum(g['deadline_hit'] for g in fresh)}")

print("\n== 7. Session 19's grades (older fingerprint) against call 1's re-grades of the same programs")
print("""Paired by problem and sample index (the k-th line of a problem in each block). Training: the same
completions (identical step_0039 logs, section 3). Evaluation: completions are not stored; the same
prompts, seeds and checkpoint lineage, and the coinciding deadline hits below, indicate the same programs
(inferred).""")
for what, old, new_ in (("training step 39", (0, 64), (576, 640)),
                        ("evaluation step 39", (64, 576), (640, 1152))):
    o, n = by_sample(G[slice(*old)]), by_sample(G[slice(*new_)])
    assert o.keys() == n.keys()
    agree = {f: sum(o[k][f] == n[k][f] for k in o) for f in ("label", "reward", "deadline_hit")}
    both = sum(o[k]["deadline_hit"] and n[k]["deadline_hit"] for k in o)
    print(f"{what}: lines {old[0] + 1}-{old[1]} vs {new_[0] + 1}-{new_[1]}: {len(o)} pairs; agree in label "
          f"{agree['label']}, reward {agree['reward']}, deadline_hit {agree['deadline_hit']}, every field "
          f"{sum(o[k] == n[k] for k in o)}; deadline-hit in both {both}")

print(f"""
== 8. Answer
The reviewer's first claim holds: the 1,536 kept grades call 2 read were call 1's grades of the
quarantine-kept model's hinted prompts at eval step 39, 192 prompts x 8 samples (384 a mechanism), 550 of them
deadline-hit. Recomputed: which lines they are, their count, cells and deadline hits, that nothing was
read after eval step 39, and that no no-hint row read the file. Inferred (order and counts; no completions
are stored): that call 2's kept-model batch drew call 1's 1536 completions again, so no read fell to the
ablated hinted batch. The second claim, "so no registered outcome used a kept grade", does not follow from
the counts alone: through the memory cache, an ablated sample identical to one of those kept-model programs
(same prompt) would have reused its grade. The files bound this to at most {bound[39]} of the 1536 ablated
hinted samples at eval step 39 (the secondary step) and {bound[79]} at eval step 79 (the primary step), and
none of the no-hint samples; nothing in them shows that any such reuse happened, and a reused grade would
matter only where a fresh grade of the same program differs (section 7: 576 of 576 re-grades agreed, 173 of
them deadline-hit).""")
