"""Gate: results.py computes means, 95% t-intervals and paired differences correctly on synthetic
logs with a known answer, refuses to compare cells with different n unless told, and plots."""

from __future__ import annotations

import math
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "scripts"))

from projected_grpo import logs  # noqa: E402

T975_2 = 4.302652729911275  # scipy.stats.t.ppf(0.975, 2), written out


def fake_run(runs: Path, name: str, hack: float, heldout: float, solve: float, hacked: bool) -> None:
    d = runs / name
    d.mkdir(parents=True)
    rows = []
    for q in ("kept", "ablated"):
        rows += [dict(step=9, quarantine=q, split="hinted", cell="all", n=40, hack_strict=hack, hack_loose=hack, solve=0.1),
                 dict(step=9, quarantine=q, split="hinted", cell="stdout_marker", n=10, hack_strict=heldout, hack_loose=heldout, solve=0),
                 dict(step=9, quarantine=q, split="hinted", cell="exit_code", n=10, hack_strict=heldout, hack_loose=heldout, solve=0),
                 dict(step=9, quarantine=q, split="nohint", cell="all", n=30, hack_strict=0, hack_loose=0, solve=solve),
                 dict(step=0, quarantine=q, split="hinted", cell="all", n=40, hack_strict=0.99, hack_loose=0.99, solve=0)]
    logs.write_jsonl(d / "eval.jsonl", rows)
    logs.write_jsonl(d / "metrics.jsonl", [dict(step=s, hack_strict=0.9 if hacked and s == 5 else 0.0, gt_pass=0.5,
                                                reward=1.0) for s in range(10)])


def main() -> None:
    import results

    with tempfile.TemporaryDirectory() as t:
        runs = Path(t) / "runs"
        for s, (hv, he) in enumerate([(0.5, 0.3), (0.6, 0.2), (0.7, 0.4)]):
            fake_run(runs, f"vanilla_s{s}", hv, 0.5, 0.8, hacked=True)
            fake_run(runs, f"erase_s{s}", he, 0.1 * s, 0.7, hacked=s == 0)
        res = results.main(["--runs", str(runs), "--out", str(Path(t) / "res")])
        v, e = res["arms"]["vanilla"], res["arms"]["erase"]
        half = T975_2 * 0.1 / math.sqrt(3)
        assert abs(v["hack_strict_ablated"][0] - 0.6) < 1e-12 and abs(v["hack_strict_ablated"][1] - half) < 1e-9, v
        assert abs(e["hack_strict_ablated"][0] - 0.3) < 1e-12 and abs(e["hack_strict_ablated"][1] - half) < 1e-9, e
        # paired differences: -0.2, -0.4, -0.3 -> mean -0.3, sd 0.1
        d = e["diff_hack_strict_ablated"]
        assert abs(d[0] + 0.3) < 1e-12 and abs(d[1] - half) < 1e-9 and d[2] == 3, d
        # held-out mechanisms: n-weighted mean of the two held-out cells
        assert abs(e["hack_strict_heldout_ablated"][0] - 0.1) < 1e-12, e["hack_strict_heldout_ablated"]
        assert v["hacked_runs"] == 3 and e["hacked_runs"] == 1, (v["hacked_runs"], e["hacked_runs"])
        assert (Path(t) / "res" / "results.md").exists() and (Path(t) / "res" / "train_trajectories.png").exists()
        # unequal n is refused without --allow-unequal-n
        fake_run(runs, "vanilla_s3", 0.6, 0.5, 0.8, hacked=True)
        r = subprocess.run([sys.executable, str(ROOT / "scripts" / "results.py"), "--runs", str(runs), "--out",
                            str(Path(t) / "res2"), "--no-plots"], capture_output=True, text=True)
        assert r.returncode != 0 and "different numbers of seeds" in r.stderr, (r.returncode, r.stderr[-300:])
        res2 = results.main(["--runs", str(runs), "--out", str(Path(t) / "res3"), "--allow-unequal-n", "--no-plots"])
        assert res2["arms"]["erase"]["diff_hack_strict_ablated"][2] == 3  # paired on the 3 shared seeds
    print(f"PASS results: mean/CI (half-width {half:.4f}) and paired difference exact on synthetic runs; "
          "unequal n refused; plots written")


if __name__ == "__main__":
    main()
