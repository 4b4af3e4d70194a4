"""Write the justfile's arm recipes from the arm registry (src/projected_grpo/method/arms.py).

    python scripts/gen_arm_recipes.py          rewrite the block between the ARMS markers in the justfile
    python scripts/gen_arm_recipes.py --check  exit 1 when the justfile's block differs from the registry

scripts/verify_arms.py runs the check.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from projected_grpo.method import arms  # noqa: E402

BEGIN = "# ---- arms: generated from src/projected_grpo/method/arms.py by scripts/gen_arm_recipes.py; do not edit ----\n"
END = "# ---- end of generated arms ----\n"


def split(text: str) -> tuple[str, str, str]:
    """(before, generated block, after) of the justfile's text."""
    assert text.count(BEGIN) == 1 and text.count(END) == 1, "justfile: the ARMS markers must appear once each"
    head, rest = text.split(BEGIN)
    block, tail = rest.split(END)
    return head, block, tail


def block() -> str:
    return "\n" + arms.justfile_recipes() + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--justfile", default=str(ROOT / "justfile"))
    a = ap.parse_args(argv)
    path = Path(a.justfile)
    head, old, tail = split(path.read_text())
    if a.check:
        if old != block():
            print(f"{path}: arm recipes differ from the registry; run python scripts/gen_arm_recipes.py", file=sys.stderr)
            return 1
        return 0
    path.write_text(head + BEGIN + block() + END + tail)
    return 0


if __name__ == "__main__":
    sys.exit(main())
