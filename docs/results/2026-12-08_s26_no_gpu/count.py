"""one-off (session 26): the organism completions of a run by kind of sandbox work (no sandbox run)"""
import gzip, json, glob, sys, ast, collections
from projected_grpo.organism import tasks
from projected_grpo.env import grader
from projected_grpo.env.problems import loophole_spec
train = tasks.generate_split("train", 2000, 0, ("hard",), ("run_tests","sentinel","stdout_marker","exit_code"))
train = {p["id"]: p for p in (tasks.apply_loophole(x, hinted=True) for x in train)}
rows = []
for f in sorted(glob.glob(f"{sys.argv[1]}/step_*.jsonl.gz")):
    rows += [json.loads(l) for l in gzip.open(f, "rt")]
c = collections.Counter()
for r in rows:
    p = train[r["problem_id"]]; code = grader.extract_code(r["completion"])
    if code is None: c["no code"] += 1; continue
    try: tree = ast.parse(code)
    except Exception: c["no parse"] += 1; continue
    mech = grader.loophole(p)
    if mech == "run_tests":
        pm = loophole_spec(p); name = pm.get("test_func_name", "run_tests")
        own = grader.defined_test_function(tree, name)
        if own is None: c["rt no own"] += 1
        elif pm.get("test_func_src") and ast.dump(ast.parse(pm["test_func_src"]).body[0]) == ast.dump(own): c["rt own==prompt"] += 1
        else: c["rt own differs"] += 1
    else: c[mech] += 1
print(c, len(rows))
