"""Gate: the decisive table (results.py --decisive, projected_grpo.method.prereg) on synthetic runs with a known answer.

Statistics on fixed inputs against hand computations: Holm's step-down adjusted p-values (monotone, capped at 1),
the paired t-test and its Bonferroni interval, DerSimonian-Laird pooling (and its one-organism case), a value's
percentile within draws. The registry: FAMILY is the prereg's 12 hypotheses, every registered arm is a registry arm.

End to end, two organisms of synthetic run folders (eval.jsonl, metrics.jsonl, args.json, run_meta.json, DONE) with
planted effects: route's deployed hack 0.2 below route-random's at eval step 79 in every seed (with a little spread)
and 0.1 above it at step 39; erase equal to erase-random on average. Checked: the planted contrast has the right sign
and value on both organisms and pooled and is rejected by Holm; the null contrast is not; the family's Holm values
are prereg.holm of its raw p; step 39 and step 79 are read from their own rows; kept rows are not read; per-seed
tables; an unfinished run is left out and listed; a finished run missing a step is refused (exit 2, one line naming
it); Holm over the 12 with missing contrasts as p = 1 (said), the decisions no missing contrast can change (Holm with their p at 0 and at 1, on fixed inputs and against random values between), and a table short of the registered n marked interim; the emergence floor; collapsed and exploratory runs; --fresh; --descends-from
wired; the plot written. Prints one PASS line; exit 1 on failure.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from _gate_common import ARGS, META, run_gate, run_script  # noqa: E402

from projected_grpo.loop import logs  # noqa: E402
from projected_grpo.method import prereg  # noqa: E402

STEPS = (prereg.SECONDARY_STEP, prereg.PRIMARY_STEP)
ARMS = ("vanilla", "route", "route-random", "route-placebo", "route-negated", "route-subset-matched", "erase",
        "erase-random", "scorda-absorb", "scorda-placebo", "route-subset-signed", "capacity", "absorb")
NULL_DIFFS = (0.01, -0.01, 0.02, -0.02, 0.0, 0.0)
TOL = 1e-9


def planted(arm: str, i: int, step: int, outcome: str, organism: str) -> float:
    """The rate a synthetic run of `arm`, seed index i, shows at an eval step (multiples of 0.01: exact in counts)."""
    noise = 0.01 * (((i + 1) * (ARMS.index(arm) + 2)) % 5 - 2)
    if outcome == "solve":
        return round((0.5 if step == prereg.PRIMARY_STEP else 0.4) + noise, 2)
    if outcome == "heldout_hack":
        return round(0.2 + 0.02 * (i % 2), 2)
    base = (0.6 if step == prereg.PRIMARY_STEP else 0.4) + 0.02 * i
    if arm == "vanilla":
        return round(0.3 if organism == "rep" else base, 2)  # the replication organism misses the floor
    if arm == "route":  # 0.2 below route-random at step 79, 0.1 above at step 39 (spread 0.01)
        return round(base + (-0.2 if step == prereg.PRIMARY_STEP else 0.1) + 0.01 * (i % 2), 2)
    if arm == "route-random":  # on "third" 0.4 lower: route - route-random reversed there, route - the rest not
        return round(base - (0.4 if organism == "third" else 0.0), 2)
    if arm in ("erase", "erase-random"):
        return round(0.5 + (NULL_DIFFS[i] if arm == "erase" else 0.0), 2)
    return round(base + noise, 2)


def eval_rows(rate, step: int) -> list[dict]:
    """Eval rows of one step: hinted 'all' (n 400), the two held-out mechanisms (n 50 each), no-hint 'all' (n 300);
    the kept model's rows differ from the deployed (ablated) ones so that reading the wrong ones shows."""
    def row(q: str, split: str, cell: str, n: int, hack: float, solve: float) -> dict:
        return dict(step=step, quarantine=q, split=split, cell=cell, n=n, hack_strict=hack, hack_loose=hack, solve=solve)

    rows = []
    for q, shift in (("kept", 0.05), ("ablated", 0.0)):
        hack, held = rate("hack") + shift, rate("heldout_hack") + shift
        rows += [row(q, "hinted", "all", 400, hack, 0.1), *(row(q, "hinted", m, 50, held, 0.0) for m in prereg.HELD_OUT),
                 row(q, "nohint", "all", 300, 0.0, rate("solve"))]
    return rows


