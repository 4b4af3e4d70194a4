"""Interventions on the adapter gradients, applied at the GRPO loop's hook point.

    NoIntervention   identity (vanilla): the hook changes nothing, bit for bit
    Erase            per module, remove the hack-ward component of the deployed block's gradient
                     along v_hack (one-sided by default), or of the optimizer's update
    Route            per rollout, a routing score (cosine of the rollout's own gradient, from the
                     single batched backward, with v_grad) and pinning thresholds decide whether
                     the update goes to the deployed block (keep), to both (absorb), or to the
                     quarantine block (route), which deployment ablation removes
    TrustedProjection  per module, keep only the part of the deployed block's gradient inside the span of
                     the trusted clean completions' gradients (TDGA-style)
    ReboundAdvantage, AdvantageModification  advantage-level peer baselines from v_act (Rebound's style, and its
                     published form)

Nothing here reads a ground-truth label of a training rollout, except the gate="oracle" control,
which is labelled as an upper bound and never a method.

The hook protocol (grpo.Trainer.step calls them in this order; none holds a reference to the trainer):
    setup(model, tok, device)            once, after the adapter exists
    on_rewards(ctx, rewards)             (rewards, include mask) before advantages are formed
    on_advantages(model, ids, ..., adv)  the trained rollouts' advantages the loss uses
    capture(model)                       a context around the backward (per-rollout gradients)
    after_backward(model, ctx)           the hook point: act on the gradients
    after_step(model)                    after the optimizer step
A step's StepContext carries its step, device, trained rows and advantages, and the sealed ground-truth labels
only for an intervention whose reads_labels is True (the oracle references).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable
import zlib

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from projected_grpo.loop import distributed as dd
from projected_grpo.method import adapters as ad
from projected_grpo.method.pairs import load_pairs
from projected_grpo.method.vhack import layer_input_contrast, load_trusted, load_vact, load_vhack

HookGrad = Literal["summed", "filled", "written"]  # the gradient an intervention's hook meets (NoIntervention.hook_grad)


class GroundTruthLabels:
    """The grader's labels of the current step's training rollouts, sealed.

    Our method never sees them: the step context carries this object instead of the grades, and only
    to the arms named as oracle references (ground-truth monitor baselines, the oracle gate: reads_labels),
    which open it. scripts/verify_vhack.py checks statically that nothing else calls `open_oracle_reference`.
    """

    def __init__(self, grades: list[dict]):
        self._grades = grades

    def open_oracle_reference(self) -> list[dict]:
        return self._grades


@dataclass
class StepContext:
    """What one step hands an intervention's hooks."""

    step: int
    """the GRPO step"""
    device: str
    """the run's device"""
    labels: GroundTruthLabels | None = None
    """the step's sealed grader labels: only for an intervention with reads_labels (an oracle reference), else None"""
    iter: int = 0
    """inner iteration (after_backward)"""
    rows: list[int] = field(default_factory=list)
    """this rank's trained rollouts, as indices into the step's rollouts (after_backward)"""
    adv: Tensor | None = None
    """their advantages as the loss uses them (after_backward)"""
    lengths: Tensor | None = None
    """their completion lengths in tokens, as the step log's `length` (after_backward)"""


class NoIntervention:
    """Vanilla GRPO: every hook is the identity; the quarantine block is not trained."""

    trains_quarantine = False
    hook_grad: HookGrad = "summed"
    """The gradient after_backward meets (Trainer.update):
    summed   autograd's gradient, summed across ranks before the hook;
    filled   capture() formed no summed gradient in folded layers: Trainer.update fills each deployed factor's .grad
             with the sum of its per-rollout gradients (adapters.fill_summed_grads), then sums across ranks (Erase);
    written  after_backward writes every factor's .grad from this rank's per-rollout gradients, summed across ranks
             after the hook (Route)."""
    reads_labels = False
    """True only for the oracle references: the step context then carries the sealed ground-truth labels"""

    def setup(self, model, tok, device: str) -> None:
        """Once, after the adapter exists: load and check what the intervention needs."""

    def capture(self, model) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def on_rewards(self, ctx: StepContext, rewards: Tensor) -> tuple[Tensor, Tensor]:
        """(rewards, include mask) before advantages are formed; identity here."""
        return rewards, torch.ones_like(rewards, dtype=torch.bool)

    def on_advantages(self, model, ids: Tensor, attn: Tensor, mask: Tensor, adv: Tensor) -> tuple[Tensor, dict]:
        """(advantages the loss uses, {"step": ..., "rollout": ...} logs) for the trained rollouts; identity here."""
        return adv, {}

    def after_backward(self, model, ctx: StepContext) -> dict:
        """Act on the gradients; returns {"step": metrics, "rollout": per-rollout logs}."""
        return {}

    def after_step(self, model) -> dict:
        """Called after the optimizer step; returns step metrics (none here)."""
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


