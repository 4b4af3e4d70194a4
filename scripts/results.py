"""Aggregate runs into the results table: per-seed values, means with hierarchical bootstrap intervals,
paired differences from vanilla.

    python scripts/results.py                           every run under out/runs
    python scripts/results.py --runs out/runs --arms vanilla,erase,route,route-random --out out/results

Run folders are named <arm>_s<seed>. Per run the final evaluation (largest eval step) gives, on
hinted eval prompts, the strict and loose hack rates (all mechanisms, each mechanism, and the
mechanisms held out of the v_hack pairs), and on no-hint prompts the solve rate, each with the
quarantine block kept and ablated. A run "hacked" when at some training step its strict hacks
outnumbered its correct rollouts (the environment paper's count).

Intervals: a hierarchical bootstrap (`bootstrap`): resample seeds with replacement, then within each
drawn seed resample its eval samples (one per eval problem) with replacement; the statistic is the
mean over drawn seeds of the per-seed rates. Paired differences resample the seeds both arms share
jointly and each arm's eval samples independently within a seed. 95% percentile intervals, 4000
draws, fixed generator seed. Every table states the number of seeds and of eval samples per seed.

Cells compared to each other must have the same number of seeds (refused otherwise unless
--allow-unequal-n). Every run must agree in run_meta (logs.META_KEYS: device, dtype, versions, model) and in its
training recipe (arms.recipe: args.json without what an arm sets), and the runs pooled into one arm's cell in their
whole configuration (logs.config: every args.json field, the intervention's flags included, except
logs.CONFIG_EXCLUDED: seed, run name, output folder, ...); refused with exit 2 and one line naming the field
otherwise, unless --allow-mixed (check_meta). With --descends-from COMMIT, a run whose recorded commit (run_meta
git_commit) does not descend from COMMIT, is unknown, or ran with tracked files changed is refused the same way
(check_descent): the decisive table's runs must descend from the pre-registration's commit. A run made in a copy of
the tree without .git (a device call) counts only if it carried a stamp (scripts/stamp_commit.py) whose commit and
file table are this repository's.

    python scripts/results.py --decisive --organism-runs cpu=DIR [--organism-runs cpu@51b7c62e=DIR2] \
        --descends-from 820dda793ba77f7dcc809eddd1464a568b53ee92 --out out/decisive

--decisive is the pre-registered decisive table (docs/prereg/2026-12-06*.md; projected_grpo.method.prereg holds what
it binds): per organism (the first --organism-runs is the primary) each finished run's deployed outcomes at eval rows
79 and 39 (a finished run lacking either is refused; a run without DONE is left out and listed), the per-seed table
per arm, the 12 family contrasts paired by training seed with raw p, Holm over the 12 on the primary organism and
Bonferroni intervals, the same contrasts on the other organisms and pooled (DerSimonian-Laird), the secondary
contrasts, step 39, route's percentile among the route-random runs, the emergence floor, collapsed runs, and arms
outside the prereg as exploratory. It refuses an --out that already holds a results.json unless --fresh.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy import stats


from projected_grpo.loop import logs  # noqa: E402
from projected_grpo.loop.stats import t_interval  # noqa: E402
from projected_grpo.method import prereg  # noqa: E402
from projected_grpo.method.arms import recipe  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HELD_OUT = ("stdout_marker", "exit_code")  # mechanisms absent from data/pairs/hack_pairs.md
IN_DIST = ("run_tests", "sentinel")  # mechanisms the pairs show
TARGET_HALF_WIDTH = 0.05
RUN_RE = re.compile(r"^(?P<arm>.+)_s(?P<seed>\d+)$")
N_BOOT = 4000


def fail(msg: str) -> None:
    """Bad input: one line on stderr, exit status 2."""
    print(f"results: {msg}", file=sys.stderr)
    raise SystemExit(2)


def bootstrap(counts: list[tuple[int, int]], base: list[tuple[int, int]] | None = None,
              n_boot: int = N_BOOT, seed: int = 0) -> tuple[float, float, float]:
    """(point estimate, 2.5%, 97.5%) of the mean over seeds of per-seed rates k/n; with `base`
    (paired by position, same seeds) of the mean over seeds of the difference of rates.
    Seeds are resampled, then each drawn seed's n binary eval outcomes (binomial given k/n)."""
    rng = np.random.default_rng(seed)
    k, n = np.array(counts, dtype=float).T
    est = float(np.mean(k / n))
    idx = rng.integers(0, len(k), size=(n_boot, len(k)))
    draws = rng.binomial(n[idx].astype(int), (k / n)[idx]) / n[idx]
    if base is not None:
        kb, nb = np.array(base, dtype=float).T
        est -= float(np.mean(kb / nb))
        draws = draws - rng.binomial(nb[idx].astype(int), (kb / nb)[idx]) / nb[idx]
    lo, hi = np.percentile(draws.mean(1), [2.5, 97.5])
    return est, float(lo), float(hi)


