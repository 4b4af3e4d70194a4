"""Gate: a random direction differs from the v_grad it replaces only in direction, and is a factor of its own.

On the pinned CPU organism's adapter (own quarantine, as route uses it) with a real v_grad (the stored
own-quarantine v_hack of data/golden, k = 1 row per module) and a synthetic v_grad of k = 2 orthonormal rows:

    shape     interventions.random_direction(v_grad, d) has v_grad's keys, shapes and dtype; per module, each
              row's norm equals v_grad's row norm (relative 1e-5), and the rows are orthonormal up to that scale
    seed      the same direction seed gives the same tensors; two direction seeds give different directions
              (|cosine| over all modules concatenated below 0.2, and no module equal)
    training  the direction depends on nothing but the direction seed: drawn after torch.manual_seed of two
              training seeds, and through Route and Erase built with two training seeds, it is the same
    negation  resolve_v(negate=True) is -resolve_v(), for v_grad and a random direction, and routing_scores of
              the negated direction are the negated scores
    weights   routing_scores' cosine over concatenated modules weights every module alike for v_grad and for
              its random replacement (per-module squared norms equal), which randn per module did not
    arms      through the run configuration (arms.configure -> build_intervention -> setup): route-random and
              erase-random at one --direction-seed and two training seeds use one direction, at two direction
              seeds two; without --direction-seed the training seed's value is used; route-random-negated is
              -route-random at the same direction seed, route-negated is -v_grad, route is v_grad; --negate on an
              arm that routes by no direction and --direction-seed -2 are refused (ConfigError)

Seen failing: with random_direction's scaling to v_grad's row norms removed (the randn draw kept), the shape
check fails.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import torch  # noqa: E402
from safetensors import safe_open  # noqa: E402

from projected_grpo.loop.config import ConfigError, check  # noqa: E402
from projected_grpo.loop.models import load_policy  # noqa: E402
from projected_grpo.method import adapters as ad  # noqa: E402
from projected_grpo.method import arms  # noqa: E402
from projected_grpo.method import interventions as iv  # noqa: E402
from projected_grpo.method.vhack import save_vhack  # noqa: E402

VHACK = ROOT / "data" / "golden" / "vhack_own.safetensors"
ORGANISM = "data/organisms/cpu-685bd444"


def stored_v_grad() -> dict[str, torch.Tensor]:
    with safe_open(str(VHACK), "pt") as f:
        return {k.removeprefix("v_grad."): f.get_tensor(k) for k in f.keys() if k.startswith("v_grad.")}


def flat(V: dict[str, torch.Tensor], row: int = 0) -> torch.Tensor:
    return torch.cat([V[n][row].double() for n in sorted(V)])


def check_shape(name: str, V: dict, R: dict) -> float:
    """Keys, shapes, dtype and per-row norms of R equal V's; R's rows orthonormal up to those norms."""
    assert set(R) == set(V), f"{name}: keys differ"
    worst = 0.0
    for n, v in V.items():
        r = R[n]
        assert r.shape == v.shape and r.dtype == v.dtype, f"{name}: {n} {tuple(r.shape)} {r.dtype} vs {tuple(v.shape)} {v.dtype}"
        vn, rn = v.double().norm(dim=1), r.double().norm(dim=1)
        worst = max(worst, float(((rn - vn).abs() / vn).max()))
        unit = r.double() / rn[:, None]
        off = unit @ unit.T - torch.eye(r.shape[0], dtype=torch.float64)
        assert float(off.abs().max()) < 1e-5, f"{name}: {n}: rows not orthogonal ({float(off.abs().max()):.1e})"
    assert worst < 1e-5, f"{name}: per-row norms differ from v_grad's by up to {worst:.2e} (relative)"
    return worst


def built_v(policy, tok, **given) -> dict[str, torch.Tensor]:
    """The direction an arm's intervention routes or erases by, built from a command line's fields."""
    cfg, _ = arms.configure(given)
    check(cfg)
    intervention = arms.build_intervention(cfg)
    intervention.setup(policy, tok, "cpu")
    return intervention.V


def check_arms(model, tok, V: dict[str, torch.Tensor]) -> int:
    """The direction seed and the sign through the run configuration (see the docstring); returns the cases checked."""
    same = lambda A, B: all(torch.equal(A[n], B[n]) for n in V)  # noqa: E731
    with tempfile.TemporaryDirectory() as t:
        vpath = str(Path(t) / "v.safetensors")
        save_vhack(vpath, V, model, dict(note="verify_directions"))
        route = Path(t) / "route_s0"
        route.mkdir()
        (route / "metrics.jsonl").write_text(json.dumps(dict(step=0, routed_frac=0.25)) + "\n")
        common = dict(vhack=vpath, model=ORGANISM, quarantine="own")
        rr = lambda **k: built_v(model, tok, arm="route-random", match_run=str(route), **common, **k)  # noqa: E731
        a, b, c = rr(seed=0, direction_seed=5), rr(seed=1, direction_seed=5), rr(seed=0, direction_seed=6)
        assert same(a, b), "route-random: one direction seed, two training seeds, two directions"
        assert not same(a, c), "route-random: two direction seeds gave one direction"
        assert same(rr(seed=3), iv.random_direction(V, 3)), "route-random without --direction-seed: not the seed's value"
        neg = built_v(model, tok, arm="route-random-negated", match_run=str(route), seed=1, direction_seed=5, **common)
        assert same(neg, {n: -v for n, v in a.items()}), "route-random-negated is not -route-random"
        assert same(built_v(model, tok, arm="route", **common), V), "route does not route by v_grad"
        assert same(built_v(model, tok, arm="route-negated", **common), {n: -v for n, v in V.items()}), \
            "route-negated does not route by -v_grad"
        er = lambda **k: built_v(model, tok, arm="erase-random", vhack=vpath, model=ORGANISM, **k)  # noqa: E731
        e0, e1, e2 = er(seed=0, direction_seed=5), er(seed=1, direction_seed=5), er(seed=0, direction_seed=6)
        assert same(e0, e1) and not same(e0, e2), "erase-random: the direction does not follow --direction-seed alone"
        for given, what in ((dict(arm="erase", negate=True), "--negate"), (dict(arm="route-random", direction_seed=-2),
                                                                           "--direction-seed")):
            try:
                cfg, _ = arms.configure(dict(given, **common))
                check(cfg)
                arms.check_inputs(cfg)
            except ConfigError as e:
                assert str(e).startswith(what), f"{what}: refused for another reason: {e}"
            else:
                raise AssertionError(f"{given}: not refused")
    return 9


def main() -> None:
    t0 = time.time()
    model, tok = load_policy(ORGANISM, "cpu")
    ad.wrap_model(model, ad.AdapterConfig(kind="svd", quarantine="own"))
    V = stored_v_grad()
    assert set(V) == set(ad.adapter_modules(model)), "the stored v_grad does not cover the organism's adapters"
    gen = torch.Generator().manual_seed(0)
    V2 = {n: iv.orthonormal_rows(torch.randn(2, v.shape[1], generator=gen)) for n, v in V.items()}

    # shape and scale, k = 1 (real v_grad) and k = 2
    err = max(check_shape(f"seed {d}", V, iv.random_direction(V, d)) for d in range(3))
    err = max(err, check_shape("k=2", V2, iv.random_direction(V2, 0)))

    # the seed: same seed same tensors, two seeds two directions
    a, b = iv.random_direction(V, 7), iv.random_direction(V, 7)
    assert all(torch.equal(a[n], b[n]) for n in V), "one direction seed gave two directions"
    cos = []
    for d in range(1, 6):
        c = iv.random_direction(V, d)
        assert not any(torch.equal(a[n], c[n]) for n in V), f"direction seeds 7 and {d} share a module's direction"
        cos.append(float(flat(a) @ flat(c) / (flat(a).norm() * flat(c).norm())))
    assert max(map(abs, cos)) < 0.2, f"directions of different seeds are not near-orthogonal: cosines {cos}"

    # nothing but the direction seed: the global generator (seeded by the training seed) and the training seed
    torch.manual_seed(0)
    r0 = iv.resolve_v(V, model, "cpu", random=True, seed=11)
    torch.manual_seed(1)
    torch.randn(100)
    r1 = iv.resolve_v(V, model, "cpu", random=True, seed=11)
    assert all(torch.equal(r0[n], r1[n]) for n in V), "the random direction depends on the global generator"

    # negation
    g = torch.Generator().manual_seed(5)
    G = {n: torch.randn(16, v.shape[1], generator=g) for n, v in V.items()}
    for random in (False, True):
        pos = iv.resolve_v(V, model, "cpu", random=random, seed=3)
        neg = iv.resolve_v(V, model, "cpu", random=random, seed=3, negate=True)
        assert all(torch.equal(neg[n], -pos[n]) for n in V), f"negate (random={random}) is not -v"
        s_pos, s_neg = iv.routing_scores(G, pos), iv.routing_scores(G, neg)
        assert torch.allclose(s_neg, -s_pos, atol=1e-6), f"negated direction's scores (random={random}) are not -scores"

    # module weights in the concatenated cosine: equal for v_grad and its random replacement
    R = iv.random_direction(V, 0)
    w_v = torch.tensor([float(V[n][0].double() @ V[n][0].double()) for n in sorted(V)])
    w_r = torch.tensor([float(R[n][0].double() @ R[n][0].double()) for n in sorted(V)])
    assert torch.allclose(w_v, w_r, rtol=1e-5), "modules weigh differently in the random direction's cosine"
    n_arms = check_arms(model, tok, V)
    print(f"PASS directions: random_direction on the pinned organism's {len(V)} adapter modules (k=1 real v_grad, "
          f"k=2 synthetic): keys, shapes, per-row norms = v_grad's (max rel err {err:.1e}), rows orthonormal; "
          f"same seed same tensors, 5 other seeds |cos| <= {max(map(abs, cos)):.3f}; independent of the global "
          f"generator; negation = -v and -scores; {n_arms} cases through the run configuration (direction seed "
          f"independent of the training seed, route(-random)-negated = -direction, bad flags refused); "
          f"{time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
