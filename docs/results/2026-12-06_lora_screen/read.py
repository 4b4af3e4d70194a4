"""erratum 3's criterion on the screen's runs."""
import json, sys
from pathlib import Path
sys.path.insert(0, "scripts")
from results import collapsed
rows = []
for A in ("1", "0.25", "0.0625"):
    ok = []
    for s in (0, 1):
        m = [json.loads(l) for l in open(f"docs/results/2026-12-06_lora_screen/runs/vlora_a{A}_s{s}/metrics.jsonl")]
        hack = sum(x["hack_strict"] for x in m[-10:]) / 10
        col = collapsed(m)
        ok.append(not col and hack >= 0.40)
        print(f"lora_alpha {A} seed {s}: steps {len(m)}, reward first {m[0]['reward']:.2f} last10 "
              f"{sum(x['reward'] for x in m[-10:]) / 10:.2f}, collapsed {col}, training strict hack last10 {hack:.3f}, "
              f"pass {ok[-1]}")
    rows.append((float(A), all(ok)))
passing = [a for a, ok in rows if ok]
print("chosen lora_alpha:", max(passing) if passing else "none passes: route-lora not run")
