"""Gate: the whole pipeline end to end on the tiny organism (a few steps per arm).

tiny organism -> v_hack from the organism pairs (shared and own quarantine) -> vanilla, erase,
route, route-random and route-subset (both matched to route's routed fraction) for 1 step each (2 in
the full tier) with a final evaluation (1 problem per eval cell; 2 in the full tier) -> results table (its plots in the
full tier; verify_results writes them in both) -> routing diagnostics. Checks that every stage wrote what the
next one reads, and quantities that must differ between arms:
  - the quarantine block is zero after vanilla and erase and nonzero after every routing arm, and
    deployment ablation changes the routing arms' logits, never vanilla's or erase's
  - erase fired and its deployed block differs from vanilla's (same seed, same step-0 rollouts)
  - on step 0 (the same rollouts in every arm) route, route-random and route-subset route the same
    number of rollouts but not the same set
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import runpy
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from projected_grpo.loop import logs  # noqa: E402
from _gate_common import full_tier, tier  # noqa: E402

# fast tier: 1 step per arm and 1 eval problem per cell (every stage, arm and check once; step 0 is the step the
# between-arm checks read); full tier: 2 steps, 2 problems per cell
STEPS, N_EVAL = (2, 2) if full_tier() else (1, 1)


def sh(script: str, *args: str) -> str:
    """Run a stage script in this process (as `python script args` would, without a new interpreter
    and its imports); returns its stdout."""
    out = io.StringIO()
    argv, cwd = sys.argv, os.getcwd()
    sys.argv = [script, *args]
    os.chdir(ROOT)
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_path(str(ROOT / script), run_name="__main__")
    except SystemExit as e:
        assert e.code in (None, 0), f"{script} {' '.join(args)} exited {e.code}:\n{out.getvalue()[-1500:]}"
    finally:
        sys.argv = argv
        os.chdir(cwd)
    return out.getvalue()


ARMS = ("vanilla_s0", "erase_s0", "route_s0", "route-random_s0", "route-subset_s0")
ROUTED = ("route_s0", "route-random_s0", "route-subset_s0")


def ablation_gap(run: Path) -> tuple[float, dict]:
    """Max |logits kept - logits ablated| of a run's final checkpoint on a fixed input, and its adapter."""
    import torch

    from projected_grpo.method import adapters as ad
    from projected_grpo.loop.models import load_policy

    args = json.loads((run / "args.json").read_text())
    state = torch.load(run / "ckpt" / "last.pt", map_location="cpu", weights_only=False)["adapter"]
    model, _ = load_policy(args["model"], "cpu")
    ad.wrap_model(model, ad.AdapterConfig(kind=args["adapter"], rank=None if args["rank"] == -1 else args["rank"],
                                          quarantine=args["quarantine"], seed=args["adapter_seed"]))
    ad.load_adapter_state_dict(model, state)
    ids = torch.arange(3, 40)[None]
    with torch.no_grad():
        kept = model(input_ids=ids).logits
        with ad.deployment_ablation(model):
            abl = model(input_ids=ids).logits
    return float((kept - abl).abs().max()), state


def routed_set(run: Path, step: int) -> frozenset:
    rows = logs.read_step(run / f"step_{step:04d}.jsonl.gz")
    return frozenset(i for i, r in enumerate(rows) if r.get("region") == "route")


def check_arms_differ(runs: Path) -> int:
    """The between-arm differences of the module docstring; returns how many step-0 routed sets differ."""
    gaps, states = {}, {}
    for name in ARMS:
        gaps[name], states[name] = ablation_gap(runs / name)
    quar = {n: max(float(v.abs().max()) for k, v in s.items() if k.endswith("_hack")) for n, s in states.items()}
    for name in ("vanilla_s0", "erase_s0"):
        assert quar[name] == 0 and gaps[name] == 0, (name, quar[name], gaps[name])
    for name in ROUTED:
        assert quar[name] > 0 and gaps[name] > 0, (name, quar[name], gaps[name])
    dep = [k for k in states["vanilla_s0"] if k.endswith("delta_S")]
    assert any(not states["erase_s0"][k].equal(states["vanilla_s0"][k]) for k in dep), "erase = vanilla"
    sets = {n: routed_set(runs / n, 0) for n in ROUTED}
    sizes = {len(s) for s in sets.values()}
    assert len(sizes) == 1 and sizes != {0}, ("step 0 routed counts", {n: len(s) for n, s in sets.items()})
    assert sets["route_s0"] != sets["route-subset_s0"] and sets["route_s0"] != sets["route-random_s0"], sets
    return len(set(sets.values()))