# ---- projection -------------------------------------------------------------------------------------

def project_out(g: Float[Tensor, " p"], V: Float[Tensor, "k p"], one_sided: bool = True) -> Float[Tensor, " p"]:
    """Remove from g its component in span(V) (rows orthonormal). One-sided: only the hack-ward
    part, i.e. each coefficient <g, v_i> is removed only where it is positive."""
    c = V @ g
    if one_sided:
        c = c.clamp(min=0)
    return g - c @ V


def cosine(a: Float[Tensor, "*b p"], v: Float[Tensor, " p"]) -> Float[Tensor, "*b"]:
    return (a @ v) / (a.norm(dim=-1) * v.norm()).clamp(min=1e-30)


class LazyVhack:
    """A v_hack file path, loaded (and checked against the model and adapter) at setup."""

    def __init__(self, path: str):
        self.path = path

    def load(self, model) -> dict[str, Tensor]:
        V, _ = load_vhack(self.path, model)
        return V


def resolve_v(V, model, device: str, random: bool, seed: int, negate: bool = False) -> dict[str, Tensor]:
    """Load a LazyVhack, check it covers every adapter, optionally replace it by the random direction of
    direction seed `seed` normalised as it is (random_direction; the non-directional control), optionally
    negate it (the sign control)."""
    if isinstance(V, LazyVhack):
        V = V.load(model)
    mods = ad.adapter_modules(model)
    assert set(V) == set(mods), "v_hack modules differ from the model's adapters"
    V = {n: v.to(device).float() for n, v in V.items()}
    if random:
        V = random_direction(V, seed)
    return {n: -v for n, v in V.items()} if negate else V


DIRECTION_STREAM = 424_242_427
"""Offset of the random directions' generator seeds, so that direction seed d and training seed d seed different
generators."""


def random_direction(like: dict[str, Float[Tensor, "k _p"]], direction_seed: int) -> dict[str, Float[Tensor, "k _p"]]:
    """A direction that knows nothing, shaped and scaled as `like` (a v_grad): per module, k Gaussian rows
    orthonormalised (as v_grad's top-k singular vectors are), row i scaled to the norm of like's row i, so that
    the two differ only in direction, within every module (routing_scores' cosine over concatenated modules
    then weights the modules as it does for v_grad). Each module's rows come from a generator seeded by the
    direction seed and the module's name: the same seed gives the same direction whatever else is drawn."""
    out = {}
    for n, v in like.items():
        k, p = v.shape
        gen = torch.Generator().manual_seed(DIRECTION_STREAM + direction_seed * 1_000_003 + zlib.crc32(n.encode()))
        rows = ad.random_orthonormal(p, k, gen).T.double()
        out[n] = (rows * v.detach().double().cpu().norm(dim=1, keepdim=True)).to(v)  # drawn on the CPU: every device
        # gets the same direction
    return out


class GroundTruthMonitor(NoIntervention):
    """Peer baseline (Ariahw et al. 2025): a ground-truth hack monitor of given accuracy either
    zeroes the reward of flagged rollouts (penalty) or drops them from the batch (screen).
    It reads ground-truth labels: an ORACLE reference, never our method."""

    reads_labels = True

    def __init__(self, mode: str, accuracy: float = 1.0, seed: int = 0):
        assert mode in ("penalty", "screen"), mode
        self.mode, self.accuracy = mode, accuracy
        self.gen = torch.Generator().manual_seed(777 + seed)

    def on_rewards(self, ctx: StepContext, rewards: Tensor) -> tuple[Tensor, Tensor]:
        grades = ctx.labels.open_oracle_reference()  # ORACLE reference baseline
        truth = torch.tensor([bool(g["is_hack_strict"]) for g in grades]).view_as(rewards)
        flip = torch.rand(truth.shape, generator=self.gen) >= self.accuracy
        flagged = truth ^ flip
        if self.mode == "penalty":
            return torch.where(flagged, torch.zeros_like(rewards), rewards), torch.ones_like(flagged)
        return rewards, ~flagged


