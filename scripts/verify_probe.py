"""Gate: the distillation cosine probe's pipeline and its projection mechanism.

1. project_out on toy tensors removes exactly the one-sided component (only where <g, v> > 0) and,
   two-sided, the whole component in span(V).
2. On the tiny organism: a 1-step vanilla GRPO run (2 steps in the full tier) is the teacher -> teacher-pool (few problems)
   -> v_hack from the organism pairs -> replay vanilla and projected -> random and oracle control
   directions -> probe_uat. Asserts the files exist, every cos_S_contrib is finite, every replay
   logs the realised step's cosine with v (step_cos) on every step, and on every projected step
   where the projection fired the per-module gradient cosines left are <= 0 (one-sided).
3. T3 (the realised step of the projected replay is less hack-ward than vanilla's) decides right on
   synthetic metrics: PASS when the projected steps are less hack-ward on every step, FAIL when they
   are more hack-ward, FAIL when the projection rarely fired, FAIL without step_cos.

T1 and T4 are not asserted: they depend on the teacher (a 1- or 2-step tiny teacher barely hacks).
Runs every stage in-process (one interpreter start) to stay well under 90 s on 2 cores.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import shutil
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
os.environ.setdefault("PGRPO_THREADS", "1")

import torch  # noqa: E402

from _gate_common import full_tier, tier  # noqa: E402

from projected_grpo.method import interventions as iv  # noqa: E402
from projected_grpo.loop import logs  # noqa: E402


def check_project_out() -> None:
    gen = torch.Generator().manual_seed(0)
    V = iv.orthonormal_rows(torch.randn(2, 10, generator=gen, dtype=torch.float64))
    assert torch.allclose(V @ V.T, torch.eye(2, dtype=torch.float64), atol=1e-12)
    v = V[:1]
    perp = torch.randn(10, generator=gen, dtype=torch.float64)
    perp = perp - (V @ perp) @ V  # orthogonal to both rows
    for c in (3.0, -3.0):
        g = perp + c * v[0]
        one = iv.project_out(g, v, one_sided=True)
        two = iv.project_out(g, v, one_sided=False)
        want_one = perp if c > 0 else g  # only the hack-ward (positive) component is removed
        assert torch.allclose(one, want_one, atol=1e-12), (c, (one - want_one).abs().max())
        assert torch.allclose(two, perp, atol=1e-12), (c, (two - perp).abs().max())
    # k = 2, mixed signs: one-sided removes only the positive coefficient
    g = perp + 2.0 * V[0] - 5.0 * V[1]
    assert torch.allclose(iv.project_out(g, V, True), perp - 5.0 * V[1], atol=1e-12)
    assert torch.allclose(iv.project_out(g, V, False), perp, atol=1e-12)
    # after a fired one-sided projection the cosine with v is 0, never above the input cosine
    g = perp + 3.0 * v[0]
    assert abs(float(iv.cosine(iv.project_out(g, v), v[0]))) < 1e-12 < float(iv.cosine(g, v[0]))


def check_t3_decision(probe_uat) -> None:
    """T3 on synthetic metrics rows with a known verdict."""
    van = [dict(step=s, step_cos=-0.5) for s in range(10)]
    good = [dict(step=s, step_cos=-0.1, frac_fired=0.9) for s in range(10)]
    worse = [dict(step=s, step_cos=-0.8, frac_fired=0.9) for s in range(10)]
    rare = [dict(step=s, step_cos=-0.1, frac_fired=0.9 if s < 3 else 0.1) for s in range(10)]
    assert probe_uat.t3_stats(van, good)["passed"], probe_uat.t3_stats(van, good)
    assert not probe_uat.t3_stats(van, worse)["passed"], "T3 passed a more hack-ward projected replay"
    assert not probe_uat.t3_stats(van, rare)["passed"], "T3 passed a projection that rarely fired"
    mixed = good[:7] + worse[7:]  # less hack-ward on 7 of 10 steps, below the 0.80 bar
    assert not probe_uat.t3_stats(van, mixed)["passed"], "T3 passed at 0.7 of steps"
    assert not probe_uat.t3_stats([dict(step=0)], good)["passed"], "T3 passed without step_cos"


def quiet(fn, *args, **kw):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
        r = fn(*args, **kw)
    return r, buf.getvalue()


def main() -> None:
    t0 = time.time()
    check_project_out()
    import extract_vhack_grad
    import probe_distill
    import probe_uat
    from projected_grpo.loop import grpo

    check_t3_decision(probe_uat)

    with tempfile.TemporaryDirectory() as t:
        t = Path(t)
        # n_eval 1: the teacher's final evaluation is not read
        teacher = quiet(grpo.train, grpo.RunConfig(run="vanilla_s0", out_dir=str(t / "runs"), model="organism:tiny",
                                                   steps=2 if full_tier() else 1, prompts_per_step=4, group=4, n_eval=1,
                                                   eval_samples=1, eval_every=0, max_new_tokens=40, ckpt_every=1))[0]
        assert (teacher / "ckpt" / "last.pt").exists()
        pool, v, vr = t / "pool", str(t / "v.safetensors"), str(t / "v_random.safetensors")
        quiet(probe_distill.main, ["teacher-pool", "--teacher", str(teacher), "--n-problems", "4", "--group", "4",
                                   "--out", str(pool)])
        assert len(logs.step_files(pool)) == 4 and (pool / "problems.jsonl").exists() and (pool / "pool.json").exists()
        prow = logs.read_step(logs.step_files(pool)[0])
        need = {"problem_id", "completion", "label", "hack_strict", "gt_pass", "mechanism"}
        assert need <= set(prow[0]), need - set(prow[0])
        quiet(extract_vhack_grad.main, ["--model", "organism:tiny", "--out", v])
        quiet(probe_distill.main, ["random-vhack", "--like", v, "--out", vr, "--seed", "1"])
        orc = str(t / f"v_{probe_distill.ORACLE_TAG}.safetensors")
        try:
            quiet(probe_distill.main, ["oracle-vhack", "--pool", str(pool), "--out", str(t / "v_oracle.safetensors")])
            raise RuntimeError("oracle-vhack accepted a filename without the DIAGNOSTIC tag")
        except AssertionError:
            pass
        # a 2-step tiny teacher may produce no hack rows: the oracle machinery is exercised on a copy of
        # the pool with SYNTHETIC alternating labels (tests the code path, not the direction)
        fake = t / "pool_synthetic_labels"
        shutil.copytree(pool, fake)
        for f in logs.step_files(fake):
            logs.write_step(fake, int(f.name[5:9]), [dict(r, hack_strict=i % 2 == 0) for i, r in enumerate(logs.read_step(f))])
        quiet(probe_distill.main, ["oracle-vhack", "--pool", str(fake), "--out", orc])
        runs = {}
        for name, vf, mode in (("vanilla", v, "vanilla"), ("projected", v, "projected"), ("random", vr, "vanilla"),
                               ("random_projected", vr, "projected"), ("oracle", orc, "vanilla")):
            runs[name] = t / name
            quiet(probe_distill.main, ["replay", "--pool", str(pool), "--vhack", vf, "--mode", mode, "--out", str(runs[name])])
        fired_steps = 0
        for name, d in runs.items():
            rows = logs.load_rollouts(d)
            assert len(rows) == 16 and len(logs.step_files(d)) == 4, name
            c = rows["cos_S_contrib"].tolist()
            assert all(x is not None and math.isfinite(x) and -1 - 1e-6 <= x <= 1 + 1e-6 for x in c), (name, c)
            assert all(math.isfinite(x) and x > 0 for x in rows["grad_norm"]), name
            m = logs.read_jsonl(d / "metrics.jsonl")
            assert len(m) == 4 and all(math.isfinite(r["step_cos"]) for r in m), name
            if name.endswith("projected"):
                for r in m:
                    assert all(math.isfinite(r[k]) for k in ("cos_in", "cos_out", "frac_fired")), r
                    if r["frac_fired"] > 0:
                        fired_steps += 1
                        assert r["cos_out"] <= 1e-6, f"{name}: a hack-ward gradient component is left on step {r}"
                    else:
                        assert abs(r["cos_out"] - r["cos_in"]) < 1e-9, r
        assert fired_steps > 0, "the projection never fired: the mechanism test is vacuous"
        # first replay step: same student, same batch -> vanilla and projected measure the same cosines
        v0 = logs.read_step(logs.step_files(runs["vanilla"])[0])
        p0 = logs.read_step(logs.step_files(runs["projected"])[0])
        assert all(abs(a["cos_S_contrib"] - b["cos_S_contrib"]) < 1e-6 for a, b in zip(v0, p0))
        res, out = quiet(probe_uat.main, ["--pool", str(pool), "--vanilla", str(runs["vanilla"]), "--projected",
                                          str(runs["projected"]), "--compare", f"nll={runs['vanilla']}",
                                          f"random={runs['random']}", f"oracle={runs['oracle']}", "--json", str(t / "uat.json")])
        assert (t / "uat.json").exists() and res["T2"]["passed"], res["T2"]
        gates = [ln for ln in out.splitlines() if re.match(r"^T[1-4] (PASS|FAIL) ", ln)]
        assert [g[:2] for g in gates] == ["T1", "T2", "T3", "T4"], out
        try:
            quiet(probe_uat.main, ["--pool", str(t / "missing"), "--vanilla", str(runs["vanilla"]), "--projected",
                                   str(runs["projected"])])
            raise RuntimeError("probe_uat accepted a missing pool")
        except SystemExit as e:
            assert e.code not in (0, None), e.code
    t3 = res["T3"]
    print(out.rstrip())
    print(f"PASS probe ({tier()} tier): project_out one-/two-sided exact on toy tensors; tiny teacher pool 16 rows (hack_frac "
          f"{res['T1']['hack_frac']:.2f}) -> replays (v_hack, random) all cos_S_contrib and step_cos finite; projection "
          f"fired on {fired_steps} steps, no hack-ward gradient component left on any; T3 (realised step less "
          f"hack-ward than vanilla's: {t3['frac_steps_less_hackward']:.2f} of {t3['n_steps']} tiny steps) decides "
          f"right on 5 synthetic cases; oracle direction fitted on synthetic labels and accepted by the replay; "
          f"missing input exits nonzero; {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
