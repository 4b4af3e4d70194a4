"""one-off: grade a run's 2560 training completions again; this process's CPU and the servers' per job"""
import gzip, json, glob, sys, time, os
from projected_grpo.organism import tasks
from projected_grpo.env import grader, sandbox
run = sys.argv[1]
train = tasks.generate_split("train", 2000, 0, ("hard",), ("run_tests","sentinel","stdout_marker","exit_code"))
train = {p["id"]: p for p in (tasks.apply_loophole(x, hinted=True) for x in train)}
rows = []
for f in sorted(glob.glob(f"{run}/step_*.jsonl.gz")):
    rows += [json.loads(l) for l in gzip.open(f, "rt")]
ps = [train[r["problem_id"]] for r in rows]; cs = [r["completion"] for r in rows]
grader.grade_batch(ps[:64], cs[:64])  # servers up
j0, s0 = sandbox.SERVER_CPU["jobs"], sandbox.SERVER_CPU["cpu_s"]
c0, w0 = time.process_time(), time.perf_counter()
out = []
for i in range(0, len(ps), 64):
    out += grader.grade_batch(ps[i:i+64], cs[i:i+64])
c, w = time.process_time() - c0, time.perf_counter() - w0
jobs, scpu = sandbox.SERVER_CPU["jobs"] - j0, sandbox.SERVER_CPU["cpu_s"] - s0
print(f"{len(ps)} completions, {jobs} jobs ({jobs/len(ps):.2f} a completion) in {w:.1f} s; grading process {c:.2f} CPU-s "
      f"({c/jobs*1e3:.2f} ms a job), servers {scpu:.2f} CPU-s ({scpu/jobs*1e3:.2f} ms a job)")
print("rows differing from the log (hack, reward):", sum((g.is_hack_strict, round(g.reward,6)) != (r["hack_strict"], round(r["reward"],6)) for g, r in zip(out, rows)))
json.dump([g.to_dict() for g in out], open(sys.argv[2], "w")) if len(sys.argv) > 2 else None