class Erase(NoIntervention):
    """Remove the hack-ward component along v_hack from the deployed block, per module.

    v_hack is oriented like the gradient of the hack completion's NLL (vhack.top_k_oriented): a
    gradient g with <g, v> > 0 moves the policy toward the hack under descent. The optimizer's
    parameter step is delta ~ -lr * g (AdamW: a per-coordinate rescaling of it), so the hack-ward
    part of a step is the one with <delta, v> < 0.

    target="grad":   after backward, the deployed block's gradient handed to the optimizer has
                     <g, v_i> <= 0 for every direction (one-sided; = 0 two-sided). Clipping scales it
                     by a positive factor, which keeps that. AdamW's step made from it can still
                     have a component along v (moments, per-coordinate scaling): see step_cos.
    target="update": after the AdamW step, the deployed block's realised parameter step
                     delta = theta_after - theta_before has <delta, v_i> >= 0 (one-sided; = 0
                     two-sided): the hack-ward part of the actual step is removed from the parameters.

    Both targets log step_cos, the mean over modules of the cosine of the realised deployed step
    with v (first direction), and step_hackward, the fraction of modules whose realised step has
    <delta, v> < 0 (cosine below -1e-6).
    """

    def __init__(self, vhack, one_sided: bool = True, target: str = "grad", random: bool = False,
                 direction_seed: int = 0):
        assert target in ("grad", "update"), target
        self.V = vhack
        self.one_sided, self.target, self.random, self.direction_seed = one_sided, target, random, direction_seed

    def setup(self, model, tok, device: str) -> None:
        V = resolve_v(self.V, model, device, self.random, self.direction_seed)
        self.V = {n: orthonormal_rows(v) for n, v in V.items()}
        self.mods = ad.adapter_modules(model)

    hook_grad = "filled"  # the capture forms no summed gradient in folded layers (summed=False)

    def capture(self, model) -> contextlib.AbstractContextManager:
        # zero probes (no value changes): for the per-rollout alignment score and, in folded layers, the gradient
        return ad.capture_per_sample_grads(model, summed=False)

    def after_backward(self, model, ctx: StepContext) -> dict:
        G = {n: m.per_sample_grads()["deployed"] for n, m in self.mods.items()}
        rollout = dict(align_score=routing_scores(G, self.V).tolist())
        self.before = {n: flat_deployed_params(m).clone() for n, m in self.mods.items()}
        if self.target == "update":
            return {"rollout": rollout}
        per_module = []  # (cos_in, cos_out, fired) per module, read back to the host once
        for n, m in self.mods.items():
            if any(p.grad is None for p in m.deployed_parameters()):
                assert not m.unsummed_pass, f"{n}: no summed gradient: call adapters.fill_summed_grads before the hook"
                continue
            g = deployed_grad(m)
            v = self.V[n]
            g2 = project_out(g, v, self.one_sided)
            per_module.append(torch.stack([cosine(g, v[0]), cosine(g2, v[0]), (g2 != g).any().float()]))
            write_deployed_grad(m, g2)
        cos_in, cos_out, fired = zip(*torch.stack(per_module).tolist()) if per_module else ((), (), ())
        n = max(1, len(cos_in))
        return {"step": dict(cos_in=sum(cos_in) / n, cos_out=sum(cos_out) / n, frac_fired=sum(fired) / n),
                "rollout": rollout}

    def after_step(self, model) -> dict:
        """target="update": replace each module's realised deployed step by its projection (the
        hack-ward direction of a step is -v). Both targets: measure the realised step against v."""
        out: dict = {}
        with torch.no_grad():
            if self.target == "update":
                cos_pre, fired = [], 0
                for n, m in self.mods.items():
                    delta = flat_deployed_params(m) - self.before[n]
                    d2 = project_out(delta, -self.V[n], self.one_sided)
                    cos_pre.append(cosine(delta, self.V[n][0]).item())
                    fired += int(not torch.equal(d2, delta))
                    write_deployed_params(m, self.before[n] + d2)
                out = dict(step_cos_pre=sum(cos_pre) / len(cos_pre), frac_fired=fired / len(cos_pre))
            return dict(out, **step_alignment(self.mods, self.before, self.V))


def deployed_grad(m) -> Float[Tensor, " p"]:
    """A module's deployed-block gradient, flattened in the order of deployed_parameters()."""
    return torch.cat([p.grad.flatten() for p in m.deployed_parameters()])


def write_deployed_grad(m, flat: Float[Tensor, " p"]) -> None:
    ps = m.deployed_parameters()
    for p, g in zip(ps, flat.split([p.numel() for p in ps])):
        p.grad.copy_(g.view_as(p))


def flat_deployed_params(m) -> Float[Tensor, " p"]:
    return torch.cat([p.detach().flatten() for p in m.deployed_parameters()])


def write_deployed_params(m, flat: Float[Tensor, " p"]) -> None:
    ps = m.deployed_parameters()
    for p, d in zip(ps, flat.split([p.numel() for p in ps])):
        p.copy_(d.view_as(p))


