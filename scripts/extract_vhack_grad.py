"""Extract v_hack (v_grad per adapter module, and v_act per layer) from hand-authored pairs.

    python scripts/extract_vhack_grad.py --pairs 'data/pairs/hack_pairs.md#organism' \
        --model organism:cpu --adapter svd --out out/vhack/organism_cpu_svd.safetensors

The adapter (kind, rank, quarantine, seed) must match the training run's, since v_grad lives in
the deployed block's parameter space; the saved file records both identities and training
refuses a mismatch. Every `--heldout-every`-th pair is held out and its sign accuracy reported.
Nothing here reads any training rollout.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from projected_grpo.method import adapters as ad  # noqa: E402
from projected_grpo.method import vhack  # noqa: E402
from projected_grpo.loop.models import load_policy, resolve, weights_id  # noqa: E402
from projected_grpo.method.pairs import load_pairs, pairset_hash  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", default="data/pairs/hack_pairs.md#organism", help="pair file#section@tag=value")
    ap.add_argument("--model", default="organism:cpu")
    ap.add_argument("--adapter", default="svd", choices=("svd", "lora"))
    ap.add_argument("--rank", type=int, default=-1)
    ap.add_argument("--quarantine", default="shared", choices=("shared", "own"))
    ap.add_argument("--adapter-seed", type=int, default=0, help="must equal the training run's --seed for lora")
    ap.add_argument("--loss", default="nll", choices=("nll", "grpo"))
    ap.add_argument("--k", type=int, default=1, help="directions per module")
    ap.add_argument("--heldout-every", type=int, default=4)
    ap.add_argument("--device", default="")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    out = Path(a.out)
    pairs = load_pairs(a.pairs)
    model, tok = load_policy(a.model, a.device or None)
    device = str(next(model.parameters()).device)
    ad.wrap_model(model, ad.AdapterConfig(kind=a.adapter, rank=None if a.rank == -1 else a.rank,
                                          quarantine=a.quarantine, seed=a.adapter_seed))
    V, report = vhack.extract(model, tok, pairs, loss=a.loss, k=a.k, device=device, heldout_every=a.heldout_every)
    vact = vhack.extract_vact(model, tok, pairs, device=device)
    meta = dict(pairs=a.pairs, pairset_hash=pairset_hash(pairs), n_pairs=len(pairs), model=a.model,
                model_source=resolve(a.model), model_sha256=weights_id(a.model), adapter=a.adapter,
                rank=a.rank, quarantine=a.quarantine, loss=a.loss, k=a.k, **report)
    vhack.save_vhack(out, V, model, meta, vact)
    print(json.dumps(meta))
    return meta


if __name__ == "__main__":
    main()
