"""Extract v_hack (v_grad per adapter module, and v_act per layer) from hand-authored pairs.

    python scripts/extract_vhack_grad.py --pairs 'data/pairs/hack_pairs.md#organism' \
        --model organism:cpu --adapter svd --out out/vhack/organism_cpu_svd.safetensors

    python scripts/extract_vhack_grad.py --trusted-span --k 5 --model organism:cpu \
        --out out/vhack/organism_cpu_svd_trusted5.safetensors

The adapter (kind, rank, quarantine, seed) must match the training run's, since v_grad lives in
the deployed block's parameter space; the saved file records both identities and training
refuses a mismatch. Every `--heldout-every`-th pair is held out and its sign accuracy reported.
--trusted-span writes the tdga arms' file instead: per module the top --k right singular vectors of the
pairs' clean completions' gradients (vhack.extract_trusted; every pair, none held out, no v_act).
The registry's files for each arm: arms.vhack_extract_args. Nothing here reads any training rollout.
"""

from __future__ import annotations

import argparse
import json

from projected_grpo.loop import models
from projected_grpo.method import vhack


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
    ap.add_argument("--trusted-span", action="store_true",
                    help="write the trusted span of rank --k (the clean completions' gradients), not v_hack")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    models.set_threads()  # one torch thread unless PGRPO_THREADS says otherwise, forked by a driver or not
    if a.trusted_span:
        assert a.loss == "nll", "--trusted-span: the clean completions' gradients are of the NLL loss"
        meta = vhack.extract_trusted_to_file(a.out, a.pairs, a.model, a.adapter, a.rank, a.quarantine, a.adapter_seed,
                                             a.k, a.device)
    else:
        meta = vhack.extract_to_file(a.out, a.pairs, a.model, a.adapter, a.rank, a.quarantine, a.adapter_seed, a.loss,
                                     a.k, a.heldout_every, a.device)
    print(json.dumps(meta))
    return meta


if __name__ == "__main__":
    main()