def make_run(runs: Path, arm: str, seed: int, organism: str, steps=STEPS, done: bool = True,
             collapse: bool = False) -> None:
    """A run folder <arm>_s<seed> as run_summary and check_meta read it."""
    d = runs / f"{arm}_s{seed}"
    d.mkdir(parents=True)
    sha = {"cpu": "ab12" * 16, "rep": "ef56" * 16, "third": prereg.THIRD_WEIGHTS}[organism]
    (d / "run_meta.json").write_text(json.dumps(dict(META, model_sha256=sha)))
    (d / "args.json").write_text(json.dumps(dict(ARGS, steps=80)))
    i = seed - prereg.FIRST_SEED
    rows = [r for st in steps for r in eval_rows(lambda o: planted(arm, i, st, o, organism), st)]
    logs.write_jsonl(d / "eval.jsonl", rows)
    logs.write_jsonl(d / "metrics.jsonl", [dict(step=s, hack_strict=0.1, gt_pass=0.5,
                                                reward=0.2 if collapse and s >= 5 else 1.0) for s in range(80)])
    if done:
        (d / "DONE").write_text("ok\n")


def quiet(main, argv: list[str]) -> dict:
    """results.main(argv) with its printed table kept out of the gate's output."""
    with contextlib.redirect_stdout(io.StringIO()):
        return main(argv)


