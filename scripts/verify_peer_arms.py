"""Gate: the spec arms R6 (route-lora) and R7 (route-grpo-vhack) route by the v_hack the registry names for them, and
every peer and spec arm of issue 29 item 4 (rebound, tdga-r1, tdga-r5, route-lora, route-grpo-vhack) trains.

1. Every registry arm that reads a direction file builds the adapter the file is extracted for: VHACK_FILES[kind]'s
   adapter, rank and quarantine are the arm's configured ones (arms.configure); each kind has a path of its own.
2. R6 and R7: scripts/extract_vhack_grad.py (in this process) with the registry's arguments (arms.vhack_extract_args)
   writes for route-lora a v_hack of the LoRA adapter at rank 8 with its own quarantine (nll), for route-grpo-vhack one
   of the own-quarantine SVD adapter with the GRPO-contrastive loss; the Route intervention arms.build_intervention
   builds for each arm, set up on the tiny organism wrapped as the arm's run wraps it (grpo.adapter_config), routes by
   exactly that file's v_grad; route-grpo-vhack's v_grad is not route's (nll, same pairs): some module's |cos| < 0.999
   (an nll extraction gives 1; on all the pairs of the tiny organism the smallest is 0.92).
3. Full tier: each arm of item 4 trains 2 steps on the tiny organism through train.py (in this process) with the
   registry's files: DONE, 2 step logs, an evaluation with the quarantine kept and ablated; route-lora routed a quarter
   of each step's rollouts and its quarantine (A_hack, B_hack) moved.

Tiers (_gate_common.full_tier): `just smoke` runs 1 and 2 on the 5 organism pairs of style wrong-body; `just
smoke-full` extracts from all the organism pairs and runs 3.
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import torch  # noqa: E402

import _gate_common as sp  # noqa: E402
from projected_grpo.loop import cli, grpo, logs  # noqa: E402
from projected_grpo.loop.models import load_policy  # noqa: E402
from projected_grpo.method import adapters as ad  # noqa: E402
from projected_grpo.method import arms, vhack  # noqa: E402
from projected_grpo.method import interventions as iv  # noqa: E402

MODEL = "organism:tiny"
FAST_PAIRS = "@style=wrong-body"  # appended to the registry's pair spec in the fast tier: 5 organism pairs
ITEM4 = ("rebound", "tdga-r1", "tdga-r5", "route-lora", "route-grpo-vhack")
SPEC = {"route-lora": dict(adapter="lora", rank=arms.LORA_RANK, quarantine="own", loss="nll"),
        "route-grpo-vhack": dict(adapter="svd", rank=-1, quarantine="own", loss="grpo")}
"""What R6's and R7's v_hack files must record (the issue: LoRA and its own v_hack; the GRPO-contrastive v_hack)."""


def check_registry() -> int:
    paths = {k: arms.vhack_path(k, MODEL) for k in arms.VHACK_FILES}
    assert len(set(paths.values())) == len(paths), f"two direction-file kinds share a path: {paths}"
    n = 0
    for a in arms.ARMS:
        if a.vhack == "none":
            continue
        cfg, _ = arms.configure(dict(arm=a.name, model=MODEL))
        f = arms.VHACK_FILES[a.vhack]
        assert (f.adapter, f.rank, f.quarantine) == (cfg.adapter, cfg.rank, cfg.quarantine), \
            f"{a.name}: trains {cfg.adapter} rank {cfg.rank} {cfg.quarantine}, its {a.vhack} file is for " \
            f"{f.adapter} rank {f.rank} {f.quarantine}"
        assert cfg.intervention.vhack == paths[a.vhack], (a.name, cfg.intervention.vhack)
        n += 1
    # R6's LoRA scale: amendment 4's value, and the registry's lora_alpha reaches the adapter route-lora builds
    assert arms.LORA_ALPHA == 1.0, f"arms.LORA_ALPHA {arms.LORA_ALPHA}: amendment 4 registered 1.0"
    cfg, _ = arms.configure(dict(arm="route-lora", model=MODEL))
    built = grpo.adapter_config(dataclasses.asdict(cfg))
    assert cfg.lora_alpha == arms.LORA_ALPHA and built.lora_alpha == arms.LORA_ALPHA, (cfg.lora_alpha, built.lora_alpha)
    return n


def extract(kind: str, out: Path) -> None:
    """The registry's file of `kind` for the tiny organism, written to `out` (pairs cut in the fast tier)."""
    args = arms.vhack_extract_args(kind, MODEL, "cpu")  # the gate loads it on the CPU
    args[args.index("--out") + 1] = str(out)
    if not sp.full_tier():
        args[args.index("--pairs") + 1] += FAST_PAIRS
    r = sp.run_script([sys.executable, str(ROOT / "scripts/extract_vhack_grad.py"), *args])
    assert r.returncode == 0, f"extract_vhack_grad.py {' '.join(args)} exited {r.returncode}: {r.stderr[-800:]}"