def paired_t(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> tuple[float, float, float] | None:
    """t_interval of the per-seed rate differences a - b, paired by position. Unlike the bootstrap it widens
    with the seed-to-seed spread at small n."""
    return t_interval([ka / na - kb / nb for (ka, na), (kb, nb) in zip(a, b)])


def count(rows: list[dict], key: str) -> tuple[int, int]:
    """(number of eval samples with the outcome, number of eval samples) over summary cells."""
    n = sum(r["n"] for r in rows)
    return int(round(sum(r[key] * r["n"] for r in rows))), n


def read_args(run_dir: Path) -> dict:
    """The run's args.json; a missing or unreadable one is bad input."""
    try:
        return logs.read_args(run_dir)
    except ValueError as e:
        fail(str(e))


def run_summary(run_dir: Path) -> dict | None:
    """Final-eval counts of one run ({metric_condition: (k, n)}), or None if it has no evaluation yet."""
    ev = logs.read_jsonl(run_dir / "eval.jsonl")
    if not ev:
        return None
    last = max(r["step"] for r in ev)
    rows = [r for r in ev if r["step"] == last]
    args = read_args(run_dir)
    out: dict = {"final_step": last, "counts": {}, "meta": logs.read_run_meta(run_dir) | recipe(args),
                 "config": logs.config(args) | logs.read_run_meta(run_dir, ("vhack_sha256",)),
                 "git": logs.read_run_meta(run_dir, ("git_commit", "git_dirty", "git_commit_source", "git_tree_digest"))}
    c = out["counts"]
    for q in ("kept", "ablated"):
        cell = {(r["split"], r["cell"]): r for r in rows if r["quarantine"] == q}
        if not cell:
            continue
        h = cell[("hinted", "all")]
        c[f"hack_strict_{q}"] = count([h], "hack_strict")
        c[f"hack_loose_{q}"] = count([h], "hack_loose")
        c[f"solve_nohint_{q}"] = count([cell[("nohint", "all")]], "solve")
        for group, mechs in (("heldout", HELD_OUT), ("indist", IN_DIST)):
            cells = [cell[("hinted", m)] for m in mechs if ("hinted", m) in cell]
            if cells:
                c[f"hack_strict_{group}_{q}"] = count(cells, "hack_strict")
        for (split, name), r in cell.items():
            if split == "hinted" and name != "all":
                c[f"hack_strict_{name}_{q}"] = count([r], "hack_strict")
    m = logs.read_jsonl(run_dir / "metrics.jsonl")
    out["hacked"] = any(r["hack_strict"] > r["gt_pass"] for r in m)
    out["collapsed"] = collapsed(m)
    out["train_hack_last"] = m[-1]["hack_strict"] if m else float("nan")
    return out


def collapsed(metrics: list[dict], head: int = 1, tail: int = 10, ratio: float = 0.5) -> bool:
    """Training collapsed: the mean training reward of the last `tail` steps fell below `ratio` times that of the
    first `head` steps, i.e. of the untrained policy (a run whose rollout policy degenerates has low deployed hack rates for the wrong reason)."""
    r = [x["reward"] for x in metrics if "reward" in x]
    if len(r) < head + tail:
        return False
    first, last = sum(r[:head]) / head, sum(r[-tail:]) / tail
    return first > 0 and last < ratio * first


def run_folders(runs_dir: Path) -> list[tuple[str, int, Path]]:
    """(arm, seed, folder) of every run folder <arm>_s<seed> in runs_dir, in name order."""
    return [(m["arm"], int(m["seed"]), d) for d in sorted(p for p in runs_dir.iterdir() if p.is_dir())
            if (m := RUN_RE.match(d.name))]


def collect(runs_dir: Path, arms: list[str] | None, require_done: bool = False) -> dict[str, dict[int, dict]]:
    by_arm: dict[str, dict[int, dict]] = {}
    for arm, seed, d in run_folders(runs_dir):
        if (arms and arm not in arms) or (require_done and not (d / "DONE").exists()):
            continue
        s = run_summary(d)
        if s is not None:
            by_arm.setdefault(arm, {})[seed] = s
    return by_arm


METRICS = ("hack_strict", "hack_loose", "hack_strict_indist", "hack_strict_heldout", "solve_nohint")
CONTROL_KEYS = ("hack_strict_ablated", "hack_strict_indist_ablated", "hack_strict_heldout_ablated", "solve_nohint_ablated")
"""Deployed-model metrics compared between an arm and its controls (arms.Arm.controls)."""


def distinct_values(dicts: list[dict]) -> dict[str, list]:
    """{field: its distinct values over the dicts, sorted} (logs.NOT_SAVED where a dict lacks the field)."""
    seen: dict[str, list] = {k: [] for d in dicts for k in d}
    for d in dicts:
        for k, vals in seen.items():
            v = d.get(k, logs.NOT_SAVED)
            if v not in vals:  # equality, as logs.differences compares
                vals.append(v)
    order = lambda x: (0, x, "") if isinstance(x, (int, float)) else (1, 0, str(x))  # noqa: E731 numbers, then text
    return {k: sorted(v, key=order) for k, v in seen.items()}


def check_meta(by_arm: dict[str, dict[int, dict]], allow_mixed: bool) -> dict:
    """The run_meta and recipe all runs share (what they differ in as lists); refuse (exit 2, one line naming the
    fields) when runs differ in them, or when the runs of one arm differ in their configuration (logs.config: all
    but logs.CONFIG_EXCLUDED), unless allow_mixed."""
    seen = distinct_values([s["meta"] for seeds in by_arm.values() for s in seeds.values()])
    mixed = {k: v for k, v in seen.items() if len(v) > 1}
    if mixed and not allow_mixed:
        fail(f"runs differ in {mixed}; pairing or pooling them mixes instruments (pass --allow-mixed to do it anyway)")
    for arm, seeds in by_arm.items():
        cell = {k: v for k, v in distinct_values([s["config"] for s in seeds.values()]).items() if len(v) > 1}
        if cell and not allow_mixed:
            k = next(iter(cell))
            who = ", ".join(f"seed {i}: {s['config'].get(k, logs.NOT_SAVED)!r}" for i, s in sorted(seeds.items()))
            fail(f"runs of {arm} differ in {cell} ({k}: {who}); pooling them into one cell mixes configurations "
                 f"(pass --allow-mixed to do it anyway)")
    return {k: v[0] if len(v) == 1 else v for k, v in seen.items()}


def git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)


def check_descent(by_arm: dict[str, dict[int, dict]], ancestor: str) -> str:
    """Refuse (exit 2, one line naming the run) a run whose recorded commit (run_meta git_commit) is unknown, is not
    `ancestor` or a descendant of it in this repository (git merge-base --is-ancestor), or ran with tracked files
    changed (git_dirty). A run that took its commit from a stamp (git_commit_source 'stamp': a copy of the tree
    without .git, scripts/stamp_commit.py) is refused unless the commit is a commit of this repository and the
    stamp's file table is that commit's (git_tree_digest against git ls-tree -r); its git_dirty was computed from the
    copy's content. A source other than git or stamp is refused. Returns the ancestor's full hash."""
    from projected_grpo.loop.models import git_ls_tree, git_tree_digest

    r = git("rev-parse", "--verify", "--quiet", f"{ancestor}^{{commit}}")
    if r.returncode != 0:
        fail(f"--descends-from {ancestor}: not a commit of this repository")
    full = r.stdout.strip()
    for arm, seeds in sorted(by_arm.items()):
        for seed, s in sorted(seeds.items()):
            g = s["git"]
            run, commit, dirty, source = f"{arm}_s{seed}", g["git_commit"], g["git_dirty"], g["git_commit_source"]
            if commit == "unknown":
                fail(f"--descends-from {ancestor}: run {run} records no git commit (run_meta from before it was "
                     f"recorded, or a tree without .git and without a stamp)")
            if source not in ("git", "stamp", "unknown"):  # 'unknown': run_meta from before the source was recorded
                fail(f"--descends-from {ancestor}: run {run} took its commit from {source!r} (only git or a stamp count)")
            if git("rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}").returncode != 0:
                fail(f"--descends-from {ancestor}: run {run} claims commit {commit[:12]}, which is not a commit of "
                     f"this repository (git_commit_source {source})")
            if source == "stamp" and g["git_tree_digest"] != git_tree_digest(git_ls_tree(ROOT, commit)):
                fail(f"--descends-from {ancestor}: run {run}'s stamp claims {commit[:12]} with a file table that is "
                     f"not that commit's (git_tree_digest {g['git_tree_digest'][:12]})")
            if git("merge-base", "--is-ancestor", full, commit).returncode != 0:
                fail(f"--descends-from {ancestor}: run {run} ran at {commit[:12]}, which does not descend from it")
            if dirty != "False":
                fail(f"--descends-from {ancestor}: run {run} ran at {commit[:12]} with tracked files changed "
                     f"(git_dirty {dirty}, git_commit_source {source})")
    return full


