"""Gate: BEARTYPE=1's shape checks are live (shapes.first_calls).

Under `just smoke` (BEARTYPE=1) a package function called with a tensor of the wrong shape raises jaxtyping's
TypeCheckError on its first call; a correct call passes; past shapes.CALLS calls a function runs unchecked (the
documented trade: the smoke's decoders and trainers repeat the same shapes thousands of times). Fails when the
import hook is missing, when the typechecker checks nothing, when checks stop before call 200 or never stop, and when
one function's retiring turns off another's checks.
"""

import os
import sys

import torch
from jaxtyping import TypeCheckError

from projected_grpo import shapes
from projected_grpo.loop import models
from projected_grpo.loop.grpo import group_advantages


def raises(logits, targets) -> bool:
    try:
        models.log_softmax_at(logits, targets)
    except TypeCheckError:
        return True
    return False


def main() -> int:
    assert os.environ.get("BEARTYPE") == "1", "run under BEARTYPE=1 (just smoke sets it)"
    # targets one position short: gather still runs (so an unchecked call returns), the annotations' t disagree
    good, bad = (torch.zeros(2, 4, 5), torch.zeros(2, 4, dtype=torch.long)), (torch.zeros(2, 4, 5), torch.zeros(2, 3, dtype=torch.long))
    assert raises(*bad), "a wrong-shape call passed: shape checks are off"
    assert not raises(*good), "a correct call raised"
    for _ in range(shapes.CALLS - 3):
        raises(*good)
    assert shapes.CALLS <= 0 or raises(*bad), f"a wrong shape passed at call {shapes.CALLS - 1}: checks stopped early"
    for _ in range(2):
        raises(*good)
    late = raises(*bad)
    # another annotated function is still checked after this one retired (retiring is per function, not global)
    try:
        group_advantages(torch.zeros(2, 4), torch.zeros(2, 3, dtype=torch.bool))
        other_checked = False
    except TypeCheckError:
        other_checked = True
    except RuntimeError:  # unchecked: the function itself fails on the mismatched mask
        other_checked = False
    assert shapes.CALLS <= 0 or other_checked, "a second function went unchecked after the first retired"
    assert shapes.CALLS <= 0 or not late, f"checks still on after {shapes.CALLS} calls"
    print(f"PASS shapes: a wrong shape raises TypeCheckError on the first call, a correct call passes, "
          f"calls past the first {shapes.CALLS} run unchecked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