def routing_direction(name: str, path: Path) -> dict[str, torch.Tensor]:
    """The direction arm `name`'s Route routes by, set up on the tiny organism wrapped as its run wraps it."""
    cfg, _ = arms.configure(dict(arm=name, model=MODEL, vhack=str(path)))
    obj = arms.build_intervention(cfg)
    assert isinstance(obj, iv.Route) and obj.gate == "grad" and obj.route_frac == 0.25, (name, obj)
    model, tok = load_policy(MODEL, "cpu")
    ad.wrap_model(model, grpo.adapter_config(dataclasses.asdict(cfg)))
    obj.setup(model, tok, "cpu")
    V, md = vhack.load_vhack(path, model)
    assert set(obj.V) == set(V) and all(torch.equal(obj.V[n], V[n].float()) for n in V), \
        f"{name}: routes by another direction than its file's v_grad"
    got = {k: md[k] if k in ("adapter", "quarantine", "loss") else int(md[k]) for k in SPEC[name]}
    assert got == SPEC[name], f"{name}: its v_hack file was extracted with {got}, not {SPEC[name]}"
    return obj.V


def check_spec_arms(tmp: Path) -> float:
    """Part 2; returns route-grpo-vhack's smallest |cos| with route's v_grad over modules."""
    files = {}
    for kind in ("lora-own", "grpo-own", "own"):
        files[kind] = tmp / f"{kind}.safetensors"
        extract(kind, files[kind])
    routing_direction("route-lora", files["lora-own"])
    V = routing_direction("route-grpo-vhack", files["grpo-own"])
    model, _ = load_policy(MODEL, "cpu")
    ad.wrap_model(model, ad.AdapterConfig(kind="svd", quarantine="own"))
    W, md = vhack.load_vhack(files["own"], model)
    assert md["loss"] == "nll", md
    cos = min(abs(float(iv.cosine(V[n][0], W[n][0].float()))) for n in V)
    assert cos < 0.999, f"route-grpo-vhack's v_grad is route's in every module (min |cos| {cos:.4f})"
    return cos


def check_tiny_runs(tmp: Path) -> dict:
    """Part 3: each arm of item 4, 2 steps through train.py with the registry's files (all pairs)."""
    files = {}
    for name in ITEM4:
        kind = arms.arm(name).vhack
        if kind not in files:
            files[kind] = tmp / f"{kind}.safetensors"
            extract(kind, files[kind])
    common = ["--model", MODEL, "--out-dir", str(tmp / "runs"), "--steps", "2", "--prompts-per-step", "4", "--group", "4",
              "--n-train", "64", "--n-eval", "1", "--eval-samples", "1", "--eval-every", "0", "--max-new-tokens", "40"]
    out = {}
    for name in ITEM4:
        run = Path(cli.train(["--arm", name, "--run", f"{name}_s0", "--vhack", str(files[arms.arm(name).vhack]), *common]))
        assert (run / "DONE").exists() and len(logs.step_files(run)) == 2, name
        assert {r["quarantine"] for r in logs.read_jsonl(run / "eval.jsonl")} == {"kept", "ablated"}, name
        out[name] = logs.read_jsonl(run / "metrics.jsonl")
    assert all(r["routed_frac"] == 0.25 for r in out["route-lora"]), [r["routed_frac"] for r in out["route-lora"]]
    state = torch.load(tmp / "runs" / "route-lora_s0" / "ckpt" / "last.pt", map_location="cpu", weights_only=False)["adapter"]
    init = load_policy(MODEL, "cpu")[0]
    ad.wrap_model(init, ad.AdapterConfig(kind="lora", rank=arms.LORA_RANK, quarantine="own"))
    before = ad.adapter_state_dict(init)
    moved = [k for k in state if "hack" in k and not torch.equal(state[k], before[k])]
    assert any(k.endswith("A_hack") for k in moved) and any(k.endswith("B_hack") for k in moved), \
        f"route-lora's quarantine did not move: {moved[:4]}"
    return out


def main() -> None:
    t0 = time.time()
    n = check_registry()
    with tempfile.TemporaryDirectory() as t:
        cos = check_spec_arms(Path(t))
        runs = check_tiny_runs(Path(t) / "full") if sp.full_tier() else {}
    ran = (f"; {', '.join(runs)} trained 2 steps each through train.py (route-lora routed 0.25 a step, its A_hack and "
           f"B_hack moved)") if runs else ""
    print(f"PASS peer arms: {n} registry arms read a direction file extracted for the adapter they build; route-lora "
          f"routes by its file's v_grad, extracted for LoRA rank {arms.LORA_RANK} with its own quarantine; "
          f"route-grpo-vhack by its file's GRPO-contrastive v_grad (min |cos| with route's nll v_grad over modules "
          f"{cos:.3f}){ran}; {time.time() - t0:.0f}s ({sp.tier()} tier)")


if __name__ == "__main__":
    sp.run_gate("verify_peer_arms", main)