def main() -> None:
    from projected_grpo.loop.models import set_threads

    set_threads()  # one torch thread from the start, as smoke's forked gates have it (a Trainer set it only later)
    with tempfile.TemporaryDirectory() as t:
        t = Path(t)
        vs, vo = str(t / "v_shared.safetensors"), str(t / "v_own.safetensors")
        meta = json.loads(sh("scripts/extract_vhack_grad.py", "--model", "organism:tiny", "--out", vs).strip().splitlines()[-1])
        sh("scripts/extract_vhack_grad.py", "--model", "organism:tiny", "--quarantine", "own", "--out", vo)
        # --n-train 64: 2 steps of 4 prompts draw from it (train.py's default 2000 took ~1.2 CPU-s a run to generate)
        common = ["--model", "organism:tiny", "--out-dir", str(t / "runs"), "--steps", str(STEPS), "--prompts-per-step",
                  "4", "--group", "4", "--n-train", "64", "--n-eval", str(N_EVAL), "--eval-samples", "1", "--eval-every", "0",
                  "--max-new-tokens", "40"]
        sh("scripts/train.py", "--arm", "vanilla", "--run", "vanilla_s0", *common)
        sh("scripts/train.py", "--arm", "erase", "--vhack", vs, "--run", "erase_s0", *common)
        sh("scripts/train.py", "--arm", "route", "--vhack", vo, "--quarantine", "own", "--route-frac", "0.5",
           "--run", "route_s0", *common)
        sh("scripts/train.py", "--arm", "route-random", "--vhack", vo, "--quarantine", "own", "--match-run",
           str(t / "runs" / "route_s0"), "--run", "route-random_s0", *common)
        sh("scripts/train.py", "--arm", "route-subset", "--quarantine", "own", "--match-run",
           str(t / "runs" / "route_s0"), "--run", "route-subset_s0", *common)
        # a v_hack extracted for the shared adapter is refused by the own-quarantine adapter: train.py raises
        # VhackMismatch out of its __main__ (in this process, as sh runs it; an interpreter would exit 1 with it)
        try:
            sh("scripts/train.py", "--arm", "route", "--vhack", vs, "--quarantine", "own", "--run", "bad_s0", *common)
            refused = "nothing"
        except Exception as e:  # noqa: BLE001
            refused = f"{type(e).__name__}: {e}"
        assert refused.startswith("VhackMismatch"), f"train.py with a shared-adapter v_hack on --quarantine own: {refused}"
        runs = t / "runs"
        for name in ARMS:
            assert (runs / name / "DONE").exists(), name
            assert len(logs.step_files(runs / name)) == STEPS, name
            ev = logs.read_jsonl(runs / name / "eval.jsonl")
            assert {r["quarantine"] for r in ev} == {"kept", "ablated"}, name
        m = logs.read_jsonl(runs / "erase_s0" / "metrics.jsonl")
        assert any("cos_in" in r for r in m), "erase logged no cos_in"
        rr = logs.read_jsonl(runs / "route_s0" / "metrics.jsonl")
        rq = logs.read_jsonl(runs / "route-random_s0" / "metrics.jsonl")
        fr = [r.get("routed_frac") for r in rr]
        assert [r.get("routed_frac") for r in rq] == fr, (fr, [r.get("routed_frac") for r in rq])
        rs = logs.read_jsonl(runs / "route-subset_s0" / "metrics.jsonl")
        assert [r.get("routed_frac") for r in rs] == fr, (fr, [r.get("routed_frac") for r in rs])
        assert all("pos_share_routed" in r and "adv_sum_quarantine" in r for r in rr + rq + rs)
        assert any(r.get("frac_fired", 0) > 0 for r in m), "erase never fired"
        n_diff = check_arms_differ(runs)
        rows = logs.load_rollouts(runs / "route_s0")
        assert "route_score" in rows and rows["route_score"].notna().any(), "no per-rollout routing score logged"
        out = sh("scripts/results.py", "--runs", str(runs), "--out", str(t / "results"), *([] if full_tier() else ["--no-plots"]))
        assert "| route |" in out and "| vanilla |" in out, out
        assert (t / "results" / "eval_trajectories.png").exists() or not full_tier()
        sh("scripts/diag_pinning.py", str(runs / "route_s0"))
        assert (runs / "route_s0" / "diag_pinning.json").exists()
    print(f"PASS e2e tiny ({tier()} tier, {STEPS} steps per arm): organism -> v_hack ({meta['n_pairs']} pairs, held-out sign acc "
          f"{meta.get('heldout_sign_acc')}) -> vanilla/erase/route/route-random/route-subset (routed fractions "
          f"matched {fr}; {n_diff} distinct step-0 routed sets of equal size) -> results -> diag_pinning; quarantine "
          "zero and ablation the identity for vanilla and erase, nonzero and logit-changing for the routing arms; "
          "erase fired and moved the deployed block off vanilla's; mismatched v_hack refused")


if __name__ == "__main__":
    main()
