"""projected_grpo: GRPO with gradient projection and gradient routing against a reward-hacking direction.

With BEARTYPE=1 every function of the package that carries jaxtyping annotations is checked at
call time (shapes and dtypes), its first 200 calls in a process (shapes.first_calls); `just smoke` turns this on.
"""

import os

if os.environ.get("BEARTYPE") == "1":
    from jaxtyping import install_import_hook

    from projected_grpo import shapes  # noqa: F401 (jaxtyping resolves the typechecker's name through the package)

    _hook = install_import_hook("projected_grpo", "projected_grpo.shapes.first_calls")
