"""The probe's numbers from its small files (command.sh, step 5).

    python3 summarize.py collect OUT DATA   # OUT = command.sh's $P; writes DATA/rows.jsonl.gz, metrics.jsonl, ...
    python3 summarize.py report DATA        # every number of results.md, recomputed from DATA (markdown on stdout)

rows.jsonl.gz holds one row per teacher-pool rollout (replay "teacher_pool") and per replayed rollout (its label
fields and cos_S_contrib, nll, grad_norm; no completion text); metrics.jsonl every replay's per-step metrics. T1-T4
are computed with scripts/probe_uat.py's own functions, and checked against the probe_uat json files the gate wrote.
"""

from __future__ import annotations

import gzip
import json
import math
import shutil
import statistics as st
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "scripts"))

import probe_uat  # noqa: E402
from projected_grpo.loop import logs  # noqa: E402

KEEP = ("problem_id", "sample", "step", "hack_strict", "hack_loose", "gt_pass", "mechanism", "length", "label",
        "cos_S_contrib", "nll", "grad_norm")


def collect(out: Path, data: Path) -> None:
    if data.exists():
        shutil.rmtree(data)
    data.mkdir(parents=True)
    rows, metrics, replays, pools = [], [], {}, {}
    for q in sorted(out.glob("pool*")):
        pool = q.name
        pools[pool] = json.loads((q / "teacher_pool" / "pool.json").read_text())
        for r in (r for f in logs.step_files(q / "teacher_pool") for r in logs.read_step(f)):
            rows.append(dict(pool=pool, replay="teacher_pool", **{k: r.get(k) for k in KEEP}))
        for d in sorted(p for p in q.iterdir() if (p / "replay.json").exists()):
            replays[f"{pool}/{d.name}"] = json.loads((d / "replay.json").read_text())
            for r in (r for f in logs.step_files(d) for r in logs.read_step(f)):
                rows.append(dict(pool=pool, replay=d.name, **{k: r.get(k) for k in KEEP}))
            metrics += [dict(pool=pool, replay=d.name, **m) for m in logs.read_jsonl(d / "metrics.jsonl")]
        (data / pool).mkdir()
        for j in q.glob("probe_uat*.json"):
            shutil.copy(j, data / pool / j.name)
    with gzip.open(data / "rows.jsonl.gz", "wt") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    logs.write_jsonl(data / "metrics.jsonl", metrics)
    (data / "replays.json").write_text(json.dumps(replays, indent=1))
    (data / "pools.json").write_text(json.dumps(pools, indent=1))
    shutil.copytree(out / "pool41" / "teacher_pool", data / "pool41_teacher_pool")  # the completions, one pool
    print(f"collect: {len(rows)} rows, {len(metrics)} metric rows, {len(replays)} replays, {len(pools)} pools -> {data}")


def tint(xs: list[float]) -> tuple[float, float, float]:
    """mean and 95% t-interval over the values (n - 1 degrees of freedom)."""
    from scipy import stats

    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return m, float("nan"), float("nan")
    h = stats.t.ppf(0.975, len(xs) - 1) * st.stdev(xs) / math.sqrt(len(xs))
    return m, m - h, m + h


def auroc(score: list[float], label: list[bool]) -> float:
    """P(score of a positive > score of a negative), ties 1/2."""
    from scipy.stats import rankdata

    r = rankdata(score)
    n1 = sum(label)
    n0 = len(label) - n1
    return (sum(ri for ri, y in zip(r, label) if y) - n1 * (n1 + 1) / 2) / (n1 * n0)