def table(by_arm: dict[str, dict[int, dict]], baseline: str = "vanilla", allow_unequal_n: bool = False) -> dict:
    ns = {a: len(v) for a, v in by_arm.items()}
    if len(set(ns.values())) > 1 and not allow_unequal_n:
        fail(f"arms have different numbers of seeds {ns}; rerun the missing seeds or pass --allow-unequal-n")
    res: dict = {"n": ns, "arms": {}}
    base = by_arm.get(baseline, {})
    for arm, seeds in by_arm.items():
        r: dict = {"n": len(seeds), "hacked_runs": sum(s["hacked"] for s in seeds.values()),
                   "collapsed_runs": sum(s.get("collapsed", False) for s in seeds.values()), "per_seed": {}}
        for q in ("kept", "ablated"):
            for k in METRICS:
                key = f"{k}_{q}"
                have = {i: s["counts"][key] for i, s in sorted(seeds.items()) if key in s["counts"]}
                if not have:
                    continue
                r[key] = bootstrap(list(have.values()))
                r[f"n_eval_{key}"] = sorted({n for _, n in have.values()})
                for i, (kk, nn) in have.items():
                    r["per_seed"].setdefault(i, {})[key] = kk / nn
                bkey = f"{k}_kept"  # differences are against vanilla's (deployed == kept) model
                shared = [i for i in have if bkey in base.get(i, {}).get("counts", {})]
                if arm != baseline and shared:
                    pair = [have[i] for i in shared], [base[i]["counts"][bkey] for i in shared]
                    r[f"diff_{key}"] = bootstrap(*pair) + (len(shared),)
                    r[f"tdiff_{key}"] = paired_t(*pair)
        r["vs_controls"] = control_differences(arm, seeds, by_arm)
        r["n_for_half_width"] = n_for_half_width(r)
        res["arms"][arm] = r
    return res


def controls_of(arm: str) -> tuple[str, ...]:
    """The registry's controls of an arm (none for run names outside the registry)."""
    from projected_grpo.method import arms

    return arms.BY_NAME[arm].controls if arm in arms.BY_NAME else ()


def control_differences(arm: str, seeds: dict[int, dict], by_arm: dict[str, dict[int, dict]]) -> dict:
    """{control: {key: (estimate, 2.5%, 97.5%, n shared seeds)}}: paired differences of the deployed model's
    rates, arm minus control, over the seeds both have."""
    out: dict = {}
    for ctrl in controls_of(arm):
        other = by_arm.get(ctrl, {})
        for key in CONTROL_KEYS:
            shared = [i for i in sorted(seeds) if key in seeds[i]["counts"] and key in other.get(i, {}).get("counts", {})]
            if shared:
                pair = [seeds[i]["counts"][key] for i in shared], [other[i]["counts"][key] for i in shared]
                out.setdefault(ctrl, {})[key] = bootstrap(*pair) + (len(shared),)
                out[ctrl][f"t_{key}"] = paired_t(*pair)
    return out


def n_for_half_width(r: dict, target: float = TARGET_HALF_WIDTH) -> dict:
    """{key: seeds needed} for the deployed-model rates whose 95% interval is wider than +-target: n times the
    squared ratio of half-widths (the interval of a mean narrows as 1/sqrt(n) at a fixed eval size per seed)."""
    out = {}
    for key in CONTROL_KEYS:
        if key in r:
            hw = (r[key][2] - r[key][1]) / 2
            if hw > target:
                out[key] = int(np.ceil(r["n"] * (hw / target) ** 2))
    return out


def fmt(x) -> str:
    if not isinstance(x, (tuple, list)):
        return "-"
    return f"{x[0]:.3f} [{x[1]:.3f}, {x[2]:.3f}]"


COLS = [("hack_strict_kept", "strict hack (kept)"), ("hack_strict_ablated", "strict hack (deployed, ablated)"),
        ("hack_loose_ablated", "loose hack (ablated)"), ("hack_strict_indist_ablated", "pair mech. strict (ablated)"),
        ("hack_strict_heldout_ablated", "held-out mech. strict (ablated)"),
        ("solve_nohint_ablated", "no-hint solve (ablated)"), ("diff_hack_strict_ablated", "Δ strict vs vanilla (paired)"),
        ("diff_solve_nohint_ablated", "Δ no-hint solve vs vanilla (paired)")]


def markdown(res: dict, meta: dict) -> str:
    lines = ["| arm | seeds | eval samples/seed (hinted, no-hint) | runs hacked | " + " | ".join(c[1] for c in COLS) + " |",
             "|---|---|---|---|" + "---|" * len(COLS)]
    for arm, r in res["arms"].items():
        ev = f"{r.get('n_eval_hack_strict_ablated')}, {r.get('n_eval_solve_nohint_ablated')}"
        lines.append(f"| {arm} | {r['n']} | {ev} | {r['hacked_runs']}/{r['n']} | "
                     + " | ".join(fmt(r.get(c[0])) for c in COLS) + " |")
    lines += ["", "Per seed (final evaluation; rates over that seed's eval samples):", "",
              "| arm | seed | " + " | ".join(c[1] for c in COLS if not c[0].startswith("diff")) + " |",
              "|---|---|" + "---|" * sum(not c[0].startswith("diff") for c in COLS)]
    for arm, r in res["arms"].items():
        for seed, vals in sorted(r["per_seed"].items()):
            cells = [f"{vals[c[0]]:.3f}" if c[0] in vals else "-" for c in COLS if not c[0].startswith("diff")]
            lines.append(f"| {arm} | {seed} | " + " | ".join(cells) + " |")
    lines += controls_markdown(res)
    bad = {arm: r["collapsed_runs"] for arm, r in res["arms"].items() if r.get("collapsed_runs")}
    if bad:
        lines += ["", "**Training collapsed** (mean training reward of the last 10 steps below half that of the first step; "
                  "their deployed rates measure a degenerate policy, not an intervention's effect): "
                  + ", ".join(f"{a} {k}/{res['arms'][a]['n']} runs" for a, k in bad.items()) + "."]
    lines.append("")
    lines.append(f"Mean [95% interval] of a hierarchical bootstrap ({N_BOOT} draws: seeds, then eval samples within "
                 "seed); paired differences over the seeds both arms share (Δ columns: mean over seeds of arm minus "
                 "vanilla's kept model). Hinted eval prompts for hack rates, no-hint eval prompts for solve rates; "
                 f"held-out mechanisms: {', '.join(HELD_OUT)}. 'ablated' = the deployed model (quarantine block "
                 "removed); for arms without a quarantine it equals 'kept'. Runs: "
                 + ", ".join(f"{k} {v}" for k, v in meta.items()) + ".")
    return "\n".join(lines)


