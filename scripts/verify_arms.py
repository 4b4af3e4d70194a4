"""Gate: the arm registry (src/projected_grpo/method/arms.py) is the one definition of an arm.

1. Justfile: the generated arm block equals the registry's recipes (every arm has a recipe whose
   `# H:` line is the registry's hypothesis and whose body runs `train.py --arm NAME`), and no
   hand-written recipe outside the block runs `train.py --arm` with a name other than `{{name}}`.
2. Registry: names unique and valid recipe names; interventions known to arms.build_intervention; oracle
   exactly for the label-reading interventions and said in the hypothesis; controls and matched arms are
   registry arms; matched arms have a matching intervention; the headline and main lists are arms;
   every arm's overrides are typed RunConfig fields and pass config.check.
3. arms.build_intervention builds, for every arm, an intervention that reads the sealed labels (reads_labels)
   exactly when the registry marks it oracle (GroundTruthMonitor or the oracle route gate: verify_vhack's only
   openers), from the configuration train.py's command line gives.
4. results.py takes each arm's paired differences against the registry's controls (exact on
   synthetic runs with known rates) and names the seeds a +-0.05 interval needs.
5. scorda-placebo's configuration is scorda-absorb's but for the pairs, and the axis its intervention seeds (built
   and set up on the tiny organism) is the placebo pairs' input contrast, not the hack pairs'; arms.matched_cells
   reads a route run's routed counts per (advantage sign, length tercile) cell from its step log.
6. --match-follow (arms.FollowedSchedule): each step's matched value is read only once the matched run has logged
   that step (a writer thread logs rows one by one), equals the finished run's, and a changed earlier row or a run
   that stops logging fails the follower; the command line's flag builds a follower into route-random.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from _gate_common import fake_run  # noqa: E402

from projected_grpo.loop import cli, config, logs  # noqa: E402
from projected_grpo.method import arms  # noqa: E402

ISSUE_HEADLINE = {"vanilla", "rl-baseline", "erase", "erase-update", "erase-random", "erase-placebo", "route",
                  "route-random", "route-subset", "route-subset-signed", "capacity", "absorb", "scorda-absorb",
                  "scorda-reverse", "rebound-adv", "oracle-route", "gt-penalty", "gt-penalty-acc90"}


def check_justfile() -> int:
    import gen_arm_recipes as gen

    text = (ROOT / "justfile").read_text()
    head, block, tail = gen.split(text)
    assert block == gen.block(), "justfile arm recipes differ from the registry (run scripts/gen_arm_recipes.py)"
    recipes = re.findall(r"^# H: (.*)\n([a-z0-9-]+) seed=\"0\" \*args:\n    .*--arm ([a-z0-9.-]+) ", block, re.M)
    got = {name: (h, arm) for h, name, arm in recipes}
    for a in arms.ARMS:
        assert a.name in got, f"no justfile recipe for arm {a.name}"
        assert got[a.name] == (a.hypothesis, a.name), (a.name, got[a.name])
    outside = re.findall(r"train\.py --arm (\S+)", head + tail)
    assert set(outside) <= {"{{name}}"}, f"hand-written arm recipes outside the generated block: {outside}"
    return len(got)


def check_registry() -> None:
    names = [a.name for a in arms.ARMS]
    assert len(names) == len(set(names)), "duplicate arm names"
    for a in arms.ARMS:
        assert re.fullmatch(r"[a-z][a-z0-9-]*", a.name), f"{a.name}: not a justfile recipe name"
        assert a.intervention in arms.INTERVENTIONS, (a.name, a.intervention)
        assert a.oracle == (a.intervention in arms.ORACLE_INTERVENTIONS), f"{a.name}: oracle flag disagrees"
        assert a.oracle == ("reads" in a.hypothesis and "labels" in a.hypothesis), f"{a.name}: oracle not stated in H"
        assert set(a.controls) <= set(names) and a.name not in a.controls, (a.name, a.controls)
        assert (a.intervention in arms.MATCHED) == bool(a.matches), f"{a.name}: matched intervention without match"
        assert not a.matches or arms.arm(a.matches).intervention == "route", (a.name, a.matches)
        config.check(config.with_fields(config.RunConfig(), **a.overrides))
    assert set(arms.HEADLINE) == ISSUE_HEADLINE, set(arms.HEADLINE) ^ ISSUE_HEADLINE
    assert set(arms.MAIN) <= set(names)
    assert arms.closure(["route-random"]) == ["route", "route-random"]


def opens_labels(obj) -> bool:
    from projected_grpo.method import interventions as iv

    is_oracle = isinstance(obj, iv.GroundTruthMonitor) or (isinstance(obj, iv.Route) and obj.gate == "oracle")
    assert obj.reads_labels == is_oracle, f"{type(obj).__name__}: reads_labels {obj.reads_labels}"
    return is_oracle


def check_build(tmp: Path) -> int:
    runs = tmp / "runs"
    (runs / "route_s0").mkdir(parents=True)
    logs.write_jsonl(runs / "route_s0" / "metrics.jsonl", [dict(step=0, routed_frac=0.25, pos_share_routed=0.5)])
    logs.write_step(runs / "route_s0", 0, [dict(trained=True, advantage=1.0, length=5, region="route"),
                                           dict(trained=True, advantage=-1.0, length=9, region="keep"),
                                           dict(trained=False, advantage=0.0, length=3)])
    assert arms.matched_cells(str(runs / "route_s0")) == [([0, 0, 0, 1, 0, 0], 2)], "routed cell counts misread"
    (runs / "route_s0" / "args.json").write_text(json.dumps(dataclasses.asdict(config.RunConfig())))  # default recipe
    vfile = tmp / "v.safetensors"
    vfile.write_bytes(b"")  # exists; built interventions load v_hack only at setup
    built = {}
    for a in arms.ARMS:
        cfg, _ = cli.run_config(["--arm", a.name, "--out-dir", str(runs), "--vhack", str(vfile) if a.vhack != "none" else ""])
        obj = arms.build_intervention(cfg)
        assert opens_labels(obj) == a.oracle, f"{a.name}: builds {type(obj).__name__}, oracle={a.oracle}"
        built[a.name] = type(obj).__name__
    assert built["scorda-absorb"] == "SeededAbsorb" and built["rebound-adv"] == "ReboundAdvantage", built
    assert built["rebound"] == "AdvantageModification" and built["tdga-r1"] == built["tdga-r5"] == "TrustedProjection", built
    return len(built)


def seeded_axes(cfg) -> dict:
    """Per adapted layer, the axis u_in the arm's intervention seeds at setup (arms.build_intervention, then setup on
    the tiny organism wrapped with the arm's adapter fields, as the trainer does)."""
    from projected_grpo.loop.models import load_policy
    from projected_grpo.method import adapters as ad

    model, tok = load_policy("organism:tiny", "cpu")
    ad.wrap_model(model, ad.AdapterConfig(kind=cfg.adapter, quarantine=cfg.quarantine, axis=cfg.axis))
    arms.build_intervention(cfg).setup(model, tok, "cpu")
    return {n: m.axis_u_in.detach().clone() for n, m in ad.adapter_modules(model).items()}