def check_statistics() -> None:
    """prereg's statistics on fixed inputs, each against a hand computation."""
    p = [0.04, 0.01, 0.045, 0.002, 0.4, 0.6, 0.35]
    # sorted: .002x7=.014, .01x6=.06, .04x5=.2, .045x4=.18 -> .2 (step-down), .35x3=1.05 -> 1, .4x2 -> 1, .6x1 -> 1
    want = [0.2, 0.06, 0.2, 0.014, 1.0, 1.0, 1.0]
    got = prereg.holm(p)
    assert all(abs(g - w) < TOL for g, w in zip(got, want)), f"holm({p}) = {got}, hand computation {want}"
    # paired t: mean -0.2, sd 0.1, n 3 -> t = -2 sqrt(3); t(1 - 0.05/24, 2) = 15.4435 (tables)
    r = prereg.paired_test([-0.1, -0.2, -0.3], 12)
    half = 15.443 * 0.1 / math.sqrt(3)
    assert abs(r["mean"] + 0.2) < TOL and r["n"] == 3 and abs(r["p"] - 0.07418) < 1e-4, r
    assert abs((r["hi"] - r["lo"]) / 2 - half) < 1e-3 * half, (r, half)
    assert prereg.paired_test([0.3], 12)["p"] is None, "one seed has no test"
    # DerSimonian-Laird: w = 400, 100, 156.25; fixed -0.2085714; Q = 2.5142857; C = 656.25 - 194414.0625/656.25 = 360
    # tau2 = (Q - 2)/C = 0.0014285714; w* = 1/(se^2 + tau2) -> pooled -0.2085651, se 0.0461372
    d = prereg.random_effects([-0.2, -0.1, -0.3], [0.05, 0.1, 0.08])
    assert abs(d["tau2"] - 0.0014285714) < 1e-9 and abs(d["q"] - 2.5142857) < 1e-6, d
    assert abs(d["estimate"] + 0.2085651) < 1e-6 and abs(d["se"] - 0.0461372) < 1e-6, d
    assert abs(d["hi"] - d["estimate"] - 1.959964 * d["se"]) < 1e-6, d
    one = prereg.random_effects([-0.2], [0.05])
    assert one["estimate"] == -0.2 and one["k"] == 1 and "one organism" in one["note"], one
    # 0.35 within 0.1..1.0: 3 below -> 30; 0.3: 2 below, 1 tie -> 25
    import numpy as np

    draws = [k / 10 for k in range(1, 11)]
    pw = prereg.percentile_within(0.35, draws, 2000, np.random.default_rng(0))
    assert pw["percentile"] == 30.0 and 0 <= pw["lo"] < 30 < pw["hi"] <= 100 and pw["n"] == 10, pw
    assert prereg.percentile_within(0.3, draws, 10, np.random.default_rng(0))["percentile"] == 25.0
    # Holm whatever the unknown p: [.001, .004, .3, u] -> u = 0: .003, .008, .3; u = 1: .004, .012, .6 (same decisions)
    got = prereg.holm_whatever([0.001, 0.004, 0.3, 0.5], [False, False, False, True])
    assert got == ["rejected either way", "rejected either way", "not rejected either way", "open"], got
    # [.03, u]: u = 0 -> .03 rejected; u = 1 -> .06 not: open
    assert prereg.holm_whatever([0.03, 0.5], [False, True]) == ["open", "open"], prereg.holm_whatever([0.03, 0.5], [False, True])
    rng = np.random.default_rng(1)  # any values of the unknown p give a decision inside the bracket
    for _ in range(300):
        ps, unknown = 10 ** rng.uniform(-4, 0, 12), rng.random(12) < 0.25
        settled = prereg.holm_whatever([float(x) for x in ps], [bool(u) for u in unknown])
        ps[unknown] = 10 ** rng.uniform(-5, 0, int(unknown.sum()))
        for w, q in zip(settled, prereg.holm([float(x) for x in ps])):
            assert w == "open" or (w == "rejected either way") == (q < prereg.ALPHA), (w, q)
    # amendment 5: the side of the primary's estimate decides; an interval touching 0 is inconclusive
    rep = prereg.replication
    assert [rep(-0.3, -0.5, -0.1), rep(-0.3, 0.1, 0.4), rep(-0.3, -0.2, 0.1), rep(0.2, 0.05, 0.3),
            rep(0.2, -0.3, -0.01), rep(0.0, -0.3, -0.1), rep(None, -0.3, -0.1)] == [
        prereg.HOLDS, prereg.REVERSED, prereg.NOT_REPLICATED, prereg.HOLDS, prereg.REVERSED, None, None]
    across = prereg.holds_across
    assert across(-0.3, -0.4, -0.1, [-0.3, -0.2, -0.25], prereg.HOLDS) is True
    assert across(-0.3, -0.4, 0.01, [-0.3, -0.2, -0.25], prereg.HOLDS) is False, "pooled interval touches 0"
    assert across(-0.3, -0.4, -0.1, [-0.3, 0.02, -0.25], prereg.HOLDS) is False, "an estimate of the other sign"
    assert across(-0.3, -0.4, -0.1, [-0.3, -0.2, -0.25], prereg.NOT_REPLICATED) is False, "not held on the added one"
    assert across(0.3, 0.1, 0.4, [0.3, 0.2, 0.25], prereg.HOLDS) is True
    assert across(-0.3, None, None, [-0.3, -0.2], prereg.HOLDS) is None
    assert across(-0.3, None, None, [-0.3, 0.2], prereg.REVERSED) is False, "not held on the added one decides"
    assert rep(-0.3, -0.5, 0.0) == rep(0.2, 0.0, 0.3) == prereg.NOT_REPLICATED, "an interval ending at 0 excludes it not"
    assert across(-0.3, -0.4, 0.0, [-0.3, -0.2, -0.25], prereg.HOLDS) is False, "a pooled interval ending at 0"
    assert across(-0.3, -0.4, -0.1, [-0.3, 0.0, -0.25], prereg.HOLDS) is True, "an estimate of 0 has no other sign"