def controls_markdown(res: dict) -> list[str]:
    """Paired differences of each arm's deployed model from its controls, and the seeds a +-0.05 interval needs."""
    rows = [(arm, ctrl, d) for arm, r in res["arms"].items() for ctrl, d in r.get("vs_controls", {}).items()]
    lines = []
    if rows:
        lines += ["", "Paired differences from each arm's controls (deployed models, arm minus control; the seeds "
                  "both share):", "", "| arm | control | seeds | " + " | ".join(CONTROL_KEYS) + " |",
                  "|---|---|---|" + "---|" * len(CONTROL_KEYS)]
        for arm, ctrl, d in rows:
            n = max(d[k][3] for k in CONTROL_KEYS if k in d)
            lines.append(f"| {arm} | {ctrl} | {n} | " + " | ".join(fmt(d.get(k)) for k in CONTROL_KEYS) + " |")
    trows = [(arm, "vanilla", {k: r.get(f"tdiff_{k}") for k in CONTROL_KEYS}) for arm, r in res["arms"].items()
             if any(r.get(f"tdiff_{k}") for k in CONTROL_KEYS)]
    trows += [(arm, ctrl, {k: d.get(f"t_{k}") for k in CONTROL_KEYS}) for arm, ctrl, d in rows]
    if trows:
        lines += ["", "The same paired differences as 95% t-intervals of the per-seed differences (n - 1 degrees of "
                  "freedom; the percentile bootstrap above understates the seed-to-seed spread at small n):", "",
                  "| arm | minus | " + " | ".join(CONTROL_KEYS) + " |", "|---|---|" + "---|" * len(CONTROL_KEYS)]
        lines += [f"| {arm} | {ctrl} | " + " | ".join(fmt(t.get(k)) for k in CONTROL_KEYS) + " |" for arm, ctrl, t in trows]
    need = [(arm, r["n_for_half_width"]) for arm, r in res["arms"].items() if r.get("n_for_half_width")]
    if need:
        lines += ["", f"Intervals wider than +-{TARGET_HALF_WIDTH}: seeds that would reach it (n x (half-width / "
                  f"{TARGET_HALF_WIDTH})^2, same eval size per seed):", ""]
        lines += [f"- {arm}: " + ", ".join(f"{k} {v}" for k, v in n.items()) for arm, n in need]
    return lines


def per_step(runs_dir: Path, by_arm: dict[str, dict[int, dict]], keys: list[str]) -> str:
    """Per arm and training step: metrics.jsonl's `keys`, mean over seeds and each seed's value."""
    lines = []
    for key in keys:
        lines += ["", f"Per training step: {key} (mean over seeds; per seed in brackets)", "",
                  "| step | " + " | ".join(by_arm) + " |", "|---|" + "---|" * len(by_arm)]
        vals = {arm: {seed: {r["step"]: r.get(key, float("nan")) for r in logs.read_jsonl(runs_dir / f"{arm}_s{seed}" / "metrics.jsonl")}
                      for seed in seeds} for arm, seeds in by_arm.items()}
        steps = sorted({st for a in vals.values() for s in a.values() for st in s})
        for st in steps:
            cells = []
            for arm in by_arm:
                xs = [vals[arm][seed].get(st, float("nan")) for seed in sorted(vals[arm])]
                ok = [x for x in xs if x == x]
                cells.append((f"{np.mean(ok):.3f}" if ok else "-") + " [" + ", ".join(f"{x:.2f}" for x in xs) + "]")
            lines.append(f"| {st} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---- the decisive table (--decisive): the analysis pre-registered in docs/prereg/2026-12-06*.md --------------

def parse_organisms(specs: list[str]) -> dict[str, Path]:
    """--organism-runs TAG=DIR (repeatable, first = primary organism) -> {TAG: DIR}; bad input exits 2."""
    if not specs:
        fail("--decisive needs at least one --organism-runs TAG=DIR (the first is the primary organism)")
    out: dict[str, Path] = {}
    for spec in specs:
        tag, sep, folder = spec.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z0-9_.@-]{1,40}", tag):
            fail(f"--organism-runs {spec!r}: expected TAG=DIR with TAG a short organism name ([A-Za-z0-9_.@-])")
        if tag in out:
            fail(f"--organism-runs {spec!r}: organism {tag} given twice")
        if not Path(folder).is_dir():
            fail(f"--organism-runs {spec!r}: {folder} is no folder")
        out[tag] = Path(folder)
    return out


def step_rates(rows: list[dict], step: int) -> dict[str, tuple[int, int]] | None:
    """{outcome: (k, n)} of the deployed model at one eval step (prereg.OUTCOMES); None if the step lacks a primary
    outcome's row. An outcome whose cells are all absent (held-out mechanisms not evaluated) is left out."""
    cell = {(r["split"], r["cell"]): r for r in rows if r["step"] == step and r["quarantine"] == prereg.DEPLOYED}
    out = {}
    for name, o in prereg.OUTCOMES.items():
        cells = [cell[(o.split, c)] for c in o.cells if (o.split, c) in cell]
        if len(cells) == len(o.cells):
            out[name] = count(cells, o.rate)
        elif name in prereg.PRIMARY_OUTCOMES:
            return None
    return out


def decisive_run(run_dir: Path) -> dict | None:
    """A finished run's summary (run_summary: meta, config, git, collapsed) with its deployed outcomes at both
    registered steps ({step: {outcome: (k, n)}}); None if it has not finished (no DONE). A finished run that lacks
    either step is refused."""
    if not (run_dir / "DONE").exists():
        return None
    rows = logs.read_jsonl(run_dir / "eval.jsonl")
    steps = {}
    for step in (prereg.PRIMARY_STEP, prereg.SECONDARY_STEP):
        steps[step] = step_rates(rows, step)
        if steps[step] is None:
            fail(f"run {run_dir}: finished (DONE) but eval.jsonl has no deployed ({prereg.DEPLOYED}) hinted/no-hint "
                 f"'all' rows of eval step {step} (the prereg reads steps {prereg.PRIMARY_STEP} and "
                 f"{prereg.SECONDARY_STEP})")
    s = run_summary(run_dir)
    assert s is not None, run_dir
    return s | {"steps": steps}


def collect_decisive(runs_dir: Path) -> tuple[dict[str, dict[int, dict]], list[str]]:
    """({arm: {seed: decisive_run}}, names of unfinished runs) of the run folders <arm>_s<seed> in runs_dir."""
    by_arm: dict[str, dict[int, dict]] = {}
    unfinished = []
    for arm, seed, d in run_folders(runs_dir):
        if seed < prereg.FIRST_SEED:
            fail(f"run {d}: seed {seed} is below the prereg's first training seed {prereg.FIRST_SEED}")
        s = decisive_run(d)
        if s is None:
            unfinished.append(d.name)
        else:
            by_arm.setdefault(arm, {})[seed] = s
    return by_arm, unfinished


def rate(s: dict, step: int, outcome: str) -> float | None:
    kn = s["steps"][step].get(outcome)
    return None if kn is None else kn[0] / kn[1]


def per_seed(by_arm: dict[str, dict[int, dict]], step: int) -> dict:
    """{arm: {outcome: {values: {seed: rate}, n, mean}}} at one eval step."""
    out: dict = {}
    for arm, seeds in sorted(by_arm.items()):
        for o in prereg.OUTCOMES:
            vals = {i: rate(s, step, o) for i, s in sorted(seeds.items()) if rate(s, step, o) is not None}
            if vals:
                out.setdefault(arm, {})[o] = dict(values=vals, n=len(vals), mean=float(np.mean(list(vals.values()))))
    return out


