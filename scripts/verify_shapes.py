"""Gate: BEARTYPE=1's shape checks are live (shapes.first_calls).

Under `just smoke` (BEARTYPE=1) a package function called with a tensor of the wrong shape raises jaxtyping's
TypeCheckError on its first call; a correct call passes; past shapes.CALLS calls a function runs unchecked (the
documented trade: the smoke's decoders and trainers repeat the same shapes thousands of times). Fails when the
import hook is missing, when the typechecker checks nothing, or when checks never stop.
"""

import os
import sys

import torch
from jaxtyping import TypeCheckError

from projected_grpo import shapes
from projected_grpo.loop import models


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
    for _ in range(shapes.CALLS):
        raises(*good)
    late = raises(*bad)
    assert shapes.CALLS <= 0 or not late, f"checks still on after {shapes.CALLS} calls"
    print(f"PASS shapes: a wrong shape raises TypeCheckError on the first call, a correct call passes, "
          f"calls past the first {shapes.CALLS} run unchecked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