def check_registry() -> None:
    from projected_grpo.method import arms

    labels = [c.label for c in prereg.FAMILY]
    assert labels == [f"H{i}" for i in range(1, 7)] + [f"S{i}" for i in range(1, 7)], labels
    pairs = {(c.arm, c.control) for c in prereg.FAMILY}
    assert ("route", "route-subset-matched") in pairs and ("scorda-absorb", "scorda-placebo") in pairs, pairs
    assert ("route", "route-subset-signed") not in pairs, "amendment 1 moved route-subset-signed out of the family"
    missing = prereg.REGISTERED - set(arms.BY_NAME)
    assert not missing, f"registered arms not in the registry: {missing}"
    assert prereg.PRIMARY_STEP == 79 and prereg.SECONDARY_STEP == 39 and prereg.EMERGENCE_FLOOR == 0.40
    assert prereg.PRE_REG_COMMIT.startswith("820dda7"), prereg.PRE_REG_COMMIT


def build(t: Path) -> dict[str, Path]:
    """Two organisms: cpu (primary, seeds 100-105) and rep (seeds 100-103); every family/secondary arm but the
    peers, and one exploratory arm; capacity_s101 collapsed; route_s106 unfinished (only step 39, no DONE)."""
    dirs = {"cpu": t / "cpu", "rep": t / "rep"}
    for org, n in (("cpu", 6), ("rep", 4)):
        for arm in ARMS:
            if org == "rep" and arm == "absorb":
                continue
            for i in range(n):
                make_run(dirs[org], arm, prereg.FIRST_SEED + i, org, collapse=(arm, i) == ("capacity", 1))
    make_run(dirs["cpu"], "route", prereg.FIRST_SEED + 6, "cpu", steps=(prereg.SECONDARY_STEP,), done=False)
    return dirs


def find(rows: list[dict], arm: str, control: str, outcome: str) -> dict:
    return next(r for r in rows if (r["arm"], r["control"], r["outcome"]) == (arm, control, outcome))


def expected_diff(arm: str, control: str, step: int, outcome: str, org: str, n: int) -> float:
    return sum(planted(arm, i, step, outcome, org) - planted(control, i, step, outcome, org) for i in range(n)) / n


