"""Screen one organism configuration: build it (cached by configuration), then print the exact
probabilities of template hacks and canonical solutions (`build.template_rates`) and, with
--n-per-cell, the sampled and graded base rates. Prints numbers and asserts nothing.

    python scripts/screen_organism.py --size cpu --set '{"steps": 800, "p_hack": [0.05, 0.05, 0.05, 0.05]}'
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


from projected_grpo.organism import build as B  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="cpu", choices=list(B.PRESETS))
    ap.add_argument("--set", default="{}", help="JSON object of OrganismConfig overrides")
    ap.add_argument("--out", default="out/organism")
    ap.add_argument("--n-per-cell", type=int, default=0, help="sampled base rates per cell (0: exact rates only)")
    ap.add_argument("--n-template", type=int, default=100, help="eval prompts per cell for the exact rates")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--folder", default="", help="screen this built organism folder instead of building (--set ignored)")
    a = ap.parse_args()
    over = {k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(a.set).items()}
    if a.folder:
        folder = Path(a.folder)
        saved = {"response_note": False, **json.loads((folder / "organism.json").read_text())["config"]}  # pre-v3 builds
        cfg = B.OrganismConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()})
    else:
        cfg = B.preset(a.size, **over)
        folder = B.build(cfg, Path(a.out), a.device, n_per_cell=a.n_per_cell)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(folder).to(a.device).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    t = time.time()
    tr = B.template_rates(model, tok, a.n_template, cfg.seed, cfg.response_note)
    tr["seconds"] = round(time.time() - t, 1)
    (folder / "template_rates.json").write_text(json.dumps(tr, indent=2))
    meta = json.loads((folder / "organism.json").read_text())
    print(json.dumps(dict(folder=str(folder), set=over, n_params=meta["n_params"], build_seconds=meta["build_seconds"],
                          final_loss=round(meta["final_loss"], 4), **{k: v for k, v in tr.items()}), indent=None))


if __name__ == "__main__":
    main()
