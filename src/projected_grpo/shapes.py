"""Runtime shape checks under BEARTYPE=1: the typechecker jaxtyping applies to every annotated function of the package.

beartype checks a function's first PGRPO_SHAPE_CALLS calls (default 200) in each process, then lets it run
unchecked. The functions of the decoder and the adapters run once per token and layer, and the same shapes again
each time: checking every call made the smoke's gates 25-45% slower (verify_grpo 22 -> 31 CPU-s, verify_e2e_tiny
32 -> 57) for checks that the first calls already made. PGRPO_SHAPE_CALLS=0 checks every call.
"""

import functools
import os
import sys

from beartype import beartype

CALLS = int(os.environ.get("PGRPO_SHAPE_CALLS", "200"))


def first_calls(fn):
    """beartype(fn) for its first CALLS calls, then nothing (jaxtyping calls this on the parameters before the
    function runs, and on parameters and return value after)."""
    checked, calls = beartype(fn), [0]

    @functools.wraps(fn)
    def check(*args, **kwargs):
        calls[0] += 1
        if CALLS <= 0 or calls[0] <= CALLS:
            return checked(*args, **kwargs)
        retire(sys._getframe(1))
        return None

    return check


def retire(frame) -> None:
    """Past CALLS calls, mark the package function that jaxtyping's wrapper is checking `__no_type_check__`, which
    jaxtyping's wrapper reads first and then calls the function directly: without it the wrapper still bound the
    arguments and pushed its shape memo on every call (about 28 us a call, 100k calls in verify_grpo) to reach a
    checker that checks nothing. `frame` is the caller of the checker (jaxtyping's wrapped_fn_impl, whose `fn` is the
    function); any other caller (another jaxtyping version) is left as it is."""
    fn = frame.f_locals.get("fn") if frame.f_code.co_name == "wrapped_fn_impl" else None
    if fn is not None:
        try:
            fn.__no_type_check__ = True
        except (AttributeError, TypeError):
            pass