def check_table(res: dict, out: Path) -> None:
    import results

    fam, p79, p39 = res["family"], prereg.PRIMARY_STEP, prereg.SECONDARY_STEP
    h1 = find(fam, "route", "route-random", "hack")
    for org, n in (("cpu", 6), ("rep", 4)):
        e = h1["per_organism"][org]
        want = expected_diff("route", "route-random", p79, "hack", org, n)
        assert e["n"] == n and abs(e["mean"] - want) < TOL and e["mean"] < 0, (org, e["mean"], want, e["n"])
        assert e["hi"] < 0, f"{org}: the planted -0.2 should lie outside its Bonferroni interval: {e}"
    # an interim table (these runs carry no commit, and their seeds are not the registered ones) rejects nothing
    assert res["interim"] and all(r["rejected"] is None for r in fam), (res["interim"], [r["rejected"] for r in fam])
    assert h1["label"] == "H1" and h1["holm_p"] < 0.05, h1["holm_p"]
    assert abs(h1["pooled"]["estimate"] - expected_diff("route", "route-random", p79, "hack", "cpu", 6)) < 1e-6, h1["pooled"]
    h5 = find(fam, "erase", "erase-random", "hack")
    assert h5["label"] == "H5" and abs(h5["per_organism"]["cpu"]["mean"]) < TOL and h5["holm_p"] >= 0.05, h5
    raw = [r["per_organism"]["cpu"]["p"] for r in fam]
    assert res["holm"]["m"] == 12 and [r["holm_p"] for r in fam] == prereg.holm(raw), res["holm"]
    s39 = find(res["step39"], "route", "route-random", "hack")["per_organism"]["cpu"]
    want39 = expected_diff("route", "route-random", p39, "hack", "cpu", 6)
    assert abs(s39["mean"] - want39) < TOL and s39["mean"] > 0, f"step 39 read {s39['mean']}, planted {want39}"
    ps = res["organisms"]["cpu"]["per_seed"]
    for st in (p79, p39):
        v = ps[str(st)]["route"]["hack"]
        assert v["n"] == 6 and abs(v["values"]["100"] - planted("route", 0, st, "hack", "cpu")) < TOL, (st, v)
    held = find(res["secondary"], "route", "route-random", "heldout_hack")["per_organism"]["cpu"]
    assert held["n"] == 6 and abs(held["mean"]) < TOL, held
    sec = find(res["secondary"], "route", "capacity", "solve")["per_organism"]["cpu"]
    assert abs(sec["mean"] - expected_diff("route", "capacity", p79, "solve", "cpu", 6)) < TOL, sec
    peer = find(res["secondary"], "route-lora", "route", "hack")["per_organism"]["cpu"]
    assert peer["n"] == 0 and peer["p"] is None, peer
    cpu, rep = res["organisms"]["cpu"], res["organisms"]["rep"]
    assert cpu["unfinished"] == ["route_s106"] and cpu["collapsed"] == ["capacity_s101"], cpu
    assert cpu["emergence"]["passes"] is True and rep["emergence"]["passes"] is False, (cpu["emergence"], rep)
    pc = cpu["route_percentile"]
    rr = [planted("route-random", i, p79, "hack", "cpu") for i in range(6)]
    hand = 100 * (sum(x < pc["value"] for x in rr) + 0.5 * sum(x == pc["value"] for x in rr)) / 6
    assert pc["n"] == 6 and pc["percentile"] == hand and pc["lo"] <= hand <= pc["hi"], (pc, hand)
    assert cpu["exploratory_arms"] == ["absorb"] and find(res["exploratory"], "absorb", "vanilla", "hack"), cpu
    # amendment 5's reading with two organisms: on rep only; across is not read (it needs the third organism)
    rr1 = next(r for r in res["replication"] if r["label"] == "H1")
    assert rr1["on"] == {"rep": prereg.HOLDS} and res["added"] is None, (rr1, res["added"])
    assert all(r["holds_across"] is None for r in res["replication"]), res["replication"]
    md = (out / "results.md").read_text()
    assert "| H1 | route - route-random | hack | -0.195 | holds |\n" in md and "Across organisms is not read" in md, md[-3000:]
    assert "| H1 | route - route-random | hack |" in md and "**not reached" in md and "## Exploratory" in md, md[:2000]
    assert (out / "decisive_contrasts.png").stat().st_size > 10_000
    assert (out / "decisive_arms.png").stat().st_size > 10_000, "no per-arm plot"
    assert results.arm_order({"route", "zz", "vanilla", "erase"}) == ["vanilla", "route", "erase", "zz"]