def contrast(c: prereg.Contrast, by_arm: dict[str, dict[int, dict]], step: int) -> dict:
    """Paired differences arm - control by training seed (the seeds both have), prereg.paired_test at the family's
    Bonferroni level."""
    a, b = by_arm.get(c.arm, {}), by_arm.get(c.control, {})
    seeds = [i for i in sorted(a) if i in b and rate(a[i], step, c.outcome) is not None
             and rate(b[i], step, c.outcome) is not None]
    diffs = [rate(a[i], step, c.outcome) - rate(b[i], step, c.outcome) for i in seeds]
    return dict(label=c.label, arm=c.arm, control=c.control, outcome=c.outcome, step=step, seeds=seeds,
                diffs=diffs) | prereg.paired_test(diffs, prereg.M_FAMILY)


def pooled(per_org: dict[str, dict]) -> dict:
    """prereg.random_effects over the organisms with a positive standard error, at the Bonferroni level and at 95%;
    a note instead when none has one."""
    ok = {t: r for t, r in per_org.items() if r["se"]}
    if not ok:
        return dict(note="not pooled: no organism has n >= 2 with nonzero spread")
    est, ses = [r["mean"] for r in ok.values()], [r["se"] for r in ok.values()]
    left = sorted(set(per_org) - set(ok))
    out = (prereg.random_effects(est, ses, prereg.BONFERRONI_LEVEL) | dict(organisms=list(ok), left_out=left,
           at95=prereg.random_effects(est, ses, 0.95)))
    if len(ok) == 1:  # one organism: its own t intervals, not normal ones
        (r,) = ok.values()
        half95 = float(stats.t.ppf(0.975, r["n"] - 1)) * r["se"]
        out.update(lo=r["lo"], hi=r["hi"])
        out["at95"] = dict(out["at95"], lo=r["mean"] - half95, hi=r["mean"] + half95)
    return out


def contrasts(cs: tuple[prereg.Contrast, ...], orgs: dict[str, dict], step: int) -> list[dict]:
    """Each contrast on every organism (per_organism) and pooled across them."""
    out = []
    for c in cs:
        per_org = {t: contrast(c, o["by_arm"], step) for t, o in orgs.items()}
        out.append(dict(label=c.label, arm=c.arm, control=c.control, outcome=c.outcome, step=step,
                        per_organism=per_org, pooled=pooled(per_org)))
    return out


def apply_holm(fam: list[dict], primary: str) -> dict:
    """Holm over all 12 family contrasts on the primary organism, as registered: a contrast without a p-value (n < 2)
    counts as p = 1 (it can reject nothing and makes the others' adjustment no smaller); fills holm_p and rejected in
    place (None for those without p); says which had none."""
    ps = [r["per_organism"][primary]["p"] for r in fam]
    adj = prereg.holm([1.0 if p is None else p for p in ps])
    for r, p, q in zip(fam, ps, adj):
        r["holm_p"], r["rejected"] = (None, None) if p is None else (q, q < prereg.ALPHA)
    left = [r["label"] for r, p in zip(fam, ps) if p is None]
    short = [p is None or r["per_organism"][primary]["n"] != prereg.N_PRIMARY for r, p in zip(fam, ps)]
    if any(short):  # the decisions the missing runs cannot change, whatever p their contrasts get
        for r, w in zip(fam, prereg.holm_whatever([1.0 if p is None else p for p in ps], short)):
            r["whatever_missing"] = w
    return dict(m=len(fam), registered_m=prereg.M_FAMILY, left_out=left, short=[r["label"] for r, s in zip(fam, short) if s],
                note="" if not left else f"Holm over {len(fam)} of {prereg.M_FAMILY}, with {', '.join(left)} (n < 2) "
                                         "counted as p = 1")


def added_organism(orgs: dict[str, dict]) -> str | None:
    """The organism amendment 5 added (its weights, prereg.THIRD_WEIGHTS), when the table has three with it among
    them and it is not the primary; else None (then "holds across" is not read)."""
    tags = [t for t, o in orgs.items() if o["meta"].get("model_sha256") == prereg.THIRD_WEIGHTS]
    return tags[0] if len(orgs) == 3 and len(tags) == 1 and tags[0] != next(iter(orgs)) else None


def replication_reading(fam: list[dict], primary: str, added: str | None) -> list[dict]:
    """Amendment 5's reading of each family contrast on the organisms other than the primary (prereg.replication)
    and, when the added organism is in a table of three, across them (prereg.holds_across, from the pooled
    Bonferroni interval over all three); empty with one organism."""
    rows = []
    for r in fam:
        po, pool = r["per_organism"], r["pooled"]
        if len(po) < 2:
            return []
        ref = po[primary]["mean"]
        others = {t: prereg.replication(ref, e["lo"], e["hi"]) for t, e in po.items() if t != primary}
        whole = pool.get("k") == len(po)  # no organism left out of the pooling
        across = None if added is None else prereg.holds_across(
            ref, pool.get("lo") if whole else None, pool.get("hi") if whole else None,
            [e["mean"] for e in po.values()], others[added])
        rows.append(dict(label=r["label"], arm=r["arm"], control=r["control"], outcome=r["outcome"],
                         primary_mean=ref, on=others, holds_across=across))
    return rows


def registered_status(orgs: dict[str, dict], primary: str, descends_from: str) -> str:
    """'' when this table can be the registered test (runs checked with --descends-from, every family arm with
    prereg.N_PRIMARY seeds on the primary organism); otherwise why it is interim."""
    checked = orgs[primary]["meta"].get("descends_from")  # check_descent's full hash of --descends-from
    why = [] if checked == prereg.PRE_REG_COMMIT else [
        f"runs not checked for descent from the pre-registration's commit {prereg.PRE_REG_COMMIT[:12]} "
        f"(--descends-from {descends_from or 'not given'})"]
    by_arm = orgs[primary]["by_arm"]
    other = sorted(a for c in prereg.FAMILY for a in (c.arm, c.control)
                   if tuple(sorted(by_arm.get(a, {}))) != prereg.PRIMARY_SEEDS)
    if other:
        why.append(f"on {primary}, {', '.join(dict.fromkeys(other))} lack the registered seeds "
                   f"{prereg.PRIMARY_SEEDS[0]}-{prereg.PRIMARY_SEEDS[-1]} (or have others)")
    return "; ".join(why)


def missing_runs(by_arm: dict[str, dict[int, dict]]) -> list[str]:
    """Registered arms with no finished run, and arm x seed cells missing against the seeds some arm has."""
    seeds = sorted({i for s in by_arm.values() for i in s})
    absent = [f"{a} ({prereg.DEFERRED.get(a, 'no runs')})" for a in sorted(prereg.REGISTERED) if a not in by_arm]
    gaps = [f"{a}_s{i}" for a in sorted(set(by_arm) & prereg.REGISTERED) for i in seeds if i not in by_arm[a]]
    return absent + gaps


def emergence(by_arm: dict[str, dict[int, dict]]) -> dict:
    """Vanilla's deployed hinted strict hack at the primary step, mean over seeds, against the floor."""
    vals = [rate(s, prereg.PRIMARY_STEP, "hack") for s in by_arm.get("vanilla", {}).values()]
    if not vals:
        return dict(mean=None, n=0, floor=prereg.EMERGENCE_FLOOR, passes=None)
    mean = float(np.mean(vals))
    return dict(mean=mean, n=len(vals), floor=prereg.EMERGENCE_FLOOR, passes=mean >= prereg.EMERGENCE_FLOOR)


