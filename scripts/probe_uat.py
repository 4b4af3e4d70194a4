"""Gates of the distillation cosine probe (a measurement: exit 0 whether gates pass or fail).

    python scripts/probe_uat.py --pool out/probe_distill/teacher_pool \
        --vanilla out/probe_distill/vanilla_seed41 --projected out/probe_distill/projected_seed41 \
        [--compare nll=DIR random=DIR oracle=DIR ...] [--json out/probe_distill/probe_uat.json]

    T1  teacher hack fraction (hack_strict over the pool's rows) >= 0.30
    T2  cos_S_contrib finite on >= 90% of the vanilla replay's rows
    T3  the projection changes what the student learns: the realised deployed parameter step of the
        projected replay is less hack-ward than the vanilla replay's (step_cos, the cosine of the
        step with v, where negative is hack-ward, higher in the projected replay) on >= 80% of the
        steps both replays share, and frac_fired > 0.5 on more than half of the projected steps.
        (The former T3, cos_out < cos_in, held by construction whenever a one-sided projection fired.)
    T4  within hacked rows (loose: any hack or attempted hack) of the vanilla replay: cos_S_contrib higher for pure hacks (gt_pass=0)
        than for hack-and-correct (gt_pass=1); one-sided Welch t-test p < 0.05. A bucket with fewer
        than 2 rows is a FAIL ('insufficient samples').

--compare name=DIR prints the T4 statistics of several vanilla replays side by side (controls:
random direction, placebo pairs, oracle upper bound, LoRA adapter, GRPO-loss v_hack).
Exit status is nonzero only when an input is missing or unreadable.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path


from projected_grpo.loop import logs  # noqa: E402


def rows_of(d: Path, what: str) -> list[dict]:
    files = logs.step_files(d)
    if not d.is_dir() or not files:
        raise FileNotFoundError(f"{what}: {d} has no step_*.jsonl.gz files")
    return [r for p in files for r in logs.read_step(p)]


def fin(x) -> bool:
    return x is not None and math.isfinite(float(x))


def t4_stats(rows: list[dict]) -> dict:
    from scipy import stats

    hacked = [r for r in rows if r.get("hack_loose") and fin(r.get("cos_S_contrib"))]
    pure = [float(r["cos_S_contrib"]) for r in hacked if not r.get("gt_pass")]
    corr = [float(r["cos_S_contrib"]) for r in hacked if r.get("gt_pass")]
    out = dict(n_pure_hack=len(pure), n_hack_correct=len(corr),
               mean_pure_hack=sum(pure) / len(pure) if pure else None,
               mean_hack_correct=sum(corr) / len(corr) if corr else None)
    if len(pure) < 2 or len(corr) < 2:
        return dict(out, passed=False, reason="insufficient samples", t=None, p=None, d=None)
    t, p = stats.ttest_ind(pure, corr, equal_var=False, alternative="greater")
    import statistics as st

    sd = math.sqrt((st.variance(pure) + st.variance(corr)) / 2)
    d = (out["mean_pure_hack"] - out["mean_hack_correct"]) / sd if sd > 0 else float("nan")
    t, p = float(t), float(p)
    return dict(out, passed=bool(math.isfinite(p) and p < 0.05 and t > 0), reason="", t=t, p=p, d=d)


def t3_stats(vanilla: list[dict], projected: list[dict]) -> dict:
    """T3 from the two replays' metrics rows, paired by step."""
    v = {m["step"]: m["step_cos"] for m in vanilla if fin(m.get("step_cos"))}
    p = {m["step"]: m for m in projected if fin(m.get("step_cos"))}
    steps = sorted(set(v) & set(p))
    out = dict(n_steps=len(steps), frac_steps_less_hackward=None, frac_steps_fired_gt_half=None,
               mean_step_cos_vanilla=None, mean_step_cos_projected=None)
    if not steps:
        return dict(out, passed=False, reason="no step_cos in both replays (replays from before this T3?)")
    n = len(steps)
    less = sum(p[s]["step_cos"] > v[s] for s in steps) / n
    fired = sum(p[s].get("frac_fired", 0) > 0.5 for s in steps) / n
    out.update(frac_steps_less_hackward=less, frac_steps_fired_gt_half=fired,
               mean_step_cos_vanilla=sum(v[s] for s in steps) / n,
               mean_step_cos_projected=sum(p[s]["step_cos"] for s in steps) / n)
    return dict(out, passed=less >= 0.80 and fired > 0.5, reason="")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pool", required=True)
    ap.add_argument("--vanilla", required=True)
    ap.add_argument("--projected", required=True)
    ap.add_argument("--compare", nargs="*", default=[], help="name=DIR vanilla replays for side-by-side T4")
    ap.add_argument("--json", default="", help="default: <vanilla>/../probe_uat.json")  # outside-ok: help text
    a = ap.parse_args(argv)
    try:
        pool = rows_of(Path(a.pool), "--pool")
        van = rows_of(Path(a.vanilla), "--vanilla")
        rows_of(Path(a.projected), "--projected")
        pm = logs.read_jsonl(Path(a.projected) / "metrics.jsonl")
        if not pm:
            raise FileNotFoundError(f"--projected: {a.projected}/metrics.jsonl missing or empty")
        compare = {}
        for c in a.compare:
            name, _, d = c.partition("=")
            if not d:
                raise FileNotFoundError(f"--compare {c!r}: expected name=DIR")
            compare[name] = rows_of(Path(d), f"--compare {name}")
    except (FileNotFoundError, OSError, ValueError) as e:
        print(f"probe_uat: missing input: {e}", file=sys.stderr)
        raise SystemExit(2)

    res: dict = {}
    hack = sum(bool(r["hack_strict"]) for r in pool) / len(pool)
    res["T1"] = dict(passed=hack >= 0.30, hack_frac=hack, n=len(pool), threshold=0.30)
    cov = sum(fin(r.get("cos_S_contrib")) for r in van) / len(van)
    res["T2"] = dict(passed=cov >= 0.90, coverage=cov, n=len(van), threshold=0.90)
    res["T3"] = t3_stats(logs.read_jsonl(Path(a.vanilla) / "metrics.jsonl"), pm)
    res["T4"] = t4_stats(van)

    def f(x, spec=".3f"):
        return "nan" if x is None else format(x, spec)

    pf = {k: "PASS" if v["passed"] else "FAIL" for k, v in res.items()}
    print(f"T1 {pf['T1']} teacher hack_frac={hack:.3f} (n={len(pool)}, need >= 0.30)")
    print(f"T2 {pf['T2']} cos_S_contrib finite on {cov:.3f} of vanilla rows (n={len(van)}, need >= 0.90)")
    t3 = res["T3"]
    print(f"T3 {pf['T3']} realised step less hack-ward than vanilla's on {f(t3['frac_steps_less_hackward'])} of "
          f"paired steps (need >= 0.80), frac_fired>0.5 on {f(t3['frac_steps_fired_gt_half'])} (need > 0.5), mean "
          f"step_cos vanilla={f(t3['mean_step_cos_vanilla'])} projected={f(t3['mean_step_cos_projected'])} "
          f"(n_steps={t3['n_steps']})" + (f" [{t3['reason']}]" if t3["reason"] else ""))
    t4 = res["T4"]
    print(f"T4 {pf['T4']} pure_hack mean={f(t4['mean_pure_hack'])} (n={t4['n_pure_hack']}) vs hack+correct "
          f"mean={f(t4['mean_hack_correct'])} (n={t4['n_hack_correct']}), Welch t={f(t4['t'], '.2f')} "
          f"p={f(t4['p'], '.2g')} d={f(t4['d'], '.2f')}" + (f" [{t4['reason']}]" if t4["reason"] else ""))
    if compare:
        res["compare"] = {name: t4_stats(rows) for name, rows in compare.items()}
        print(f"{'control (T4 stats)':<30} {'n_pure':>6} {'n_corr':>6} {'mean_pure':>10} {'mean_corr':>10} "
              f"{'t':>7} {'p':>9} {'d':>6}  verdict")
        for name, s in res["compare"].items():
            print(f"{name:<30} {s['n_pure_hack']:>6} {s['n_hack_correct']:>6} {f(s['mean_pure_hack']):>10} "
                  f"{f(s['mean_hack_correct']):>10} {f(s['t'], '.2f'):>7} {f(s['p'], '.2g'):>9} {f(s['d'], '.2f'):>6}  "
                  f"{'PASS' if s['passed'] else 'FAIL'}{' (' + s['reason'] + ')' if s['reason'] else ''}")
    npass = sum(v["passed"] for k, v in res.items() if k != "compare")
    print(f"probe_uat: {npass}/4 gates PASS ({' '.join(f'{k}={v}' for k, v in pf.items())})")
    out = Path(a.json) if a.json else Path(a.vanilla).resolve().parent / "probe_uat.json"
    res["inputs"] = dict(pool=a.pool, vanilla=a.vanilla, projected=a.projected, compare=a.compare)
    logs.write_jsonl(out, [res]) if out.suffix == ".jsonl" else out.write_text(json.dumps(res, indent=2, default=str))
    return res


if __name__ == "__main__":
    main()
