"""one-off (session 26): each run's CPU and wall seconds by phase (metrics t_cpu_* and t_*), one run alone against
two runs packed in one process"""
import sys
from pathlib import Path
from projected_grpo.loop import logs
for r in sys.argv[1:]:
    m = logs.read_jsonl(Path(r) / "metrics.jsonl")
    print(r, "CPU-s", {k: round(sum(x[f"t_cpu_{k}"] for x in m), 1) for k in ("generate", "grade", "train")},
          "wall s", {k: round(sum(x[f"t_{k}"] for x in m), 1) for k in ("generate", "grade", "train")})
