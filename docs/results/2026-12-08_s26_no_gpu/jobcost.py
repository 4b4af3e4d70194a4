import gzip, json, glob, sys, ast, time, dataclasses
from projected_grpo.organism import tasks
from projected_grpo.env import grader, sandbox
train = tasks.generate_split("train", 2000, 0, ("hard",), ("run_tests","sentinel","stdout_marker","exit_code"))
train = {p["id"]: p for p in (tasks.apply_loophole(x, hinted=True) for x in train)}
rows = []
for f in sorted(glob.glob(f"{sys.argv[1]}/step_*.jsonl.gz"))[:8]:
    rows += [json.loads(l) for l in gzip.open(f, "rt")]
gts = []
for r in rows:
    p = train[r["problem_id"]]; code = grader.extract_code(r["completion"])
    if code is not None: gts.append(grader.gt_job(p, code))
print("tests a gt job:", sum(len(j.tests) for j in gts)/len(gts))
def cost(jobs, label):
    j0, s0, c0 = sandbox.SERVER_CPU["jobs"], sandbox.SERVER_CPU["cpu_s"], time.process_time()
    sandbox.run_many(jobs)
    n = sandbox.SERVER_CPU["jobs"] - j0
    print(f"{label}: {n} jobs, servers {(sandbox.SERVER_CPU['cpu_s']-s0)/n*1e3:.2f} ms a job, grading process {(time.process_time()-c0)/n*1e3:.2f} ms a job")
sandbox.run_many(gts[:50])
cost(gts, "gt jobs")
cost([dataclasses.replace(j, tests=[]) for j in gts], "same, no tests")
cost([dataclasses.replace(j, code="pass", tests=[]) for j in gts], "pass, no tests")
cost(gts, "gt jobs again")