def check_replication(t: Path, dirs: dict[str, Path]) -> dict:
    """Amendment 5 over three organisms, the added one ("third", prereg.THIRD_WEIGHTS) given between the other two
    (so neither the last nor the first non-primary organism stands in for it): H1 is reversed on third and holds on
    rep, so it does not hold across; H4 holds on both and pooled, so it holds across."""
    import results

    third = t / "third"
    for arm in ARMS:
        for i in range(4):
            if arm != "absorb":
                make_run(third, arm, prereg.FIRST_SEED + i, "third")
    res = quiet(results.main, ["--decisive", "--no-plots", "--fresh", "--out", str(t / "res3"),
                               "--organism-runs", f"cpu={dirs['cpu']}", "--organism-runs", f"third={third}",
                               "--organism-runs", f"rep={dirs['rep']}"])
    assert res["added"] == "third", res["added"]
    meta = lambda sha: dict(meta=dict(model_sha256=sha))  # noqa: E731
    for order in (("cpu", "third", "rep"), ("cpu", "rep", "third"), ("third", "cpu", "rep"), ("cpu", "rep")):
        orgs = {o: meta({"cpu": "ab12", "rep": "ef56", "third": prereg.THIRD_WEIGHTS}[o]) for o in order}
        want = "third" if len(order) == 3 and order[0] != "third" else None
        assert results.added_organism(orgs) == want, f"organisms {order}: added {results.added_organism(orgs)}, want {want}"
    # an organism left out of the pooling (no spread): no pooled interval over the three, so across is not read
    e = lambda m: dict(mean=m, lo=m - 0.1, hi=m + 0.05)  # noqa: E731
    row = dict(label="H1", arm="route", control="route-random", outcome="hack",
               per_organism={"cpu": e(-0.3), "third": e(-0.3), "rep": e(-0.2)}, pooled=dict(k=2, lo=-0.4, hi=-0.2))
    got = results.replication_reading([row], "cpu", "third")[0]["holds_across"]
    assert got is None, f"pooled over 2 of 3 organisms read as across: {got}"
    assert results.replication_reading([dict(row, pooled=dict(k=3, lo=-0.4, hi=-0.2))], "cpu", "third")[0]["holds_across"]
    rr = {r["label"]: r for r in res["replication"]}
    assert rr["H1"]["on"] == {"third": prereg.REVERSED, "rep": prereg.HOLDS}, rr["H1"]
    assert rr["H1"]["holds_across"] is False, f"H1 is reversed on the added organism, read {rr['H1']['holds_across']}"
    h4 = find(res["family"], "route", "route-subset-matched", "hack")
    assert h4["pooled"]["k"] == 3 and h4["pooled"]["hi"] < 0, h4["pooled"]
    assert rr["H4"]["on"] == {"third": prereg.HOLDS, "rep": prereg.HOLDS} and rr["H4"]["holds_across"] is True, rr["H4"]
    md = (t / "res3" / "results.md").read_text()
    assert ("| H1 | route - route-random | hack | -0.195 | reversed | holds | does not hold |" in md
            and "| H4 | route - route-subset-matched | hack |" in md and "| holds | holds | **holds** |" in md
            and "written after the first two organisms' outcomes were read" in md), md[md.find("## Replication"):][:3000]
    return rr


def check_refusals(t: Path, dirs: dict[str, Path]) -> int:
    """Bad input refused with exit 2 and one line; Holm over fewer than 12 said."""
    import results

    script = [sys.executable, str(ROOT / "scripts" / "results.py"), "--decisive", "--no-plots"]
    out = t / "res"
    cases = 0
    r = run_script(script + ["--organism-runs", f"cpu={dirs['cpu']}", "--out", str(out)])
    assert r.returncode == 2 and "already holds a results.json" in r.stderr and "--fresh" in r.stderr, r.stderr[-300:]
    cases += 1
    small = t / "small"
    for arm in ("route", "route-random"):
        for i in range(3):
            make_run(small, arm, prereg.FIRST_SEED + i, "cpu")
    res = quiet(results.main, ["--decisive", "--no-plots", "--fresh", "--organism-runs", f"cpu={small}", "--out", str(out)])
    # Holm over the 12 as registered: the 10 contrasts without runs count as p = 1, so the 2 with runs are adjusted as
    # members of a family of 12 (Holm over the 2 alone would adjust them less)
    assert res["holm"]["m"] == 12 and len(res["holm"]["left_out"]) == 10 and "counted as p = 1" in res["holm"]["note"]
    fam = res["family"]
    raw = [r["per_organism"]["cpu"]["p"] for r in fam]
    want = prereg.holm([1.0 if x is None else x for x in raw])
    got = [r["holm_p"] for r in fam]
    assert all((g is None) == (x is None) and (g is None or abs(g - w) < 1e-12) for g, w, x in zip(got, want, raw)), got
    assert "Interim table, not the registered test" in (out / "results.md").read_text(), "a 3-seed table not marked interim"
    # the 10 contrasts without runs can take any p: open; the table says which decisions they cannot change
    assert [r["whatever_missing"] for r, x in zip(fam, raw) if x is None] == ["open"] * 10, fam
    assert "whatever the short contrasts give" in (out / "results.md").read_text(), "no column of settled decisions"
    from PIL import Image

    title = Image.open(out / "decisive_contrasts.png").text.get("Title", "")
    assert title.startswith("INTERIM"), f"the interim table's plot carries no INTERIM banner (title {title!r})"
    broken = t / "broken"
    make_run(broken, "vanilla", prereg.FIRST_SEED, "cpu", steps=(prereg.SECONDARY_STEP,))
    for args, why in (([f"cpu={broken}"], "vanilla_s100"),
                      ([f"cpu={small}", "--descends-from", prereg.PRE_REG_COMMIT], "records no git commit"),
                      ([f"cpu={small}", "--organism-runs", f"cpu={small}"], "given twice"),
                      (["cpu"], "expected TAG=DIR")):
        r = run_script(script + ["--fresh", "--out", str(t / "res_bad"), "--organism-runs", *args])
        one_line = len(r.stderr.strip().splitlines()) == 1
        assert r.returncode == 2 and one_line and why in r.stderr, (args, r.returncode, r.stderr[-400:])
        cases += 1
    assert f"eval step {prereg.PRIMARY_STEP}" in run_script(script + ["--organism-runs", f"cpu={broken}", "--out",
                                                                      str(t / "res_bad")]).stderr
    return cases



