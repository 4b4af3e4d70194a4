"""The current code's replay of data/golden's stored rollouts against the golden trace of an older commit, within
verify_golden_trace's tolerance (its tolerance part; the exact sampled part does not apply across a rounding
change). A one-off script kept beside its output (issue 28, session 22):

    python3 docs/results/2026-12-07_main_speed_s22/golden_vs_old.py 4e24f5d     # from the repository root

Prints the worst relative difference of the step records and of the final adapter tensors (AssertionError beyond
the tolerance). The RunConfig defaults the trace recorded are replaced by today's (micro_batch changed to auto).
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load

sys.path.insert(0, "scripts")
import verify_golden_trace as v  # noqa: E402


def show(commit: str, path: str) -> bytes:
    return subprocess.run(["git", "show", f"{commit}:{path}"], capture_output=True, check=True).stdout


def main() -> None:
    commit = sys.argv[1]
    trace = json.loads(show(commit, "data/golden/trace.json"))
    trace["meta"]["args"] = v.args_defaults()
    tensors = load(show(commit, "data/golden/adapters.safetensors"))
    data = json.loads((v.GOLDEN / "rollouts.json").read_text())
    assert json.loads(show(commit, "data/golden/rollouts.json")) == data, "the stored rollouts changed since then"
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as t, v.stable_bases():
        (w, where), (tw, twhere), n = v.tolerance_part(trace, data, tensors, Path(t), None)
    print(f"against {commit}'s trace: step records within rel {w:.1e} ({where}), {n} final adapter tensors within rel "
          f"{tw:.1e} ({twhere}); tolerance {v.RTOL:.0e}")


if __name__ == "__main__":
    main()