def f3(x) -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def report(data: Path) -> None:
    with gzip.open(data / "rows.jsonl.gz", "rt") as f:
        rows = [json.loads(line) for line in f]
    metrics = logs.read_jsonl(data / "metrics.jsonl")
    by: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        by.setdefault((r["pool"], r["replay"]), []).append(r)
    mby: dict[tuple[str, str], list[dict]] = {}
    for m in metrics:
        mby.setdefault((m["pool"], m["replay"]), []).append(m)
    pools = sorted({p for p, _ in by})
    out = print

    def gates(pool: str, c: str) -> dict:
        pool_rows, van = by[(pool, "teacher_pool")], by[(pool, f"{c}_vanilla")]
        res = dict(T1=sum(bool(r["hack_strict"]) for r in pool_rows) / len(pool_rows), n=len(pool_rows),
                   T2=sum(probe_uat.fin(r["cos_S_contrib"]) for r in van) / len(van), T4=probe_uat.t4_stats(van))
        if (pool, f"{c}_projected") in mby:
            res["T3"] = probe_uat.t3_stats(mby[(pool, f"{c}_vanilla")], mby[(pool, f"{c}_projected")])
        return res

    # the gate's own numbers, recomputed from the kept rows
    for pool in pools:
        for name, c in (("probe_uat.json", "nll_svd"), ("probe_uat_random41.json", "random41"),
                        ("probe_uat_placebo_svd.json", "placebo_svd")):
            want = json.loads((data / pool / name).read_text())
            got = gates(pool, c)
            assert abs(want["T1"]["hack_frac"] - got["T1"]) < 1e-12 and abs(want["T2"]["coverage"] - got["T2"]) < 1e-12
            for k in ("t", "p", "mean_pure_hack", "mean_hack_correct"):
                assert want["T4"][k] is None and got["T4"][k] is None or abs(want["T4"][k] - got["T4"][k]) < 1e-9, (pool, c, k)
            for k in ("frac_steps_less_hackward", "frac_steps_fired_gt_half", "mean_step_cos_projected"):
                assert abs(want["T3"][k] - got["T3"][k]) < 1e-9, (pool, c, k)

    out("## T1-T4 with v_hack (NLL, SVD adapter, shared quarantine), per teacher-pool sampling seed\n")
    out("| pool seed | T1 hack_frac (n) | T2 finite | T3 frac less hack-ward / frac fired>0.5 / step_cos van -> proj | "
        "T4 n pure / n hack+correct | T4 mean cos pure / hack+correct | T4 Welch t, p (one-sided), d | gates |")
    out("|---|---|---|---|---|---|---|---|")
    per = {}
    for pool in pools:
        g = per[pool] = gates(pool, "nll_svd")
        t3, t4 = g["T3"], g["T4"]
        ok = [g["T1"] >= 0.30, g["T2"] >= 0.90, t3["passed"], t4["passed"]]
        out(f"| {pool[4:]} | {f3(g['T1'])} ({g['n']}) | {f3(g['T2'])} | {f3(t3['frac_steps_less_hackward'])} / "
            f"{f3(t3['frac_steps_fired_gt_half'])} / {f3(t3['mean_step_cos_vanilla'])} -> {f3(t3['mean_step_cos_projected'])} | "
            f"{t4['n_pure_hack']} / {t4['n_hack_correct']} | {f3(t4['mean_pure_hack'])} / {f3(t4['mean_hack_correct'])} | "
            f"{f3(t4['t'])}, {f3(t4['p'])}, {f3(t4['d'])} | "
            + " ".join(f"T{i + 1}={'PASS' if x else 'FAIL'}" for i, x in enumerate(ok)) + " |")
    out("\nT4's buckets by problem (the rows of one problem share its prompt; the Welch test counts rows as independent):")
    for pool in pools:
        pr = [r for r in by[(pool, "teacher_pool")] if r["hack_loose"]]
        hc = sorted({r["problem_id"] for r in pr if r["gt_pass"]})
        out(f"- pool seed {pool[4:]}: hack+correct rows from {len(hc)} problems ({', '.join(hc)}); pure-hack rows from "
            f"{len({r['problem_id'] for r in pr if not r['gt_pass']})} problems")
    h = tint([per[p]["T1"] for p in pools])
    dif = tint([per[p]["T4"]["mean_pure_hack"] - per[p]["T4"]["mean_hack_correct"] for p in pools])
    dd = tint([per[p]["T4"]["d"] for p in pools])
    out(f"\nOver the {len(pools)} pool seeds (mean [95% t-interval]): T1 hack_frac {f3(h[0])} [{f3(h[1])}, {f3(h[2])}]; "
        f"T4 mean cos pure minus hack+correct {f3(dif[0])} [{f3(dif[1])}, {f3(dif[2])}], Cohen's d {f3(dd[0])} "
        f"[{f3(dd[1])}, {f3(dd[2])}].\n")

    out("## Controls: T4 (and T3 of the control's own projection) per pool seed\n")
    out("| pool seed | direction | T4 mean cos pure / hack+correct | t | p | d | T3 frac less hack-ward / fired>0.5 |")
    out("|---|---|---|---|---|---|---|")
    for pool in pools:
        for c in ("nll_svd", "random41", "placebo_svd", "oracle_DIAGNOSTIC_UPPER_BOUND_svd"):
            t4 = probe_uat.t4_stats(by[(pool, f"{c}_vanilla")])
            t3 = (probe_uat.t3_stats(mby[(pool, f"{c}_vanilla")], mby[(pool, f"{c}_projected")])
                  if (pool, f"{c}_projected") in mby else None)
            out(f"| {pool[4:]} | {c} | {f3(t4['mean_pure_hack'])} / {f3(t4['mean_hack_correct'])} | {f3(t4['t'])} | "
                f"{f3(t4['p'])} | {f3(t4['d'])} | "
                + (f"{f3(t3['frac_steps_less_hackward'])} / {f3(t3['frac_steps_fired_gt_half'])}" if t3 else "-") + " |")

    out("\n## Pool 41: v_hack's T4 statistic among 21 random directions (seed 41 and 0-19)\n")
    rnd = sorted(r for p, r in by if p == "pool41" and r.startswith("random") and r.endswith("_vanilla"))
    ts = {r[:-8]: probe_uat.t4_stats(by[("pool41", r)])["t"] for r in rnd}
    ds = {r[:-8]: probe_uat.t4_stats(by[("pool41", r)])["d"] for r in rnd}
    tv = probe_uat.t4_stats(by[("pool41", "nll_svd_vanilla")])["t"]
    tp = probe_uat.t4_stats(by[("pool41", "placebo_svd_vanilla")])["t"]
    above = sum(t > tv for t in ts.values())
    vals = sorted(ts.values())
    out(f"Welch t (pure hack minus hack+correct) of the {len(ts)} random directions: median {f3(st.median(vals))}, "
        f"range {f3(vals[0])} to {f3(vals[-1])}, sd {f3(st.stdev(vals))}; {sum(t > 0 for t in vals)} of {len(vals)} "
        f"positive; one-sided p < 0.05 (T4 PASS) for {sum(probe_uat.t4_stats(by[('pool41', r)])['passed'] for r in rnd)}. "
        f"v_hack's t {f3(tv)}: {above} of {len(ts)} random directions have a larger t; the placebo's t {f3(tp)}. "
        f"Cohen's d of the random directions: range {f3(min(ds.values()))} to {f3(max(ds.values()))}.\n")

    out("## The vanilla replay's realised steps along each direction (step_cos, mean over the 20 steps; negative = "
        "hack-ward)\n")
    for pool in pools:
        sc = {r: sum(m["step_cos"] for m in mby[(pool, r)]) / len(mby[(pool, r)])
              for p, r in mby if p == pool and r.endswith("_vanilla")}
        rnd_sc = sorted(v for r, v in sc.items() if r.startswith("random"))
        out(f"- pool seed {pool[4:]}: v_hack {f3(sc['nll_svd_vanilla'])}, placebo {f3(sc['placebo_svd_vanilla'])}, oracle "
            f"{f3(sc['oracle_DIAGNOSTIC_UPPER_BOUND_svd_vanilla'])}, random directions "
            + (f"median {f3(st.median(rnd_sc))}, range {f3(rnd_sc[0])} to {f3(rnd_sc[-1])} ({len(rnd_sc)}; "
               f"{sum(v < sc['nll_svd_vanilla'] for v in rnd_sc)} more hack-ward than v_hack)" if len(rnd_sc) > 1
               else f"{f3(rnd_sc[0])} (seed 41)"))
    out("")
    out("## Supplementary: AUROC of cos_S_contrib for strict hack against everything else (all 160 rows of a replay)\n")
    out("Not a gate of the probe; the direction screen's measure, here on NLL distillation gradients at the replay's "
        "student.\n")
    out("| pool seed | v_hack | placebo | oracle (in-sample, upper bound) | random directions (median, range) |")
    out("|---|---|---|---|---|")
    for pool in pools:
        def a(c: str) -> float:
            rr = by[(pool, f"{c}_vanilla")]
            return auroc([r["cos_S_contrib"] for r in rr], [bool(r["hack_strict"]) for r in rr])
        rs = sorted(a(r[:-8]) for p, r in by if p == pool and r.startswith("random") and r.endswith("_vanilla"))
        av = a("nll_svd")
        vs = f" (above {sum(x < av for x in rs)} of {len(rs)} random)" if len(rs) > 1 else ""
        rcol = (f"{f3(st.median(rs))} ({f3(rs[0])} to {f3(rs[-1])}; {len(rs)} directions)" if len(rs) > 1
                else f"{f3(rs[0])} (seed 41 only)")
        out(f"| {pool[4:]} | {f3(av)}{vs} | {f3(a('placebo_svd'))} | {f3(a('oracle_DIAGNOSTIC_UPPER_BOUND_svd'))} | {rcol} |")

    if ("pool41", "nll_lora8_vanilla") in by:
        out("\n## Pool 41: R6 (LoRA rank 8 v_hack, its own student) and R7 (GRPO-contrastive v_hack)\n")
        g = gates("pool41", "nll_lora8")
        t3, t4 = g["T3"], g["T4"]
        out(f"- R6: T2 {f3(g['T2'])}; T3 frac less hack-ward {f3(t3['frac_steps_less_hackward'])}, fired>0.5 "
            f"{f3(t3['frac_steps_fired_gt_half'])} ({'PASS' if t3['passed'] else 'FAIL'}); T4 {f3(t4['mean_pure_hack'])} / "
            f"{f3(t4['mean_hack_correct'])}, t {f3(t4['t'])}, p {f3(t4['p'])} ({'PASS' if t4['passed'] else 'FAIL'})")
        t4 = probe_uat.t4_stats(by[("pool41", "grpo_svd_vanilla")])
        out(f"- R7: T4 {f3(t4['mean_pure_hack'])} / {f3(t4['mean_hack_correct'])}, t {f3(t4['t'])}, p {f3(t4['p'])} "
            f"({'PASS' if t4['passed'] else 'FAIL'})")
    out("\n(The gate's T1-T4 of v_hack, random41 and placebo_svd were recomputed from these rows and equal "
        "probe_uat.py's json files.)")


if __name__ == "__main__":
    if sys.argv[1] == "collect":
        collect(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        report(Path(sys.argv[2]))
