"""Distinct (problem, completion) against distinct (problem, extracted code) in a `just main` checkout's step logs:
whether keying the grade cache on the code would save grading (issue 28, session 23). One-off, kept beside its output:

    PYTHONPATH=<checkout>/src python3 code_keys.py <checkout>/out/runs route_s0 vanilla_s0 erase_s1
"""

import glob
import gzip
import json
import sys

from projected_grpo.env.grader import extract_code

for run in sys.argv[2:]:
    rows = [json.loads(x) for f in sorted(glob.glob(f"{sys.argv[1]}/{run}/step_*.jsonl.gz")) for x in gzip.open(f, "rt")]
    by_text = {(r["problem_id"], r["completion"]) for r in rows}
    by_code = {(r["problem_id"], extract_code(r["completion"])) for r in rows}
    print(f"{run}: {len(rows)} completions, {len(by_text)} distinct texts, {len(by_code)} distinct codes")