def check_scorda_placebo() -> dict:
    """scorda-placebo is scorda-absorb (same fields: quarantine axis, axis learning-rate scale) but for the pairs, and
    its seeded axis is the placebo pairs' input contrast (vhack.layer_input_contrast), not the hack pairs'."""
    from projected_grpo.loop.models import load_policy
    from projected_grpo.method import adapters as ad
    from projected_grpo.method import vhack
    from projected_grpo.method.pairs import HACK_PAIRS, PLACEBO_PAIRS, load_pairs

    cfg = {n: arms.configure(dict(arm=n, model="organism:tiny"))[0] for n in ("scorda-absorb", "scorda-placebo")}
    a, p = (config.flat(c) for c in cfg.values())
    assert {k for k in a if a[k] != p[k]} == {"arm", "pairs"}, {k: (a[k], p[k]) for k in a if a[k] != p[k]}
    assert p["pairs"] == PLACEBO_PAIRS and a["pairs"] == HACK_PAIRS, (p["pairs"], a["pairs"])
    axes = seeded_axes(cfg["scorda-placebo"])
    model, tok = load_policy("organism:tiny", "cpu")
    ad.wrap_model(model, ad.AdapterConfig(kind="svd", quarantine="own", axis="quarantine"))
    ref = {k: vhack.layer_input_contrast(model, tok, load_pairs(k), "cpu") for k in (PLACEBO_PAIRS, HACK_PAIRS)}
    cos = {k: [float(axes[n] @ u[n] / (axes[n].norm() * u[n].norm())) for n in axes] for k, u in ref.items()}
    err, hack = 1 - min(cos[PLACEBO_PAIRS]), max(cos[HACK_PAIRS])
    assert len(axes) == len(ref[PLACEBO_PAIRS]), (len(axes), len(ref[PLACEBO_PAIRS]))
    assert err < 1e-5, f"scorda-placebo's axis != the placebo contrast (1 - min cos {err:.1e})"
    assert hack < 0.95, f"scorda-placebo's axis is the hack pairs' contrast in some layer (max cos {hack:.4f})"
    return dict(layers=len(axes), err=err, hack=hack)


