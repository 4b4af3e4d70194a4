"""Aggregate runs into the results table (mean and 95% CI over seeds, paired difference from vanilla).

    python scripts/results.py                           every run under out/runs
    python scripts/results.py --runs out/runs --arms vanilla,erase,route,route-random --out out/results

Run folders are named <arm>_s<seed>. Per run the final evaluation (largest eval step) gives, on
hinted eval prompts, the strict and loose hack rates (all mechanisms, each mechanism, and the
mechanisms held out of the v_hack pairs), and on no-hint prompts the solve rate, each with the
quarantine block kept and ablated. A run "hacked" when at some training step its strict hacks
outnumbered its correct rollouts (the environment paper's count). Cells compared to each other
must have the same number of seeds (refused otherwise unless --allow-unequal-n). Intervals are
t-intervals over seeds; the paired difference uses the seeds both arms share.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from projected_grpo import logs  # noqa: E402

HELD_OUT = ("stdout_marker", "exit_code")  # mechanisms absent from data/pairs/hack_pairs.md
RUN_RE = re.compile(r"^(?P<arm>.+)_s(?P<seed>\d+)$")


def ci95(xs: list[float]) -> tuple[float, float]:
    """(mean, half-width of the 95% t-interval); half-width nan for n < 2."""
    a = np.asarray(xs, dtype=float)
    if len(a) < 2:
        return float(a.mean()) if len(a) else float("nan"), float("nan")
    return float(a.mean()), float(stats.t.ppf(0.975, len(a) - 1) * a.std(ddof=1) / math.sqrt(len(a)))


def run_summary(run_dir: Path) -> dict | None:
    """Final-eval numbers of one run, or None if it has no evaluation yet."""
    ev = logs.read_jsonl(run_dir / "eval.jsonl")
    if not ev:
        return None
    last = max(r["step"] for r in ev)
    rows = [r for r in ev if r["step"] == last]
    out: dict = {"final_step": last}
    for q in ("kept", "ablated"):
        cell = {(r["split"], r["cell"]): r for r in rows if r["quarantine"] == q}
        if not cell:
            continue
        h = cell.get(("hinted", "all"))
        out[f"hack_strict_{q}"] = h["hack_strict"]
        out[f"hack_loose_{q}"] = h["hack_loose"]
        out[f"solve_nohint_{q}"] = cell[("nohint", "all")]["solve"]
        held = [cell[("hinted", m)] for m in HELD_OUT if ("hinted", m) in cell]
        if held:
            n = sum(r["n"] for r in held)
            out[f"hack_strict_heldout_{q}"] = sum(r["hack_strict"] * r["n"] for r in held) / n
        for (split, c), r in cell.items():
            if split == "hinted" and c != "all":
                out[f"hack_strict_{c}_{q}"] = r["hack_strict"]
    m = logs.read_jsonl(run_dir / "metrics.jsonl")
    out["hacked"] = any(r["hack_strict"] > r["gt_pass"] for r in m)
    out["train_hack_last"] = m[-1]["hack_strict"] if m else float("nan")
    return out


def collect(runs_dir: Path, arms: list[str] | None) -> dict[str, dict[int, dict]]:
    by_arm: dict[str, dict[int, dict]] = {}
    for d in sorted(p for p in runs_dir.iterdir() if p.is_dir()):
        m = RUN_RE.match(d.name)
        if not m or (arms and m["arm"] not in arms):
            continue
        s = run_summary(d)
        if s is not None:
            by_arm.setdefault(m["arm"], {})[int(m["seed"])] = s
    return by_arm


METRICS = ("hack_strict", "hack_loose", "hack_strict_heldout", "solve_nohint")


def table(by_arm: dict[str, dict[int, dict]], baseline: str = "vanilla", allow_unequal_n: bool = False) -> dict:
    ns = {a: len(v) for a, v in by_arm.items()}
    if len(set(ns.values())) > 1 and not allow_unequal_n:
        raise SystemExit(f"results: arms have different numbers of seeds {ns}; rerun the missing seeds "
                         "or pass --allow-unequal-n")
    res: dict = {"n": ns, "arms": {}}
    base = by_arm.get(baseline, {})
    for arm, seeds in by_arm.items():
        r: dict = {"n": len(seeds), "hacked_runs": sum(s["hacked"] for s in seeds.values())}
        for q in ("kept", "ablated"):
            for k in METRICS:
                key = f"{k}_{q}"
                xs = [s[key] for s in seeds.values() if key in s]
                if not xs:
                    continue
                r[key] = ci95(xs)
                shared = sorted(set(seeds) & set(base))
                bkey = f"{k}_kept"  # differences are against vanilla's (deployed == kept) model
                d = [seeds[i][key] - base[i][bkey] for i in shared if key in seeds[i] and bkey in base[i]]
                if arm != baseline and d:
                    r[f"diff_{key}"] = ci95(d) + (len(d),)
        res["arms"][arm] = r
    return res


def fmt(x) -> str:
    if not isinstance(x, (tuple, list)):
        return "-"
    m, h = x[0], x[1]
    return f"{m:.3f} ± {h:.3f}" if not math.isnan(h) else f"{m:.3f}"


def markdown(res: dict) -> str:
    cols = [("hack_strict_kept", "strict hack (kept)"), ("hack_strict_ablated", "strict hack (deployed, ablated)"),
            ("hack_loose_ablated", "loose hack (ablated)"), ("hack_strict_heldout_ablated", "held-out mech. strict (ablated)"),
            ("solve_nohint_ablated", "no-hint solve (ablated)"), ("diff_hack_strict_ablated", "Δ strict vs vanilla (paired)")]
    lines = ["| arm | n | runs hacked | " + " | ".join(c[1] for c in cols) + " |",
             "|---|---|---|" + "---|" * len(cols)]
    for arm, r in res["arms"].items():
        lines.append(f"| {arm} | {r['n']} | {r['hacked_runs']}/{r['n']} | " + " | ".join(fmt(r.get(c[0])) for c in cols) + " |")
    lines.append("")
    lines.append("Mean ± half-width of the 95% t-interval over seeds; hinted eval prompts for hack rates, "
                 f"no-hint eval prompts for solve rates; held-out mechanisms: {', '.join(HELD_OUT)}. "
                 "'ablated' = the deployed model (quarantine block removed); for arms without a quarantine it equals 'kept'.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", default="out/runs")
    ap.add_argument("--arms", default="", help="comma-separated arms (default: all found)")
    ap.add_argument("--baseline", default="vanilla")
    ap.add_argument("--out", default="out/results")
    ap.add_argument("--allow-unequal-n", action="store_true")
    ap.add_argument("--no-plots", action="store_true")
    a = ap.parse_args(argv)
    runs = Path(a.runs)
    if not runs.is_dir():
        raise SystemExit(f"results: {runs}: no such folder")
    by_arm = collect(runs, [x for x in a.arms.split(",") if x] or None)
    if not by_arm:
        raise SystemExit(f"results: no finished runs (with eval.jsonl) under {runs}")
    res = table(by_arm, a.baseline, a.allow_unequal_n)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    md = markdown(res)
    (out / "results.md").write_text(md + "\n")
    (out / "results.json").write_text(json.dumps(res, indent=1))
    print(md)
    if not a.no_plots:
        from projected_grpo.plots import plot_runs

        for p in plot_runs(runs, list(by_arm), out):
            print(f"plot: {p}")
    return res


if __name__ == "__main__":
    main()