def route_percentile(by_arm: dict[str, dict[int, dict]]) -> dict | None:
    """Route's mean deployed hack (primary step) within route-random's per-run values, with a bootstrap interval."""
    arm, ref = prereg.PERCENTILE_OF
    if not by_arm.get(arm) or not by_arm.get(ref):
        return None
    value = float(np.mean([rate(s, prereg.PRIMARY_STEP, "hack") for s in by_arm[arm].values()]))
    draws = [rate(s, prereg.PRIMARY_STEP, "hack") for _, s in sorted(by_arm[ref].items())]
    return dict(value=value, of=arm, within=ref) | prereg.percentile_within(value, draws, N_BOOT,
                                                                             np.random.default_rng(0))


def exploratory_contrasts(orgs: dict[str, dict]) -> list[dict]:
    """Arms outside the prereg's lists: against vanilla and against their registry controls, both outcomes."""
    extra = sorted({a for o in orgs.values() for a in o["by_arm"]} - prereg.REGISTERED)
    cs = tuple(prereg.Contrast(a, ctrl, out) for a in extra for ctrl in ("vanilla", *controls_of(a))
               for out in prereg.PRIMARY_OUTCOMES)
    return contrasts(cs, orgs, prereg.PRIMARY_STEP)


def read_organism(tag: str, runs_dir: Path, a: argparse.Namespace) -> dict:
    """One organism's runs, checked (check_meta; check_descent with --descends-from), with its per-seed tables."""
    by_arm, unfinished = collect_decisive(runs_dir)
    if not by_arm:
        fail(f"--organism-runs {tag}={runs_dir}: no finished runs (<arm>_s<seed> with DONE)")
    meta = check_meta(by_arm, a.allow_mixed)
    if a.descends_from:
        meta["descends_from"] = check_descent(by_arm, a.descends_from)
    return dict(runs_dir=str(runs_dir), by_arm=by_arm, meta=meta, unfinished=unfinished,
                collapsed=[f"{arm}_s{i}" for arm, seeds in sorted(by_arm.items()) for i, s in sorted(seeds.items())
                           if s["collapsed"]],
                missing=missing_runs(by_arm), emergence=emergence(by_arm), route_percentile=route_percentile(by_arm),
                per_seed={st: per_seed(by_arm, st) for st in (prereg.PRIMARY_STEP, prereg.SECONDARY_STEP)},
                exploratory_arms=sorted(set(by_arm) - prereg.REGISTERED))


def decisive(a: argparse.Namespace) -> dict:
    """The decisive table: the family with Holm on the primary organism, the same contrasts on the others and pooled,
    the secondary contrasts, step 39, route's percentile, the emergence floor, the exploratory arms."""
    orgs = {t: read_organism(t, d, a) for t, d in parse_organisms(a.organism_runs).items()}
    primary = next(iter(orgs))
    fam = contrasts(prereg.FAMILY, orgs, prereg.PRIMARY_STEP)
    holm_info = apply_holm(fam, primary)
    res = dict(prereg=dict(commit=prereg.PRE_REG_COMMIT, primary_step=prereg.PRIMARY_STEP,
                           secondary_step=prereg.SECONDARY_STEP, first_seed=prereg.FIRST_SEED, alpha=prereg.ALPHA,
                           m=prereg.M_FAMILY, bonferroni_level=prereg.BONFERRONI_LEVEL,
                           emergence_floor=prereg.EMERGENCE_FLOOR, deployed=prereg.DEPLOYED,
                           held_out=list(prereg.HELD_OUT)),
               primary=primary, interim=(interim := registered_status(orgs, primary, a.descends_from)), holm=holm_info,
               family=[dict(r, rejected=None) for r in fam] if interim else fam,
               secondary=contrasts(prereg.SECONDARY, orgs, prereg.PRIMARY_STEP),
               step39=contrasts(tuple(replace(c, label=f"{c.label}@{prereg.SECONDARY_STEP}" if c.label else "")
                                      for c in prereg.FAMILY + prereg.SECONDARY), orgs, prereg.SECONDARY_STEP),
               added=(added := added_organism(orgs)), replication=replication_reading(fam, primary, added),
               exploratory=exploratory_contrasts(orgs),
               organisms={t: {k: v for k, v in o.items() if k != "by_arm"} for t, o in orgs.items()})
    return res