def step_alignment(mods: dict, before: dict[str, Tensor], V: dict[str, Tensor]) -> dict:
    """The realised deployed step delta = theta_now - before, per module, against v (first row):
    step_cos = mean cosine, step_hackward = fraction of moved modules whose cosine is below -1e-6
    (a projected step has cosine 0 up to float error)."""
    rows = []  # (moved, cosine) per module, read back to the host once
    for n, m in mods.items():
        delta = flat_deployed_params(m) - before[n]
        rows.append(torch.stack([delta.any().float(), cosine(delta, V[n][0])]))
    cos = [c for moved, c in torch.stack(rows).tolist() if moved] if rows else []
    hackward = sum(c < -1e-6 for c in cos)
    n = max(1, len(cos))
    return dict(step_cos=sum(cos) / n if cos else float("nan"), step_hackward=hackward / n)


def orthonormal_rows(V: Float[Tensor, "k p"]) -> Float[Tensor, "k p"]:
    """Rows orthonormalised in order (QR of V^T), each keeping the sign of the original row."""
    q, r = torch.linalg.qr(V.T)
    d = torch.sign(torch.diagonal(r))
    d[d == 0] = 1
    return (q * d).T


# ---- trusted-subspace projection (TDGA-style) ------------------------------------------------------------

def project_onto(g: Float[Tensor, " p"], U: Float[Tensor, "k p"]) -> Float[Tensor, " p"]:
    """The part of g inside span(U) (rows orthonormal): U^T (U g)."""
    return (U @ g) @ U


class TrustedProjection(NoIntervention):
    """Trusted-subspace projection in the manner of TDGA: after the backward, each module's deployed-block gradient g
    (summed over ranks) is replaced by U_r^T U_r g, its orthogonal projection onto the span of U_r, the first `rank`
    rows of the module's trusted span (vhack.extract_trusted: the top right singular vectors of the hand-authored
    pairs' clean completions' gradients, extracted before training; the file is checked against the model and
    adapter). Only the part of each update that trusted clean completions' gradients can express is kept. The
    quarantine block is not trained. Reads no label. Logs trusted_share, the mean over modules of |U_r^T U_r g| / |g|
    (the share of the gradient's norm that is kept)."""

    def __init__(self, path: str, rank: int):
        assert rank >= 1, rank
        self.path, self.rank = path, rank

    def setup(self, model, tok, device: str) -> None:
        U, _ = load_trusted(self.path, model)
        self.mods = ad.adapter_modules(model)
        assert set(U) == set(self.mods), "trusted-span modules differ from the model's adapters"
        short = {n: u.shape[0] for n, u in U.items() if u.shape[0] < self.rank}
        assert not short, f"{self.path}: trusted span of rank below {self.rank} in {short}"
        self.U = {n: u[: self.rank].to(device).float() for n, u in U.items()}
        gram = max(float((u @ u.T - torch.eye(self.rank, device=device)).abs().max()) for u in self.U.values())
        assert gram < 1e-4, f"{self.path}: trusted span rows not orthonormal (max |U U^T - I| {gram:.1e})"

    def after_backward(self, model, ctx: StepContext) -> dict:
        shares = []
        for n, m in self.mods.items():
            if any(p.grad is None for p in m.deployed_parameters()):
                continue
            g = deployed_grad(m).float()
            kept = project_onto(g, self.U[n])
            shares.append(kept.norm() / g.norm().clamp(min=1e-30))
            write_deployed_grad(m, kept)
        return {"step": dict(trusted_share=float(torch.stack(shares).mean()) if shares else float("nan"))}


# ---- routing ------------------------------------------------------------------------------------------

def routing_scores(G: dict[str, Float[Tensor, "b _p"]], V: dict[str, Float[Tensor, "k _p"]]) -> Float[Tensor, " b"]:
    """Per rollout: cosine between its gradient over all deployed blocks and v_grad (first
    direction per module), both concatenated over modules. (`_p`: a module's parameter count, which differs between
    modules where the adapter's blocks do, e.g. LoRA's A over d_in; beartype checks one random item of each dict, so a
    shared `p` failed LoRA runs at random under BEARTYPE=1.)"""
    num = sum((G[n] @ V[n][0]) for n in G)
    gn = torch.sqrt(sum((G[n] ** 2).sum(1) for n in G))
    vn = math.sqrt(sum(torch.stack([V[n][0] @ V[n][0] for n in G]).tolist()))  # one read-back, summed as floats
    return num / (gn * vn).clamp(min=1e-30)