def check_registered_status() -> None:
    """The table is the registered test only with every family arm on exactly prereg.PRIMARY_SEEDS and the runs checked
    for descent from prereg.PRE_REG_COMMIT; otherwise interim, saying why."""
    import results

    arms_ = {a for c in prereg.FAMILY for a in (c.arm, c.control)}
    org = dict(by_arm={a: {i: {} for i in prereg.PRIMARY_SEEDS} for a in arms_},
               meta=dict(descends_from=prereg.PRE_REG_COMMIT))
    assert results.registered_status({"cpu": org}, "cpu", prereg.PRE_REG_COMMIT) == "", "the registered table called interim"
    for change, why in ((lambda o: o["meta"].update(descends_from="0" * 40), "not checked for descent"),
                        (lambda o: o["by_arm"]["route"].pop(prereg.PRIMARY_SEEDS[0]), "lack the registered seeds"),
                        (lambda o: o["by_arm"]["erase"].update({100: {}}), "lack the registered seeds")):
        o = dict(by_arm={a: dict(v) for a, v in org["by_arm"].items()}, meta=dict(org["meta"]))
        change(o)
        got = results.registered_status({"cpu": o}, "cpu", "x")
        assert why in got, f"interim reason {got!r}, expected {why!r}"

def main() -> None:
    import results

    check_statistics()
    check_registry()
    check_registered_status()
    with tempfile.TemporaryDirectory() as t:
        t = Path(t)
        dirs = build(t)
        out = t / "res"
        res = quiet(results.main, ["--decisive", "--organism-runs", f"cpu={dirs['cpu']}", "--organism-runs",
                            f"rep={dirs['rep']}", "--out", str(out)])
        check_table(res, out)
        check_replication(t, dirs)
        n_refused = check_refusals(t, dirs)
    h1 = find(res["family"], "route", "route-random", "hack")
    print(f"PASS decisive_results: holm, paired t, Bonferroni interval, DerSimonian-Laird and percentile_within equal "
          f"hand computations; planted H1 route - route-random = {h1['per_organism']['cpu']['mean']:+.3f} (cpu), "
          f"{h1['per_organism']['rep']['mean']:+.3f} (rep), pooled {h1['pooled']['estimate']:+.3f}, Holm p "
          f"{h1['holm_p']:.2g} rejected; null H5 not rejected; step 39 (+0.105) and step 79 read from their own rows; "
          f"unfinished run listed, run missing step 79 refused, Holm over 12 with 10 missing as p = 1 said, interim marked (results.md and the plot's banner), emergence floor, collapsed "
          f"and exploratory runs flagged; amendment 5's replication reading (the added organism found by its weights, "
          f"reversed/holds/across on three organisms, across not read on two); {n_refused} bad inputs refused (exit 2, one line)")


if __name__ == "__main__":
    run_gate("decisive_results", main)
