"""projected_grpo: GRPO with gradient projection and gradient routing against a reward-hacking direction.

With BEARTYPE=1 every function of the package that carries jaxtyping annotations is checked at
call time (shapes and dtypes); `just smoke` turns this on.
"""

import os

if os.environ.get("BEARTYPE") == "1":
    from jaxtyping import install_import_hook

    _hook = install_import_hook("projected_grpo", "beartype.beartype")