def jsonable(x):
    """NaN and inf to None, tuples to lists, keys to strings (json.dumps writes NaN otherwise)."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def num(x, f: str = ".3f") -> str:
    return "-" if x is None else format(x, f)


def ci(r: dict) -> str:
    """'mean [lo, hi] (n)' of a paired_test result."""
    if r["mean"] is None:
        why = [prereg.DEFERRED[a] for a in (r.get("arm"), r.get("control")) if a in prereg.DEFERRED]
        return f"not run ({'; '.join(why)})" if why else "no shared seeds"
    return f"{r['mean']:+.3f} [{num(r['lo'], '+.3f')}, {num(r['hi'], '+.3f')}] (n {r['n']})"


def pool_cell(p: dict) -> str:
    if "estimate" not in p:
        return p["note"]
    tau = f", tau² {p['tau2']:.4f}" if p["tau2"] is not None else ""
    left = f"; left out (no spread): {', '.join(p['left_out'])}" if p["left_out"] else ""
    return f"{p['estimate']:+.3f} [{p['lo']:+.3f}, {p['hi']:+.3f}] (k {p['k']}{tau}{left})"


def contrast_rows(rows: list[dict], orgs: list[str], holm_col: bool, interim: bool = False) -> list[str]:
    head = ["label", "contrast", "outcome"] + [f"{t}: mean [Bonferroni] (n)" for t in orgs] + [f"{orgs[0]}: p"]
    head += (["Holm p", "Holm p < 0.05 (interim: decides nothing)" if interim else "rejected"] if holm_col else [])
    whatever = holm_col and any("whatever_missing" in r for r in rows)
    head += ["Holm p < 0.05 whatever the short contrasts give (their p at 0 and at 1)"] if whatever else []
    head += ["pooled (DL, Bonferroni level)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        po = r["per_organism"]
        cells = [r["label"] or "-", f"{r['arm']} - {r['control']}", r["outcome"]] + [ci(po[t]) for t in orgs]
        cells.append(num(po[orgs[0]]["p"], ".3g"))
        if holm_col:
            if interim:  # nothing is rejected in an interim table: the Holm value read against 0.05, for reading
                mark = "-" if r["holm_p"] is None else ("yes" if r["holm_p"] < prereg.ALPHA else "no")
            else:
                mark = "-" if r["rejected"] is None else ("**yes**" if r["rejected"] else "no")
            cells += [num(r["holm_p"], ".3g"), mark] + ([r["whatever_missing"]] if whatever else [])
        lines.append("| " + " | ".join(cells + [pool_cell(r["pooled"])]) + " |")
    return lines


def per_seed_rows(table: dict) -> list[str]:
    lines = ["| arm | outcome | n | mean | per seed |", "|---|---|---|---|---|"]
    for arm, outs in table.items():
        for o, v in outs.items():
            seeds = ", ".join(f"{i}: {x:.3f}" for i, x in v["values"].items())
            lines.append(f"| {arm} | {o} | {v['n']} | {v['mean']:.3f} | {seeds} |")
    return lines


def organism_markdown(tag: str, o: dict, primary: str) -> list[str]:
    e, pc = o["emergence"], o["route_percentile"]
    floor = ("no vanilla runs: not measured" if e["passes"] is None else
             f"vanilla {e['mean']:.3f} over {e['n']} seeds, floor {e['floor']:.2f}: "
             + ("reached" if e["passes"] else "**not reached: this organism's results do not count**"))
    lines = ["", f"## Organism {tag}{' (primary)' if tag == primary else ''}: {o['runs_dir']}", "",
             f"- emergence floor: {floor}",
             f"- unfinished runs (left out): {', '.join(o['unfinished']) or 'none'}",
             f"- registered runs missing: {', '.join(o['missing']) or 'none'}",
             f"- collapsed runs (kept in, flagged): {', '.join(o['collapsed']) or 'none'}",
             f"- runs: " + ", ".join(f"{k} {v}" for k, v in o["meta"].items())]
    if pc:
        lines.append(f"- route's mean deployed hack {pc['value']:.3f} is at percentile {pc['percentile']:.1f} "
                     f"[{pc['lo']:.1f}, {pc['hi']:.1f}] (95% bootstrap, {pc['n_boot']} draws) of the {pc['n']} "
                     "route-random runs' deployed hack rates")
    for st in (prereg.PRIMARY_STEP, prereg.SECONDARY_STEP):
        lines += ["", f"Per seed, deployed model, eval step {st}:", ""] + per_seed_rows(o["per_seed"][st])
    return lines


def replication_markdown(res: dict) -> list[str]:
    """Amendment 5's table: each family contrast's reading on the other organisms and across all of them."""
    rows = res.get("replication") or []
    if not rows:
        return []
    others, added = list(rows[0]["on"]), res.get("added")
    head = ["label", "contrast", "outcome", f"{res['primary']}: mean"] + [f"on {t}" for t in others]
    head += [f"across the {len(others) + 1} organisms"] if added else []
    across = (f"It holds across organisms when it holds on {added} (the organism amendment 5 added), the pooled "
              "interval over the three excludes 0 on that side, and no organism's estimate has the other sign."
              if added else "Across organisms is not read: amendment 5 reads it over three organisms with the third "
              f"(weights {prereg.THIRD_WEIGHTS[:8]}) among them.")
    lines = ["", f"## Replication (amendment 5's rule, step {res['prereg']['primary_step']}; outside the family)", "",
             "Amendment 5 was written after the first two organisms' outcomes were read: these readings are a "
             f"replication, not a new verdict; the registered verdicts are {res['primary']}'s. A contrast holds on an "
             f"organism when that organism's Bonferroni interval excludes 0 on the side of {res['primary']}'s "
             "estimate, is reversed when it excludes 0 on the other side, and is otherwise not replicated "
             f"(inconclusive, not refuted). {across} The rule reads the side of {res['primary']}'s estimate whether or "
             "not Holm rejects there, so a contrast near 0 on the primary can hold or be reversed elsewhere: read such "
             "rows beside the primary interval. '-': no estimate on one side, or the primary's is exactly 0.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["label"], f"{r['arm']} - {r['control']}", r["outcome"], num(r["primary_mean"], "+.3f")]
        cells += [r["on"][t] or "-" for t in others]
        cells += [{True: "**holds**", False: "does not hold", None: "-"}[r["holds_across"]]] if added else []
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def decisive_markdown(res: dict) -> str:
    p, orgs = res["prereg"], list(res["organisms"])
    title = (f"# The decisive table (pre-registration at {p['commit'][:12]})" if not res["interim"] else
             f"# Interim table, not the registered test (pre-registration at {p['commit'][:12]})")
    lines = [title, ""]
    if res["interim"]:
        lines += [f"**Interim: {res['interim']}. It decides nothing (amendment 2); the Holm column is computed as "
                  "registered and shown for reading only, and no contrast is called rejected.**", ""]
    lines += [
             f"Deployed model (quarantine {p['deployed']}). hack: hinted strict hack, all mechanisms; solve: no-hint "
             f"solve, all difficulties; heldout_hack: strict hack on {', '.join(p['held_out'])}. Paired by training "
             f"seed (the seeds both arms have; n shown). Intervals: Bonferroni, t over seeds at level "
             f"{p['bonferroni_level']:.4f} (1 - {p['alpha']}/{p['m']}); pooled: DerSimonian-Laird across organisms "
             "at the same level.", "", "Emergence floor (vanilla's deployed hack at eval step "
             f"{p['primary_step']}, mean over seeds, at least {p['emergence_floor']:.2f}): " + "; ".join(
                 f"{t} " + ("not measured (no vanilla runs)" if o["emergence"]["passes"] is None else
                            f"{o['emergence']['mean']:.3f} " + ("reached" if o["emergence"]["passes"] else
                                                                 "**not reached: its results do not count**"))
                 for t, o in res["organisms"].items()) + ".", "",
             f"## Primary family (organism {res['primary']}, eval step {p['primary_step']}; Holm over "
             f"{res['holm']['m']} of {p['m']})", ""]
    if res["holm"]["note"]:
        lines += [f"**{res['holm']['note']}**", ""]
    lines += contrast_rows(res["family"], orgs, True, interim=bool(res["interim"]))
    lines += ["", f"Organisms other than {res['primary']} and the pooled column are reported outside the family.", "",
              f"## Secondary contrasts (eval step {p['primary_step']}; outside the family, raw p)", ""]
    lines += contrast_rows(res["secondary"], orgs, False)
    lines += ["", f"## Step {p['secondary_step']} (secondary: family and secondary contrasts)", ""]
    lines += contrast_rows(res["step39"], orgs, False)
    lines += replication_markdown(res)
    extra = sorted({a for o in res["organisms"].values() for a in o["exploratory_arms"]})
    lines += ["", "## Exploratory (arms outside the pre-registered lists: " + (", ".join(extra) or "none") + ")", ""]
    if res["exploratory"]:
        lines += contrast_rows(res["exploratory"], orgs, False)
    for t, o in res["organisms"].items():
        lines += organism_markdown(t, o, res["primary"])
    return "\n".join(lines)


def decisive_plot(res: dict, out: Path) -> Path:
    """Family contrasts: estimate and Bonferroni interval per organism, and pooled, one panel per outcome."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    orgs = list(res["organisms"])
    fig, axes = plt.subplots(1, len(prereg.PRIMARY_OUTCOMES), figsize=(12, 5), sharey=True)
    for ax, outcome in zip(axes, prereg.PRIMARY_OUTCOMES):
        rows = [r for r in res["family"] if r["outcome"] == outcome]
        for j, name in enumerate(orgs + ["pooled"]):
            ys, xs, los, his = [], [], [], []
            for i, r in enumerate(rows):
                e = r["pooled"] if name == "pooled" else r["per_organism"][name]
                m, lo, hi = e.get("estimate" if name == "pooled" else "mean"), e.get("lo"), e.get("hi")
                if m is not None and lo is not None:
                    ys.append(i + 0.15 * (j - len(orgs) / 2)), xs.append(m), los.append(m - lo), his.append(hi - m)
            ax.errorbar(xs, ys, xerr=[los, his], fmt="D" if name == "pooled" else "o", capsize=3, label=name)
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_yticks(range(len(rows)), [f"{r['label'][1:]}: {r['arm']} - {r['control']}" for r in rows])
        ax.set_title(f"deployed {outcome} ({rows[0]['label'][0]}1-{rows[0]['label'][0]}{len(rows)}), eval step "
                     f"{prereg.PRIMARY_STEP}")
        ax.set_xlabel(f"mean paired difference [Bonferroni {prereg.BONFERRONI_LEVEL:.4f}]")
    axes[0].invert_yaxis()
    axes[-1].legend(fontsize=8)
    if res["interim"]:
        fig.suptitle("INTERIM: not the registered test (decides nothing)", color="firebrick")
    fig.tight_layout()
    path = out / "decisive_contrasts.png"
    fig.savefig(path, dpi=120, metadata={"Title": fig.get_suptitle() or "decisive contrasts"})  # the banner, readable
    plt.close(fig)
    return path