def pin(scores: Float[Tensor, " b"], t_absorb: float, t_route: float) -> tuple[Tensor, Tensor]:
    """Pinning: score < t_absorb -> keep (deployed only); t_absorb <= score < t_route -> absorb
    (both blocks); score >= t_route -> route (quarantine only). Returns (w_deployed, w_quarantine)."""
    assert t_absorb <= t_route
    route = scores >= t_route
    absorb = (scores >= t_absorb) & ~route
    keep = ~(route | absorb)
    return (keep | absorb).float(), (absorb | route).float()


ROUTE_GATES = ("grad", "random", "oracle", "none", "absorb", "subset", "subset-signed", "subset-cells")


def step_generator(seed: int, step: int) -> torch.Generator:
    """A generator seeded by (run seed, step): the same draws after a resume."""
    return torch.Generator().manual_seed(7_000_003 * (seed + 1) + step)


def signed_subset(u: Float[Tensor, " b"], adv: Float[Tensor, " b"], k: int, pos_share: float) -> Tensor:
    """k rollouts, of which round(pos_share * k) have positive advantage where the step has that
    many (the rest from the others, topped up from either sign when one runs short); within each
    sign the rollouts with the largest uniform draws u, i.e. uniformly at random."""
    b = u.shape[0]
    assert adv.shape == (b,) and 0 <= k <= b, (adv.shape, k, b)
    pos = adv > 0
    n_pos = min(int(round(pos_share * k)), int(pos.sum()))
    n_pos = max(n_pos, k - int((~pos).sum()))  # too few non-positive rollouts: take more positive ones
    order = torch.argsort(u, descending=True)
    pick_pos = [i for i in order.tolist() if pos[i]][:n_pos]
    pick_neg = [i for i in order.tolist() if not pos[i]][: k - n_pos]
    routed = torch.zeros(b, dtype=torch.bool)
    routed[pick_pos + pick_neg] = True
    assert int(routed.sum()) == k
    return routed


N_CELLS = 6
"""(advantage sign, completion-length tercile) cells: cell = 3 * (advantage > 0) + tercile."""


def length_terciles(lengths: Int[Tensor, " b"]) -> Int[Tensor, " b"]:
    """Per rollout: its completion-length tercile among the b rollouts (0 shortest, 2 longest), by rank in a
    stable sort (equal lengths split in row order), rank * 3 // b."""
    b = lengths.shape[0]
    t = torch.empty(b, dtype=torch.long)
    t[torch.argsort(lengths, stable=True)] = torch.arange(b) * 3 // max(b, 1)
    return t


def rollout_cells(adv: Float[Tensor, " b"], lengths: Int[Tensor, " b"]) -> Int[Tensor, " b"]:
    """Per rollout: its (advantage sign, completion-length tercile) cell, 3 * (adv > 0) + tercile."""
    assert adv.shape == lengths.shape, (adv.shape, lengths.shape)
    return 3 * (adv > 0).long() + length_terciles(lengths)


def cell_counts(routed: Bool[Tensor, " b"], cells: Int[Tensor, " b"]) -> list[int]:
    """Routed rollouts per cell (N_CELLS counts)."""
    return torch.bincount(cells[routed], minlength=N_CELLS).tolist()


def scaled_counts(counts: list[int], b_from: int, b: int) -> list[int]:
    """Per-cell counts of a batch of b_from rollouts scaled to a batch of b (largest remainders; the total is
    round(sum * b / b_from)); the same counts when b == b_from."""
    if b_from == 0:
        return [0] * len(counts)
    exact = [c * b / b_from for c in counts]
    out = [math.floor(x) for x in exact]
    short = min(int(round(sum(counts) * b / b_from)), b) - sum(out)
    for i in sorted(range(len(exact)), key=lambda i: out[i] - exact[i])[:max(short, 0)]:
        out[i] += 1
    return out


def cell_subset(u: Float[Tensor, " b"], cells: Int[Tensor, " b"], want: list[int]) -> Bool[Tensor, " b"]:
    """Per cell, the min(want, available) rollouts of that cell with the largest uniform draws u (uniformly at
    random); a cell's shortfall topped up from the remaining rollouts with the largest u, so that
    min(sum(want), b) are routed."""
    b = u.shape[0]
    assert cells.shape == (b,) and len(want) == N_CELLS and min(want) >= 0, (cells.shape, want)
    order = torch.argsort(u, descending=True).tolist()
    routed = torch.zeros(b, dtype=torch.bool)
    for c, k in enumerate(want):
        routed[[i for i in order if cells[i] == c][:k]] = True
    rest = [i for i in order if not routed[i]][: min(sum(want), b) - int(routed.sum())]
    routed[rest] = True
    return routed


