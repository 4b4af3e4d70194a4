"""one-off (session 26): (1) the run_tests labels of the replayed grades (replay.py's json output); (2) whether seed
0 packed (train.py --seeds 0,1) and alone gave the same step-39 completions and final evaluation rows"""
import collections, gzip, json, sys
grades, alone, packed = sys.argv[1:4]
g = json.load(open(grades))
print("run_tests test_modification:", dict(collections.Counter(x["test_modification"] for x in g if x["mechanism"] == "run_tests")))
comps = [[json.loads(l)["completion"] for l in gzip.open(f"{r}/step_0039.jsonl.gz", "rt")] for r in (alone, packed)]
print("step-39 completions identical:", comps[0] == comps[1], f"({len(comps[0])} rows)")
ev = [[json.loads(l) for l in open(f"{r}/eval.jsonl")] for r in (alone, packed)]
print("final evaluation rows identical:", ev[0] == ev[1], f"({len(ev[0])} rows)")