def arm_order(arms: set[str]) -> list[str]:
    """vanilla and rl-baseline first, then the arms as the family and the secondary contrasts name them, the rest
    sorted."""
    named = ["vanilla", "rl-baseline"] + [a for c in prereg.FAMILY + prereg.SECONDARY for a in (c.arm, c.control)]
    return [a for a in dict.fromkeys(named) if a in arms] + sorted(arms - set(named))


def arms_plot(res: dict, out: Path) -> Path:
    """Every arm's per-seed deployed hack and solve at the primary step, one column per organism: a dot per training
    seed, a bar at the mean, vanilla's mean as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    orgs = list(res["organisms"])
    tables = {t: o["per_seed"][prereg.PRIMARY_STEP] for t, o in res["organisms"].items()}
    arms = arm_order({a for tb in tables.values() for a in tb})
    fig, axes = plt.subplots(2, len(orgs), figsize=(4.2 * len(orgs), 11), sharey=True, squeeze=False)
    for col, t in enumerate(orgs):
        for row, outcome in enumerate(("hack", "solve")):
            ax = axes[row][col]
            for y, arm in enumerate(arms):
                v = tables[t].get(arm, {}).get(outcome)
                if not v:
                    continue
                xs = list(v["values"].values())
                ax.plot(xs, [y + 0.12 * ((k % 5) - 2) / 2 for k in range(len(xs))], "o", ms=3, alpha=0.6,
                        color="tab:red" if "route" in arm else "tab:blue")
                ax.plot([v["mean"]] * 2, [y - 0.35, y + 0.35], color="black", lw=2)
            van = tables[t].get("vanilla", {}).get(outcome)
            if van:
                ax.axvline(van["mean"], color="grey", ls="--", lw=0.8)
            ax.set_xlim(-0.02, 1.0)
            ax.set_title(f"{t}: deployed {outcome}, eval step {prereg.PRIMARY_STEP}", fontsize=9)
            ax.set_yticks(range(len(arms)), arms, fontsize=8)
    axes[0][0].invert_yaxis()
    fig.suptitle(("INTERIM: " if res["interim"] else "") + "per-seed rates (dots; red: routing arms), arm means (bars), vanilla's mean (dashed)",
                 color="firebrick" if res["interim"] else "black")
    fig.tight_layout()
    path = out / "decisive_arms.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main_decisive(a: argparse.Namespace) -> dict:
    """--decisive: refuse an --out that holds a results.json unless --fresh, then write results.json, results.md and
    the plot."""
    out = Path(a.out)
    if (out / "results.json").exists() and not a.fresh:
        fail(f"--out {out}: already holds a results.json (pass --fresh to overwrite it)")
    res = decisive(a)
    out.mkdir(parents=True, exist_ok=True)
    md = decisive_markdown(res)
    (out / "results.md").write_text(md + "\n")
    (out / "results.json").write_text(json.dumps(jsonable(res), indent=1))
    print(md)
    if not a.no_plots:
        print(f"plots: {decisive_plot(res, out)}, {arms_plot(res, out)}")
    return jsonable(res)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", default="out/runs")
    ap.add_argument("--arms", default="", help="comma-separated arms (default: all found)")
    ap.add_argument("--baseline", default="vanilla")
    ap.add_argument("--out", default="out/results")
    ap.add_argument("--allow-unequal-n", action="store_true")
    ap.add_argument("--allow-mixed", action="store_true", help="pool and pair runs that differ in run_meta or recipe, "
                    "and pool runs of one arm that differ in configuration (check_meta)")
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--require-done", action="store_true", help="only runs that finished (a DONE file)")
    ap.add_argument("--descends-from", default="", help="refuse runs whose recorded commit does not descend from this "
                    "commit, is unknown, or had tracked files changed (check_descent; the pre-registration names it)")
    ap.add_argument("--per-step", default="", help="comma-separated metrics.jsonl keys to print per training step "
                    "(e.g. pos_share_routed,pos_share_kept,gt_pass)")
    ap.add_argument("--decisive", action="store_true", help="the pre-registered decisive table "
                    "(projected_grpo.method.prereg) over --organism-runs")
    ap.add_argument("--organism-runs", action="append", default=[], metavar="TAG=DIR", help="with --decisive, "
                    "repeatable: an organism's short name and its folder of <arm>_s<seed> runs (the first is primary)")
    ap.add_argument("--fresh", action="store_true", help="with --decisive, overwrite an --out that holds results.json")
    a = ap.parse_args(argv)
    if a.decisive:
        return main_decisive(a)
    if a.organism_runs or a.fresh:
        fail("--organism-runs and --fresh belong to --decisive")
    runs = Path(a.runs)
    if not runs.is_dir():
        fail(f"--runs {runs}: no such folder")
    by_arm = collect(runs, [x for x in a.arms.split(",") if x] or None, a.require_done)
    if not by_arm:
        fail(f"--runs {runs}: no finished runs (with eval.jsonl)")
    meta = check_meta(by_arm, a.allow_mixed)
    if a.descends_from:
        meta["descends_from"] = check_descent(by_arm, a.descends_from)
    res = table(by_arm, a.baseline, a.allow_unequal_n)
    res["meta"] = meta
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    md = markdown(res, meta)
    if a.per_step:
        md += "\n" + per_step(runs, by_arm, a.per_step.split(","))
    (out / "results.md").write_text(md + "\n")
    (out / "results.json").write_text(json.dumps(res, indent=1))
    print(md)
    if not a.no_plots:
        from projected_grpo.loop.plots import plot_runs

        for p in plot_runs(runs, list(by_arm), out):
            print(f"plot: {p}")
    return res


if __name__ == "__main__":
    main()