@runtime_checkable
class Schedule(Protocol):
    """Per-step values of a matched run: a list, or arms.FollowedSchedule (read as the matched run logs them; a
    type check must not index it, since reading an entry waits for the matched run)."""

    def __len__(self) -> int: ...

    def __getitem__(self, step: int) -> float: ...


class Route(NoIntervention):
    """Per-rollout gradient routing with pinning.

    gate="grad":    routing score = cosine(rollout's deployed-block gradient, v_grad)
    gate="random":  the same with the random direction of direction_seed (random_direction: normalised per module
                    as v_grad is; the non-directional control)
    gate="oracle":  score = ground-truth strict hack label of the rollout (UPPER BOUND, not a method)
    gate="none":    no routing; both blocks get every update (capacity-matched vanilla)
    gate="absorb":  every rollout lands in the absorb region (absorb-only control)
    gate="subset":  a uniformly random subset of the step's trained rollouts (score = a seeded
                    uniform draw), at match_frac's per-step fraction: "how many", no direction
    gate="subset-signed": like subset, and among the routed, the share with positive advantage is
                    match_pos_share's per-step value (as close as the step's rollouts allow):
                    "how many" and "which advantage sign", no direction
    gate="subset-cells": a random subset with match_cells's per-step routed count in each (advantage sign,
                    completion-length tercile of the step's trained rollouts) cell (rollout_cells; counts scaled
                    to this step's number of trained rollouts, scaled_counts): "how many", "which sign" and
                    "how long", no direction

    Thresholds: fixed (t_absorb, t_route), or route_frac > 0 routes the top route_frac of each
    step's scores, or match_frac (a list of per-step fractions from another run) routes that many.
    The advantages read by subset-signed and subset-cells are the ones training uses, the lengths the sampled
    completions'; no ground-truth label is read.
    negate (grad, random): route by the negated direction's score (the sign controls route-negated and
    route-random-negated). seed: the subset gates' per-step draws; direction_seed: the random gate's direction.
    """

    trains_quarantine = True
    hook_grad = "written"

    def __init__(self, vhack, gate: str = "grad", t_absorb: float = 1.0,
                 t_route: float = 1.0, route_frac: float = 0.0, match_frac: Schedule | None = None, seed: int = 0,
                 match_pos_share: Schedule | None = None, direction_seed: int = 0, negate: bool = False,
                 match_cells: list[tuple[list[int], int]] | None = None):
        assert gate in ROUTE_GATES, gate
        assert gate not in ("subset", "subset-signed") or match_frac is not None, f"gate={gate} needs match_frac"
        assert (gate == "subset-signed") == (match_pos_share is not None), "match_pos_share is for subset-signed only"
        assert (gate == "subset-cells") == (match_cells is not None), "match_cells is for subset-cells only"
        assert not negate or gate in ("grad", "random"), f"gate={gate} has no direction to negate"
        self.V, self.gate, self.direction_seed, self.negate = vhack, gate, direction_seed, negate
        self.t_absorb, self.t_route = t_absorb, t_route
        self.route_frac, self.match_frac, self.seed = route_frac, match_frac, seed
        self.match_pos_share, self.match_cells = match_pos_share, match_cells
        self.reads_labels = gate == "oracle"  # the oracle gate alone: an upper bound, never a method

    def setup(self, model, tok, device: str) -> None:
        if self.gate in ("grad", "random"):
            assert self.V is not None, f"gate={self.gate} needs v_hack"
            self.V = resolve_v(self.V, model, device, self.gate == "random", self.direction_seed, self.negate)

    def capture(self, model) -> contextlib.AbstractContextManager:
        # after_backward writes every factor's .grad from the per-rollout gradients (hook_grad): no summed gradient
        return ad.capture_per_sample_grads(model, summed=False)

    def scores(self, model, ctx: StepContext) -> Tensor:
        b = len(ctx.rows)
        if self.gate in ("grad", "random"):
            G = {n: m.per_sample_grads()["deployed"] for n, m in ad.adapter_modules(model).items()}
            return routing_scores(G, self.V)
        if self.gate == "oracle":  # ground-truth labels: an upper bound only
            grades = ctx.labels.open_oracle_reference()
            return torch.tensor([float(grades[i]["is_hack_strict"]) for i in ctx.rows])
        if self.gate in ("subset", "subset-signed", "subset-cells"):
            return torch.rand(b, generator=step_generator(self.seed, ctx.step))
        return torch.zeros(b)

    def scheduled(self, schedule: Schedule, step: int):
        """The schedule's entry for the step (its last one past its end)."""
        return schedule[min(step, len(schedule) - 1)]

    def after_backward(self, model, ctx: StepContext) -> dict:
        # scores of every rank's rollouts: thresholds and the routed fraction apply to the global batch
        s, mine = dd.gather_cat(self.scores(model, ctx).cpu())
        b = s.shape[0]
        if self.gate == "subset-signed":
            k = int(round(self.scheduled(self.match_frac, ctx.step) * b))
            routed = signed_subset(s, ctx.adv.cpu(), k, self.scheduled(self.match_pos_share, ctx.step))
            w_dep, w_q = (~routed).float(), routed.float()
        elif self.gate == "subset-cells":
            cells = rollout_cells(dd.gather_cat(ctx.adv.cpu())[0], dd.gather_cat(ctx.lengths.cpu())[0])
            counts, b_from = self.scheduled(self.match_cells, ctx.step)
            routed = cell_subset(s, cells, scaled_counts(counts, b_from, b))
            w_dep, w_q = (~routed).float(), routed.float()
        elif self.gate == "none":
            w_dep, w_q = torch.ones(b), torch.ones(b)
        elif self.gate == "absorb":
            w_dep, w_q = torch.ones(b), torch.ones(b)
        elif self.gate == "oracle":
            w_dep, w_q = (s < 0.5).float(), (s >= 0.5).float()
        else:
            frac = self.route_frac
            if self.match_frac is not None:
                frac = self.scheduled(self.match_frac, ctx.step)
            if frac > 0 or self.match_frac is not None:
                k = int(round(frac * b))
                routed = torch.zeros(b, dtype=torch.bool)
                if k:
                    routed[torch.topk(s, k).indices] = True
                w_dep, w_q = (~routed).float(), routed.float()
            else:
                w_dep, w_q = pin(s, self.t_absorb, self.t_route)
        dev = ctx.device
        # per module: every module's per-rollout gradients at once would take several times the memory (LoRA at 4B)
        ad.write_routed_grads(model, w_dep[mine].to(dev), w_q[mine].to(dev))
        region = ["route" if (q and not d) else "absorb" if (q and d) else "keep" for d, q in
                  zip(w_dep[mine].tolist(), w_q[mine].tolist())]
        return {"step": dict(routed_frac=float(((w_q > 0) & (w_dep == 0)).float().mean()),
                             absorb_frac=float(((w_q > 0) & (w_dep > 0)).float().mean()),
                             score_mean=float(s.float().mean())),
                "rollout": dict(route_score=s[mine].tolist(), region=region)}


