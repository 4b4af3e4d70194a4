"""Gate: v_hack extraction and the oracle-free boundary.

1. Extraction is deterministic (two extractions on the tiny organism give identical tensors) and a
   v_hack saved for one adapter is refused by another (VhackMismatch).
2. Static: the sealed ground-truth labels (`GroundTruthLabels.open_oracle_reference`) are opened only
   by the ground-truth monitor baselines and the oracle gate; label fields never appear in the
   extraction, pair and intervention code outside those places.
3. Runtime: GRPO steps of erase and of route (gate=grad) run with labels that raise when opened.

Tiers (_gate_common.full_tier): `just smoke-full` extracts from all 27 organism pairs and runs two steps per arm;
`just smoke` extracts from the first 8 (6 fit, 2 held out) and runs one step per arm.
"""

from __future__ import annotations

import ast
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from _gate_common import full_tier, run_gate, tier  # noqa: E402

LABEL_KEYS = {"is_hack_strict", "is_hack_loose", "hack_strict", "hack_loose", "eq_correct", "eq_hinted", "label",
              "gt_pass", "reward_hack_label"}
# (file, enclosing class.function) allowed to open the sealed labels: oracle references only
ALLOWED_OPEN = {("interventions.py", "GroundTruthMonitor.on_rewards"), ("interventions.py", "Route.scores")}
METHOD_FILES = [ROOT / "src/projected_grpo/method/vhack.py", ROOT / "src/projected_grpo/method/pairs.py",
                ROOT / "scripts/extract_vhack_grad.py", ROOT / "src/projected_grpo/method/interventions.py"]


def scopes(tree: ast.AST):
    """Yield (qualname, node) for every node, qualname = enclosing Class.function."""
    def walk(node, qual):
        for child in ast.iter_child_nodes(node):
            q = qual
            if isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                q = f"{qual}.{child.name}" if qual else child.name
            yield q, child
            yield from walk(child, q)
    yield from walk(tree, "")


def check_static() -> tuple[int, int]:
    opens, label_hits = set(), []
    for path in sorted((ROOT / "src/projected_grpo").rglob("*.py")) + sorted((ROOT / "scripts").glob("*.py")):
        tree = ast.parse(path.read_text())
        for q, node in scopes(tree):
            if isinstance(node, ast.Attribute) and node.attr == "open_oracle_reference" and q != "GroundTruthLabels.open_oracle_reference":
                opens.add((path.name, q))
            if path in METHOD_FILES and isinstance(node, ast.Constant) and node.value in LABEL_KEYS:
                label_hits.append((path.name, q, node.value))
    assert opens == ALLOWED_OPEN, f"sealed labels opened outside the oracle references: {opens ^ ALLOWED_OPEN}"
    bad = [h for h in label_hits if (h[0], h[1]) not in ALLOWED_OPEN]
    assert not bad, f"ground-truth label fields read in method code: {bad}"
    # the oracle branch of Route.scores is guarded by gate == "oracle"
    src = (ROOT / "src/projected_grpo/method/interventions.py").read_text()
    i = src.index("open_oracle_reference()", src.index("class Route"))
    assert 'self.gate == "oracle"' in src[src.rfind("\n        if", 0, i) - 200:i], "Route opens labels outside its oracle branch"
    return len(opens), len(label_hits)


def check_extraction() -> float:
    from projected_grpo.method import adapters as ad
    from projected_grpo.method import vhack
    from projected_grpo.loop.models import load_policy
    from projected_grpo.method.pairs import load_pairs

    pairs = load_pairs("data/pairs/hack_pairs.md#organism")
    pairs = pairs if full_tier() else pairs[:8]
    Vs = []
    for _ in range(2):
        model, tok = load_policy("organism:tiny", "cpu")
        ad.wrap_model(model, ad.AdapterConfig(kind="svd"))
        V, rep = vhack.extract(model, tok, pairs, loss="nll", k=2, device="cpu")
        Vs.append(V)
    for n in Vs[0]:
        assert torch.equal(Vs[0][n], Vs[1][n]), f"extraction not deterministic at {n}"
    with tempfile.TemporaryDirectory() as t:
        path = Path(t) / "v.safetensors"
        vhack.save_vhack(path, Vs[0], model, dict(loss="nll"))
        vhack.load_vhack(path, model)  # same model and adapter: accepted
        other, _ = load_policy("organism:tiny", "cpu")
        ad.wrap_model(other, ad.AdapterConfig(kind="lora", rank=4))
        try:
            vhack.load_vhack(path, other)
        except vhack.VhackMismatch:
            pass
        else:
            raise AssertionError("a v_hack saved for the svd adapter was accepted by a lora adapter")
    return rep["fit_sign_acc"]


from projected_grpo.method.interventions import GroundTruthLabels  # noqa: E402


class RaisingLabels(GroundTruthLabels):
    def open_oracle_reference(self):
        raise AssertionError("a method arm opened the ground-truth labels")


def check_runtime() -> int:
    from projected_grpo.loop import grpo
    from projected_grpo.method import interventions as iv
    from _gate_common import tiny_args

    n = 0
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        from projected_grpo.method import vhack, adapters as ad
        from projected_grpo.loop.models import load_policy
        from projected_grpo.method.pairs import load_pairs

        for arm, q in (("erase", "shared"), ("route", "own")):
            model, tok = load_policy("organism:tiny", "cpu")
            ad.wrap_model(model, ad.AdapterConfig(kind="svd", quarantine=q))
            V, _ = vhack.extract(model, tok, load_pairs("data/pairs/hack_pairs.md#organism")[:6], device="cpu",
                                 heldout_every=0)
            vpath = tmp / f"v_{q}.safetensors"
            vhack.save_vhack(vpath, V, model, {})
            intervention = iv.Erase(iv.LazyVhack(str(vpath))) if arm == "erase" else \
                iv.Route(iv.LazyVhack(str(vpath)), gate="grad", route_frac=0.5)
            tr = grpo.Trainer(tiny_args(tmp, f"{arm}_guard", quarantine=q), intervention)
            tr.run_dir.mkdir(parents=True, exist_ok=True)
            orig = grpo.GroundTruthLabels
            grpo.GroundTruthLabels = RaisingLabels
            steps = 2 if full_tier() else 1
            try:
                for s in range(steps):
                    tr.step(s)
            finally:
                grpo.GroundTruthLabels = orig
            n += steps
    return n


def main() -> None:
    n_open, n_hits = check_static()
    acc = check_extraction()
    steps = check_runtime()
    print(f"PASS vhack: extraction deterministic (fit sign acc {acc:.2f}), svd v_hack refused by lora; sealed labels "
          f"opened only by {n_open} oracle references ({n_hits} label-field uses, all inside them); erase and route "
          f"ran {steps} steps with labels that raise when opened ({tier()} tier)")


if __name__ == "__main__":
    run_gate("verify_vhack", main)