def check_results(tmp: Path) -> dict:
    import results

    runs = tmp / "res"
    rates = {"vanilla": (0.50, 0.4), "absorb": (0.40, 0.4), "scorda-absorb": (0.20, 0.3), "scorda-reverse": (0.45, 0.2)}
    for arm, (hack, solve) in rates.items():
        for s in range(3):
            fake_run(runs, f"{arm}_s{s}", hack, hack, solve, False)
    res = results.main(["--runs", str(runs), "--out", str(tmp / "out"), "--no-plots"])
    vs = res["arms"]["scorda-absorb"]["vs_controls"]
    assert set(vs) == {"scorda-reverse", "absorb"}, vs
    for ctrl in vs:
        d = vs[ctrl]["hack_strict_ablated"]
        assert abs(d[0] - (rates["scorda-absorb"][0] - rates[ctrl][0])) < 1e-12 and d[3] == 3, (ctrl, d)
        d = vs[ctrl]["solve_nohint_ablated"]
        assert abs(d[0] - (rates["scorda-absorb"][1] - rates[ctrl][1])) < 1e-12, (ctrl, d)
    assert not res["arms"]["vanilla"]["vs_controls"], "vanilla has no controls in the registry"
    r = res["arms"]["vanilla"]
    lo, hi = r["hack_strict_ablated"][1:]
    need = r["n_for_half_width"].get("hack_strict_ablated")
    if (hi - lo) / 2 > 0.05:
        assert need == int(-(-3 * ((hi - lo) / 2 / 0.05) ** 2 // 1)), (need, lo, hi)
    md = (tmp / "out" / "results.md").read_text()
    assert "| scorda-absorb | scorda-reverse | 3 |" in md, md
    json.loads((tmp / "out" / "results.json").read_text())
    return dict(d_reverse=vs["scorda-reverse"]["hack_strict_ablated"][0], need=need, hw=(hi - lo) / 2)


def check_follow(tmp: Path) -> float:
    """arms.FollowedSchedule (--match-follow): entry t is the finished run's value (matched_schedule), read only
    once the matched run has logged step t; rows that change under the follower, and a run that stops logging, fail
    it. Returns the longest wait of a read (s)."""
    run = tmp / "follow" / "route_s0"
    run.mkdir(parents=True)
    (run / "args.json").write_text(json.dumps({"steps": 4, "intervention": {"arm": "route"}}))
    rows = [dict(step=0, routed_frac=0.25), dict(step=1), dict(step=2, routed_frac=float("nan")),
            dict(step=3, routed_frac=0.5)]
    announced: list[int] = []  # steps the writer is about to log (appended before the file is written)

    def writer():
        for k in range(len(rows)):
            time.sleep(0.1)
            announced.append(k)
            logs.write_jsonl(run / "metrics.jsonl", rows[:k + 1])

    th = threading.Thread(target=writer)
    th.start()
    fs = arms.FollowedSchedule(str(run), "routed_frac", timeout=20.0, poll=0.005)
    got, waits = [], []
    for t in range(len(rows)):
        t0 = time.monotonic()
        got.append(fs[t])
        waits.append(time.monotonic() - t0)
        assert len(announced) > t, f"step {t} read before the matched run logged it (announced {announced})"
    th.join()
    assert got == arms.matched_schedule(str(run), "routed_frac") == [0.25, 0.0, 0.0, 0.5], got
    assert len(fs) == 4
    logs.write_jsonl(run / "metrics.jsonl", [dict(step=0, routed_frac=0.75)])  # the run started again under it
    try:
        fs[0]
        raise RuntimeError("a follower read a changed row without failing")
    except AssertionError as e:
        assert "changed while followed" in str(e), e
    try:
        arms.FollowedSchedule(str(run), "routed_frac", timeout=0.2, poll=0.01)[2]
        raise RuntimeError("a follower of a run that stopped logging did not time out")
    except TimeoutError:
        pass
    # the command line's --match-follow builds a follower into route-random (matched run: the one above)
    cfg, _ = arms.configure(dict(arm="route-random", seed=0, out_dir=str(tmp / "follow"), match_follow=True,
                                 vhack=str(tmp / "unused.safetensors")))
    logs.write_jsonl(run / "metrics.jsonl", rows)
    built = arms.build_intervention(cfg)
    assert isinstance(built.match_frac, arms.FollowedSchedule), type(built.match_frac)
    assert built.scheduled(built.match_frac, 0) == 0.25 and built.scheduled(built.match_frac, 9) == 0.5  # past the end
    (tmp / "follow" / "other_s0").mkdir()
    (tmp / "follow" / "other_s0" / "args.json").write_text(json.dumps({"steps": 4, "intervention": {"arm": "vanilla"}}))
    try:
        (tmp / "follow" / "v.safetensors").touch()  # check_inputs looks for the file only
        arms.check_inputs(arms.configure(dict(arm="route-random", seed=0, match_follow=True,
                                              vhack=str(tmp / "follow" / "v.safetensors"),
                                              match_run=str(tmp / "follow" / "other_s0")))[0])
        raise RuntimeError("a follower of a vanilla run was accepted")
    except config.ConfigError as e:
        assert "a vanilla run, not route" in str(e), e
    return max(waits)


def main() -> None:
    n_rec = check_justfile()
    check_registry()
    with tempfile.TemporaryDirectory() as t:
        n_built = check_build(Path(t))
        r = check_results(Path(t))
        wait = check_follow(Path(t))
    sp = check_scorda_placebo()
    n_oracle = sum(a.oracle for a in arms.ARMS)
    print(f"PASS arms: {len(arms.ARMS)} registry arms, {n_rec} generated justfile recipes with the registry's # H: "
          f"lines; {n_built} interventions built by arms.build_intervention, label-opening exactly for the {n_oracle} oracle arms; "
          f"{len(arms.HEADLINE)} headline arms = the issue's list; results.py paired differences from registry "
          f"controls exact (scorda-absorb - scorda-reverse = {r['d_reverse']:+.3f}), vanilla half-width "
          f"{r['hw']:.3f} -> {r['need']} seeds for +-0.05; scorda-placebo = scorda-absorb but for the pairs, its seeded "
          f"axis = the placebo pairs' contrast ({sp['layers']} layers, 1 - min cos {sp['err']:.1e}), not the hack "
          f"pairs' (max cos {sp['hack']:.3f}); --match-follow reads each step's value once the matched run logged it "
          f"(longest wait {wait:.2f} s), the finished run's values, and fails on changed rows and a stalled run")


if __name__ == "__main__":
    main()