# ---- seeded absorption (scorda) ----------------------------------------------------------------------------

class SeededAbsorb(NoIntervention):
    """Seeded absorption: at setup, per adapted layer, the block named by the adapter's `axis` is seeded
    with the pairs' signed mean input contrast (vhack.layer_input_contrast -> adapters.seed_axis); then
    both blocks train on every rollout (no gate, no per-rollout gradients). axis="quarantine" is
    scorda-absorb (deployment ablation removes the seeded block), axis="deployed" scorda-reverse."""

    trains_quarantine = True

    def __init__(self, pairs: str):
        self.pairs = pairs

    def setup(self, model, tok, device: str) -> None:
        assert model.adapter_config.axis != "none", "SeededAbsorb needs an adapter built with an axis (--axis)"
        u_in = layer_input_contrast(model, tok, load_pairs(self.pairs), device)
        self.gains = ad.seed_axis(model, u_in)


# ---- advantage-level peer baseline (Rebound style) --------------------------------------------------------

def completion_means(hidden: tuple[Tensor, ...], mask: Tensor) -> Float[Tensor, "l b d"]:
    """Per layer (hidden states after each block) and rollout: the mean over completion tokens."""
    m = mask.float()[..., None]
    return torch.stack([(h.float() * m).sum(1) / m.sum(1).clamp(min=1) for h in hidden[1:]])


def activation_scores(acts: Float[Tensor, "l b d"], v_act: Float[Tensor, "l d"]) -> Float[Tensor, " b"]:
    """Per rollout: the mean over layers of the cosine of (its completion-mean activation minus the mean
    over the step's trained rollouts) with v_act."""
    c = acts - acts.mean(1, keepdim=True)
    cos = (c @ v_act[..., None]).squeeze(-1) / (c.norm(dim=-1) * v_act.norm(dim=-1)[:, None]).clamp(min=1e-30)
    return cos.mean(0)


class ReboundAdvantage(NoIntervention):
    """Advantage-level peer baseline in the style of Rebound (Wu & Tang 2026), oracle-free: each trained
    rollout's advantage becomes A - beta * score, score = activation_scores(its activations, v_act), with
    v_act from the same hand-authored pairs (vhack.extract_vact). One extra no-grad forward per step."""

    def __init__(self, vhack, beta: float = 1.0):
        assert isinstance(vhack, LazyVhack), "ReboundAdvantage needs a v_hack file with v_act"
        self.path, self.beta = vhack.path, beta

    def setup(self, model, tok, device: str) -> None:
        self.v_act = load_vact(self.path, model).to(device).float()

    @torch.no_grad()
    def on_advantages(self, model, ids: Tensor, attn: Tensor, mask: Tensor, adv: Tensor) -> tuple[Tensor, dict]:
        hidden = model(input_ids=ids, attention_mask=attn.long(), output_hidden_states=True).hidden_states
        acts = completion_means(hidden, mask)
        assert acts.shape[0] == self.v_act.shape[0], f"v_act has {self.v_act.shape[0]} layers, model {acts.shape[0]}"
        score = activation_scores(acts, self.v_act).to(adv)
        shaped, logs = self.shape(adv, score)
        return shaped, {"step": dict(rebound_shift_mean=float((shaped - adv).mean()), **logs.get("step", {})),
                        "rollout": dict(rebound_score=score.tolist(), rebound_adv=shaped.tolist(),
                                        **logs.get("rollout", {}))}

    def shape(self, adv: Float[Tensor, " b"], score: Float[Tensor, " b"]) -> tuple[Float[Tensor, " b"], dict]:
        """(the advantages the loss uses, extra logs): additive, A - beta * score."""
        return adv - self.beta * score, {}


def group_zscores(score: Float[Tensor, " b"], group: int) -> Float[Tensor, " b"]:
    """Per rollout: its score z-scored within its GRPO group, the consecutive blocks of `group` rows (the trained
    rollouts of one process are whole groups in row order): (s - group mean) / group std (n - 1 in the std, as
    grpo.group_std); 0 in a group whose scores are all equal (std below 1e-8)."""
    b = score.shape[0]
    assert group >= 2 and b % group == 0, f"{b} trained rollouts are not whole groups of {group}"
    s = score.view(-1, group)
    std = s.std(dim=1, keepdim=True)
    z = (s - s.mean(dim=1, keepdim=True)) / std.clamp(min=1e-8)
    return torch.where(std > 1e-8, z, torch.zeros_like(z)).view(b)


def modified_advantages(adv: Float[Tensor, " b"], z: Float[Tensor, " b"], alpha: float) -> Float[Tensor, " b"]:
    """Rebound's Advantage Modification as read here: A' = A - alpha * max(z, 0) * |A|. Multiplicative: the penalty
    is a multiple of the advantage's size (A' = A (1 - alpha z) for A >= 0, A (1 + alpha z) for A < 0), so a
    rollout's advantage is lowered in either sign (A (1 - alpha z) alone would raise a negative one); only rollouts
    above their group's average score (z > 0) are penalised, the rest keep A."""
    return adv - alpha * z.clamp(min=0) * adv.abs()


class AdvantageModification(ReboundAdvantage):
    """Rebound's Advantage Modification (Wu & Tang 2026) in its published form, oracle-free: each trained rollout's
    activation score (activation_scores against v_act, as ReboundAdvantage computes it) is z-scored within its GRPO
    group (group_zscores), and only rollouts with an above-average score in their group are penalised,
    multiplicatively: A' = A - alpha * max(z, 0) * |A| (modified_advantages; alpha = 2 by default, --rebound-alpha).
    The paper's exact equation was not at hand: this is our reading of "z-scored within the group, only
    above-average rollouts penalised, multiplicative, alpha 2"."""

    def __init__(self, vhack, alpha: float, group: int):
        super().__init__(vhack)
        self.alpha, self.group = alpha, group

    def shape(self, adv: Float[Tensor, " b"], score: Float[Tensor, " b"]) -> tuple[Float[Tensor, " b"], dict]:
        assert dd.world() == 1, "AdvantageModification z-scores within groups: one process holds the whole step"
        z = group_zscores(score, self.group)
        sums = adv.view(-1, self.group).sum(1).abs().max()
        assert sums <= 1e-4 * (1 + float(adv.abs().max())), \
            f"the trained rollouts are not whole GRPO groups in row order (a group's advantages sum to {sums:.1e})"
        penalised = float((z > 0).float().mean())
        return modified_advantages(adv, z, self.alpha), {"step": dict(rebound_frac_penalised=penalised),
                                                          "rollout": dict(rebound_z=z.tolist())}
