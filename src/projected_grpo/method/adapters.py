"""Adapters with a deployed block and a quarantine block, and per-rollout gradients.

Every targeted nn.Linear `W: [d_out, d_in]` of a causal LM is replaced by an `AdaptedLinear`
that keeps `W` frozen and adds two trainable blocks:

    svd,  quarantine="shared":  y = W x + U ((Vh x) * (delta_S + delta_S_hack))
    svd,  quarantine="own":     y = W x + U ((Vh x) * delta_S) + U2 ((Vh2 x) * delta_S_hack)
    lora, quarantine="shared":  y = W x + scale * B ((A + A_hack) x)
    lora, quarantine="own":     y = W x + scale * (B (A x) + B_hack (A_hack x))

U, Vh (top-r singular vectors of W), U2, Vh2 and B are frozen buffers. The
deployed block is {delta_S} or {A}; the quarantine block is {delta_S_hack} or {A_hack, B_hack}.
All trainable tensors that multiply the input are zero at init, so the wrapped model starts
equal to the base model. The reference policy is the model with both blocks off (== base);
deployment ablation switches the quarantine block off.

With quarantine="shared" both blocks enter the forward only through their sum, so they receive
identical gradients (the shrinkage null, method.md section 4).

The own-basis SVD quarantine (`own_svd_basis`) is Frobenius-orthogonal to the deployed block: every
quarantine update U2 diag(b) Vh2 has zero inner product with every deployed update U diag(a) Vh.
    2r <= min(d_out, d_in):  U2, Vh2 = the next r singular vectors of W (spare singular directions;
                             row and column spaces orthogonal to the deployed block's too)
    2r >  min(d_out, d_in):  U2 = U, Vh2 = Vh with rows shifted by one, so the quarantine's rank-one
                             pieces are u_i vh_{i+1 mod r}^T, the off-diagonal of the deployed basis
                             (the deployed block keeps the full rank vanilla has; needs r >= 2)
scripts/verify_quarantine.py checks both through the modules' forward.

Seeded absorption (`AdapterConfig.axis`, svd own; the scorda arms): one block additionally holds a
trainable rank-one piece (a_out a_in^T - s u_out u_in^T) x, seeded by `seed_axis` with u_in = the unit
signed mean input contrast of the pairs at this layer (vhack.layer_input_contrast), u_out = unit(W u_in),
s = |W u_in|, a_in = u_in, a_out = s u_out: zero output at init, and the block's gradients on a_in, a_out
start along the axis. The other block's singular pieces read x with its u_in component removed, so its
dW u_in = 0 throughout. axis="quarantine": deployment ablation removes the piece; axis="deployed": the
directional control. Its per-rollout gradients are not formed (the arms train both blocks on every
rollout). scripts/verify_scorda.py checks all of this through the modules' forward.

Several runs in one model (`add_runs`; issue 28): every trainable tensor has one copy per run (run 0 keeps the plain
name, run i the suffix `__run<i>`), and the frozen base and bases are shared. Under `active_run(model, i)` the module
is run i's adapter alone: its attributes (delta_S, A, ...), blocks, records, state dict and dense update are run i's,
so interventions, optimizers and checkpoints see one run as they would in a process of its own. Under
`batched_rows(model, run_of_row)` one forward serves all runs: row b of the batch goes through the adapter of run
run_of_row[b] (rows sorted by run), and a capturing forward records each run's rows in that run's records.

Per-rollout gradients: inside `capture_per_sample_grads(model)`, every forward of `model` with grad
enabled first arms each active adapter with a zero probe, a leaf tensor with one row per rollout that
is added to the trainable factor (SVD: s -> s + P_b, P: [b, k]; LoRA: A -> A + P_b, P: [b, k, d_in], and
for the own quarantine B_hack -> B_hack + Q_b, Q: [b, d_out, r]). The probe changes no value, and the
ordinary batched backward leaves each rollout's gradient in its .grad
(SVD: G_b = sum_t h_bt * gz_bt, LoRA: G_b = sum_t ga_bt x_bt^T), in float32. No hooks run inside
the layers, so a torch.compile'd layer captures too. `write_routed_grads` then writes
`param.grad = sum_b w_b G_b` per block, so routing is a pair of masked sums.
"""

import contextlib
import hashlib
import json
import os
import re
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Literal, Sequence

import torch
import torch.nn.functional as F
from jaxtyping import Float
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from tqdm import tqdm

DEFAULT_TARGETS = r"layers\.\d+\.(self_attn|mlp)\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$"
NEVER_TARGET = re.compile(r"(lm_head|embed)")


@dataclass
class AdapterConfig:
    kind: Literal["svd", "lora"] = "svd"
    """svd: trainable singular-value offsets on a frozen SVD basis of W. lora: trainable A on a
    frozen random B."""
    rank: int | None = None
    """Adapter rank r. svd: None or -1 means full rank min(d_out, d_in). lora: required."""
    quarantine: Literal["shared", "own"] = "shared"
    """shared: the quarantine block adds to the deployed block inside the same factor (identical
    gradients). own: the quarantine has its own structure (svd: `own_svd_basis`,
    Frobenius-orthogonal to the deployed block; lora: its own trainable B_hack)."""
    targets: str = DEFAULT_TARGETS
    """Regex searched in each nn.Linear's module name; lm_head and embeddings are never wrapped."""
    lora_alpha: float | None = None
    """LoRA scale = lora_alpha / r; None means scale 1."""
    hack_B_scale: float = 1.0
    """lora, quarantine="own": B_hack init = hack_B_scale * (a random matrix distributed as B)."""
    seed: int = 0
    """Seed of the frozen random LoRA B (orthonormal columns) and the B_hack init; each module mixes
    in a CRC32 of its name."""
    axis: Literal["none", "quarantine", "deployed"] = "none"
    """Seeded absorption (svd, quarantine="own"): this block also holds a trainable rank-one axis piece
    a_out a_in^T, seeded by `seed_axis` with the pairs' signed input contrast u_in and u_out = unit(W u_in),
    minus its frozen seed s u_out u_in^T (s = |W u_in|), so its output is zero at init; the other block's
    singular pieces read the input with its u_in component removed (their dW u_in = 0)."""
    cache_dir: str | None = "out/svd_cache"
    """Directory of cached SVD factors (safetensors named by sha256 of the weight bytes and k);
    None disables the cache."""


# ---------------------------------------------------------------------------------------------
# frozen bases


def _module_generator(seed: int, name: str) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))


def random_orthonormal(n: int, k: int, gen: torch.Generator) -> Float[Tensor, "n k"]:
    """n x k matrix with orthonormal columns (QR of a seeded Gaussian)."""
    assert k <= n, (n, k)
    q, r = torch.linalg.qr(torch.randn(n, k, generator=gen, dtype=torch.float64))
    return (q * torch.sign(torch.diagonal(r))).float()


def weight_digest(w: Float[Tensor, "o i"]) -> str:
    """sha256 of a weight's shape, dtype and bytes."""
    h = hashlib.sha256(f"{tuple(w.shape)}|{w.dtype}|".encode())
    h.update(w.detach().contiguous().reshape(-1).view(torch.uint8).cpu().numpy().tobytes())
    return h.hexdigest()


def svd_top_k(
    w: Float[Tensor, "o i"], k: int, cache_dir: str | None, digest: str
) -> tuple[Float[Tensor, "o k"], Float[Tensor, " k"], Float[Tensor, "k i"], bool]:
    """Top-k singular triplets of w in float32 on w's device; returns (U, S, Vh, cache_hit). On the CPU the SVD runs
    on one torch thread whatever the caller's count: LAPACK's factors differ in their last bits with the thread count
    (on the CPU organism's weights, 36 of 84 factors differed between 1 and 2 threads), and the cache keeps whichever
    process computed them first."""
    path = Path(cache_dir) / f"{digest[:40]}_k{k}.safetensors" if cache_dir else None
    if path is not None and path.exists():
        f = load_file(str(path), device=str(w.device))
        return f["U"], f["S"], f["Vh"], True
    threads = torch.get_num_threads()
    if w.device.type == "cpu":
        torch.set_num_threads(1)
    try:
        u, s, vh = torch.linalg.svd(w.detach().float(), full_matrices=False)
    finally:
        torch.set_num_threads(threads)
    u, s, vh = u[:, :k].contiguous(), s[:k].contiguous(), vh[:k].contiguous()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")  # per process: runs started together share the cache
        save_file({"U": u.cpu(), "S": s.cpu(), "Vh": vh.cpu()}, str(tmp))
        tmp.replace(path)
    return u, s, vh, False


def own_svd_basis(
    u: Float[Tensor, "o k"], vh: Float[Tensor, "k i"], r: int
) -> tuple[Float[Tensor, "o r2"], Float[Tensor, "r2 i"]]:
    """[U | U2] and [Vh ; Vh2] from the top-k singular vectors (k = min(2r, full)): the spare singular
    directions r..2r-1 when k = 2r, else the deployed directions with Vh2's rows shifted by one
    (quarantine pieces u_i vh_{i+1 mod r}^T). Either way <U diag(a) Vh, U2 diag(b) Vh2>_F = 0."""
    k = u.shape[1]
    if k == 2 * r:
        return u, vh
    assert r >= 2, "own SVD quarantine at rank 1 of a rank-1 weight has no orthogonal piece"
    u_d, vh_d = u[:, :r], vh[:r]
    return torch.cat([u_d, u_d], 1), torch.cat([vh_d, torch.roll(vh_d, -1, dims=0)], 0)


# ---------------------------------------------------------------------------------------------
# the adapter module


TRAINABLE = ("delta_S", "delta_S_hack", "axis_in", "axis_out", "A", "A_hack", "B_hack")
"""The adapter's trainable tensors (those a module has); each run of a batched model has its own copy."""


def _run_key(name: str, run: int) -> str:
    return name if run == 0 else f"{name}__run{run}"


def _per_run(name: str) -> property:
    """The active run's copy of a trainable tensor (an error in batched mode, where no run is active)."""

    def get(self):
        params = self.__dict__["_parameters"]
        if name not in params:
            raise AttributeError(name)  # this module has no such tensor (e.g. B_hack of an svd adapter)
        assert self.active is not None, f"{self.name}.{name}: batched over runs; read it under active_run(model, i)"
        return params[_run_key(name, self.active)]

    return property(get)


class ProbeTap(torch.autograd.Function):
    """The identity on a folded svd layer's output y = x W_sum^T; its backward also gives the capture probe P
    ([b, k]) its gradient, each rollout's dL/ds_b = sum_t h_bt * (gy_bt U), with h = x Vh^T: what the branch's
    probe term h P_b receives, without a branch in the forward. `shifted` (the own quarantine at full rank, whose
    pieces are the deployed ones with Vh's rows shifted by one): h and U are the deployed block's, and the quarantine
    half is formed from them (h rolled by one), which halves the work."""

    @staticmethod
    def forward(ctx, y: Tensor, h: Tensor, probe: Tensor, U: Tensor, shifted: bool) -> Tensor:
        ctx.save_for_backward(h, U)
        ctx.shifted = shifted
        return y.view_as(y)

    @staticmethod
    def backward(ctx, gy: Tensor):
        h, U = ctx.saved_tensors
        hf, g = h.float(), (gy @ U.to(gy.dtype)).float()
        grad = (hf * g).sum(1)
        if ctx.shifted:  # own quarantine pieces u_i vh_{i+1 mod r}^T: h rolled by one, the same U (own_svd_basis)
            grad = torch.cat([grad, (hf.roll(-1, dims=-1) * g).sum(1)], -1)
        return gy, None, grad, None, None


class AdaptedLinear(nn.Module):
    """A frozen nn.Linear plus a deployed block and a quarantine block (see module docstring)."""

    delta_S, delta_S_hack, axis_in, axis_out, A, A_hack, B_hack = (_per_run(n) for n in TRAINABLE)
    fold = True
    """Training and scoring forwards may run as one Linear of the summed weight (`_fold`); `folding(False)` turns it
    off (gates that compare capture with no capture bit for bit, or a reference built on the branch)."""
    summed = True
    """False inside capture_per_sample_grads(summed=False): a capturing folded forward builds its summed weight
    outside autograd."""
    unsummed_pass = False
    """Set by such a forward, cleared when a capture starts: some pass of the capture formed no summed gradient here
    (fill_summed_grads); passes of one step may differ, since folding depends on a pass's token count."""

    def __init__(self, base: nn.Linear, cfg: AdapterConfig, name: str):
        super().__init__()
        assert isinstance(base, nn.Linear), type(base)
        self.base, self.kind, self.quarantine, self.name = base, cfg.kind, cfg.quarantine, name
        self.axis = cfg.axis
        for p in base.parameters():
            p.requires_grad_(False)
        w = base.weight
        d_out, d_in = w.shape
        full = min(d_out, d_in)
        r = full if cfg.rank in (None, -1) else cfg.rank
        assert 1 <= r <= full, f"{name}: rank {r} outside [1, {full}]"
        self.r, self.d_in, self.d_out = r, d_in, d_out
        gen = _module_generator(cfg.seed, name)
        dev = w.device
        f32 = dict(device=dev, dtype=torch.float32)
        self.svd_cache_hit = False
        self.base_digest = weight_digest(w)  # ties saved directions to this base weight
        if cfg.kind == "svd":
            k = min(2 * r, full) if cfg.quarantine == "own" else r
            u, _, vh, self.svd_cache_hit = svd_top_k(w, k, cfg.cache_dir, self.base_digest)
            if cfg.quarantine == "own":
                u, vh = own_svd_basis(u, vh, r)
            self.shifted_quarantine = cfg.quarantine == "own" and 2 * r > full  # own_svd_basis's shifted pieces
            # frozen bases: [U | U2] and [Vh ; Vh2] (k = r or 2r); recomputable, so not persistent
            self.register_buffer("U", u.to(w.dtype).contiguous(), persistent=False)
            self.register_buffer("Vh", vh.to(w.dtype).contiguous(), persistent=False)
            self.delta_S = nn.Parameter(torch.zeros(r, **f32))
            self.delta_S_hack = nn.Parameter(torch.zeros(r, **f32))
            if cfg.axis != "none":
                assert cfg.quarantine == "own", f"{name}: axis seeding needs quarantine='own'"
                # zero until seed_axis: the piece's output a_out (a_in . x) - c_out (u_in . x) is then zero
                self.register_buffer("axis_u_in", torch.zeros(d_in, **f32))
                self.register_buffer("axis_c_out", torch.zeros(d_out, **f32))
                self.axis_in = nn.Parameter(torch.zeros(d_in, **f32))
                self.axis_out = nn.Parameter(torch.zeros(d_out, **f32))
        elif cfg.kind == "lora":
            assert cfg.rank not in (None, -1), "lora needs an explicit rank"
            assert cfg.axis == "none", f"{name}: axis seeding is implemented for the svd adapter only"
            self.scale = (cfg.lora_alpha if cfg.lora_alpha is not None else r) / r
            self.register_buffer("B", random_orthonormal(d_out, r, gen).to(dev, w.dtype))
            self.A = nn.Parameter(torch.zeros(r, d_in, **f32))
            self.A_hack = nn.Parameter(torch.zeros(r, d_in, **f32))
            if cfg.quarantine == "own":
                b_hack = cfg.hack_B_scale * random_orthonormal(d_out, r, gen)
                self.B_hack = nn.Parameter(b_hack.to(**f32))
                self.register_buffer("B_hack_seed", b_hack.to(**f32).clone(), persistent=False)  # own memory
        else:
            raise ValueError(f"unknown adapter kind {cfg.kind!r}")
        self.deployed_on = True
        self.quarantine_on = True
        self.n_runs = 1
        self.active: int | None = 0  # the run whose adapter this module is; None: batched (row_runs)
        self.row_runs: Tensor | None = None  # batched mode: the run of each row of the forward's batch
        self.row_counts: list[int] | None = None  # batched mode: rows of each run (row_runs counted once, on the host)
        self._records: list[list[dict]] = [[]]  # per run, one per captured forward: its probes and block switches
        self.probe: Tensor | None = None  # armed by a capturing forward (svd: P, lora: P of A)
        self.probe_b: Tensor | None = None  # lora own: Q of B_hack
        self.merged: Tensor | list[Tensor | None] | None = None  # W + the active blocks' update (per run: a list), set by merged_weights
        self.merged_blocks: tuple[bool, bool] | None = None

    # -- runs ----------------------------------------------------------------------------------

    def add_runs(self, n: int) -> None:
        """n runs in all: runs 1..n-1 get copies of run 0's trainable tensors (call before training)."""
        assert self.n_runs == 1 and n >= 1, f"{self.name}: runs added twice or n={n}"
        for name in [t for t in TRAINABLE if t in self._parameters]:
            for r in range(1, n):
                self.register_parameter(_run_key(name, r), nn.Parameter(self._parameters[name].detach().clone()))
        self.n_runs, self._records = n, [[] for _ in range(n)]

    def run_param(self, name: str, run: int) -> nn.Parameter:
        return self._parameters[_run_key(name, run)]

    def trainable(self) -> dict[str, nn.Parameter]:
        """The active run's trainable tensors by their plain names."""
        return {n: getattr(self, n) for n in TRAINABLE if n in self._parameters}

    @property
    def records(self) -> list[dict]:
        assert self.active is not None, f"{self.name}: batched over runs; read records under active_run(model, i)"
        return self._records[self.active]

    def clear_records(self) -> None:
        """Forget the active run's captured forwards (every run's in batched mode)."""
        for r in range(self.n_runs) if self.active is None else [self.active]:
            self._records[r] = []

    # -- blocks --------------------------------------------------------------------------------

    def _axis_parameters(self, block: str) -> list[nn.Parameter]:
        return [self.axis_in, self.axis_out] if self.axis == block else []

    def deployed_parameters(self) -> list[nn.Parameter]:
        return [self.delta_S] + self._axis_parameters("deployed") if self.kind == "svd" else [self.A]

    def quarantine_parameters(self) -> list[nn.Parameter]:
        if self.kind == "svd":
            return [self.delta_S_hack] + self._axis_parameters("quarantine")
        return [self.A_hack, self.B_hack] if self.quarantine == "own" else [self.A_hack]

    def _gate(self, p: Tensor, on: bool) -> Tensor:
        return p if on else torch.zeros_like(p)

    # -- forward -------------------------------------------------------------------------------

    def forward(self, x: Float[Tensor, "*lead d_in"]) -> Float[Tensor, "*lead d_out"]:
        if self.merged is not None:
            if self.merged_blocks != (self.deployed_on, self.quarantine_on):
                raise RuntimeError(f"{self.name}: blocks switched inside merged_weights; the merged weight is stale")
            if not isinstance(self.merged, list):
                return F.linear(x, self.merged, self.base.bias)
            # merged per run (merged_weights(model, runs)): each run's rows (consecutive) through its own weight
            assert self.active is None and self.row_counts is not None, f"{self.name}: per-run merged weights need batched rows"
            parts = [(r, part) for r, part in enumerate(x.split(self.row_counts)) if part.shape[0]]
            assert all(self.merged[r] is not None for r, _ in parts), f"{self.name}: rows of a run that was not merged"
            return torch.cat([F.linear(part, self.merged[r], self.base.bias) for r, part in parts])
        if not (self.deployed_on or self.quarantine_on):
            return self.base(x)  # reference policy: exactly the base Linear
        if self._fold(x):
            # capture_per_sample_grads(summed=False): the factors get their .grad from the probes, not through the sum
            unsummed = self.probe is not None and not self.summed
            self.unsummed_pass |= unsummed  # fill_summed_grads: some pass of this capture left the factors out
            outside = torch.no_grad() if unsummed else contextlib.nullcontext()
            if self.active is not None:
                with outside:
                    w = self._folded_weight(self.active)
                y = F.linear(x, w, self.base.bias)
            else:
                self._runs_of(x)  # batched: each run's rows (consecutive) through its own summed weight
                counts = torch.bincount(self.row_runs.cpu(), minlength=self.n_runs).tolist()
                present = [r for r, c in enumerate(counts) if c]  # only the runs with rows in this forward
                with outside:
                    ws = self._folded_weights(present)
                parts = [part for part in x.split(counts) if part.shape[0]]
                y = torch.cat([F.linear(part, w, self.base.bias) for w, part in zip(ws.unbind(), parts)])
            if self.probe is None:
                return y
            self._batched(x, self.probe)
            shifted = self.shifted_quarantine and self.axis == "none"  # the quarantine's h and U from the deployed's
            with torch.no_grad():
                h = x @ (self._vh()[: self.r] if shifted else self._vh()).to(x.dtype).T  # [b, t, r or k]
            return ProbeTap.apply(y, h, self.probe, self.U[:, : self.r] if shifted else self.U, shifted)
        return self.base(x) + (self._svd(x) if self.kind == "svd" else self._lora(x))

    def _fold(self, x: Tensor) -> bool:
        """Whether this forward runs as one Linear of the summed weight W + U diag(s) Vh (+ the axis piece's
        a_out a_in^T - c_out u_in^T where it is on): autograd through the sum gives s (and a_in, a_out) their
        gradients, and a capturing forward adds ProbeTap, whose backward forms each rollout's dL/ds from the layer's
        input and output gradient. An svd adapter in float32 or float64 (in bf16 the small update would round away
        in the sum), and enough tokens that forming the sum (d_out d_in k) costs less than the branch
        (tokens x k x (d_in + d_out)): a training or scoring forward, not a decode step. Batched over runs, each
        run's rows go through its own sum."""
        if not self.fold or self.kind != "svd":
            return False
        tokens = x.numel() // self.d_in
        return x.dtype in (torch.float32, torch.float64) and tokens * (self.d_in + self.d_out) >= self.d_in * self.d_out

    def _folded_weight(self, run: int) -> Float[Tensor, "d_out d_in"]:
        w = self.base.weight + (self.U * self._s(run)) @ self._vh()
        axis_on = self.deployed_on if self.axis == "deployed" else self.quarantine_on
        if self.axis == "none" or not axis_on:
            return w
        live = torch.outer(self.run_param("axis_out", run), self.run_param("axis_in", run))
        return w + live - torch.outer(self.axis_c_out, self.axis_u_in)

    # The *_runs forms below are the batched mode's: the same arithmetic as the one-run forms above for several runs
    # at once, in a number of operations that does not grow with the runs (most a kernel launch on a GPU). The one-run
    # forms stay as they are: a run alone (and a compiled layer, which only a run alone has) computes what it did before.

    def _folded_weights(self, runs: list[int]) -> Float[Tensor, "n d_out d_in"]:
        """_folded_weight of each of `runs`."""
        w = self.base.weight + (self.U * self._s_runs(runs)[:, None, :]) @ self._vh()
        axis_on = self.deployed_on if self.axis == "deployed" else self.quarantine_on
        if self.axis == "none" or not axis_on:
            return w
        live = self._stacked("axis_out", runs)[:, :, None] * self._stacked("axis_in", runs)[:, None, :]
        return w + live - torch.outer(self.axis_c_out, self.axis_u_in)

    @torch.no_grad()
    def dense_update(self) -> Float[Tensor, "d_out d_in"]:
        """The active blocks' contribution as one matrix (float32): the branch applied to the identity,
        so it is exactly what forward adds, whatever the adapter kind, quarantine structure or axis."""
        eye = torch.eye(self.d_in, device=self.base.weight.device, dtype=torch.float32)
        return (self._svd(eye) if self.kind == "svd" else self._lora(eye)).T

    def arm(self, b: int) -> None:
        """Zero probes for a forward of b rollouts, and their record (nothing when both blocks are off); in batched
        mode one record per run with rows in the batch, in that run's records."""
        if not (self.deployed_on or self.quarantine_on):
            return
        dev, f32 = self.base.weight.device, torch.float32

        def shapes(n: int) -> list[tuple[int, ...]]:
            if self.kind == "svd":
                return [(n, self.r * (1 if self.quarantine == "shared" else 2))]
            return [(n, self.r * (1 if self.quarantine == "shared" else 2), self.d_in)] + (
                [(n, self.d_out, self.r)] if self.quarantine == "own" else [])

        assert self.probe is None, f"{self.name}: armed twice (a capturing forward inside another)"
        if self.active is not None:
            parts = [(self.active, b)]
        else:
            assert self.row_runs.shape[0] == b, f"{self.name}: batch of {b} rows, {self.row_runs.shape[0]} run labels"
            parts = [(r, c) for r, c in enumerate(torch.bincount(self.row_runs.cpu(), minlength=self.n_runs).tolist())
                     if c]
        armed = []
        for run, n in parts:
            # a zero scalar expanded: no memory for the zeros; the .grad backward leaves is dense
            probes = [torch.zeros((), device=dev, dtype=f32).expand(sh).requires_grad_() for sh in shapes(n)]
            self._records[run].append(dict(batch=n, probes=probes, deployed_on=self.deployed_on,
                                           quarantine_on=self.quarantine_on))
            armed.append(probes)
        self.probe = armed[0][0] if len(armed) == 1 else torch.cat([a[0] for a in armed])
        if len(armed[0]) > 1:
            self.probe_b = armed[0][1] if len(armed) == 1 else torch.cat([a[1] for a in armed])

    def disarm(self) -> None:
        self.probe, self.probe_b = None, None

    def _batched(self, x: Tensor, probe: Tensor) -> None:
        assert x.ndim == 3 and x.shape[0] == probe.shape[0], (
            f"{self.name}: capture needs [batch, time, d_in] inputs of the armed batch {probe.shape[0]}, "
            f"got {tuple(x.shape)}")

    def _by_row(self, per_run: Tensor) -> Tensor:
        """Batched mode: each row's run's tensor, [rows, *shape], from every run's [runs, *shape]."""
        return per_run[self.row_runs]

    def _stacked(self, name: str, runs: list[int] | None = None) -> Tensor:
        """Trainable tensor `name` of `runs` (all runs when None), [runs, *shape]: one stack, however many runs."""
        return torch.stack([self.run_param(name, r) for r in (range(self.n_runs) if runs is None else runs)])

    def _runs_of(self, x: Tensor) -> None:
        assert x.ndim == 3 and x.shape[0] == self.row_runs.shape[0], (
            f"{self.name}: batched over runs needs [batch, time, d_in] inputs of {self.row_runs.shape[0]} rows, "
            f"got {tuple(x.shape)}")

    def _s(self, run: int) -> Float[Tensor, " k"]:
        """Run `run`'s singular-value offsets as the forward uses them (blocks gated; shared: summed)."""
        dS = self._gate(self.run_param("delta_S", run), self.deployed_on)
        dSh = self._gate(self.run_param("delta_S_hack", run), self.quarantine_on)
        return dS + dSh if self.quarantine == "shared" else torch.cat([dS, dSh])

    def _s_runs(self, runs: list[int] | None = None) -> Float[Tensor, "n k"]:
        """_s of `runs` (all runs when None), formed together."""
        dS = self._gate(self._stacked("delta_S", runs), self.deployed_on)
        dSh = self._gate(self._stacked("delta_S_hack", runs), self.quarantine_on)
        return dS + dSh if self.quarantine == "shared" else torch.cat([dS, dSh], 1)

    def _svd(self, x: Float[Tensor, "*lead d_in"]) -> Float[Tensor, "*lead d_out"]:
        h = x @ self._vh().to(x.dtype).T  # [*, k]
        if self.active is not None:
            z = h * self._s(self.active).to(x.dtype)
        else:
            self._runs_of(x)
            z = h * self._by_row(self._s_runs()).to(x.dtype)[:, None, :]
        if self.probe is not None:  # capturing: + h P_b (zero), its grad the rollout's dL/ds, formed in float32
            self._batched(x, self.probe)  # (a term of its own: s's gradient is summed as without capture)
            z = z + (h.float() * self.probe[:, None, :]).to(x.dtype)
        y = z @ self.U.to(x.dtype).T
        axis_on = self.deployed_on if self.axis == "deployed" else self.quarantine_on
        return y + self._axis_piece(x) if self.axis != "none" and axis_on else y

    def _vh(self) -> Float[Tensor, "k d_in"]:
        """Vh, with the rows of the block that does not hold the axis piece projected off u_in."""
        if self.axis == "none":
            return self.Vh
        u = self.axis_u_in.to(self.Vh.dtype)
        dep, quar = self.Vh[: self.r], self.Vh[self.r :]
        if self.axis == "quarantine":
            dep = dep - (dep @ u)[:, None] * u[None]
        else:
            quar = quar - (quar @ u)[:, None] * u[None]
        return torch.cat([dep, quar])

    def _axis_piece(self, x: Float[Tensor, "*lead d_in"]) -> Float[Tensor, "*lead d_out"]:
        """a_out (a_in . x) - c_out (u_in . x): the trainable rank-one piece minus its frozen seed."""
        dt = x.dtype
        seed = (x @ self.axis_u_in.to(dt))[..., None] * self.axis_c_out.to(dt)
        if self.active is not None:
            live = (x @ self.axis_in.to(dt))[..., None] * self.axis_out.to(dt)
        else:
            a_in = self._by_row(self._stacked("axis_in")).to(dt)
            a_out = self._by_row(self._stacked("axis_out")).to(dt)
            live = torch.einsum("btd,bd->bt", x, a_in)[..., None] * a_out[:, None, :]
        return live - seed

    def _lora_weights(self, run: int, dt: torch.dtype) -> tuple[Tensor, Tensor]:
        """Run `run`'s (A [k, d_in], B [d_out, k]) as the forward uses them (blocks gated; shared: A summed)."""
        A = self._gate(self.run_param("A", run), self.deployed_on)
        Ah = self._gate(self.run_param("A_hack", run), self.quarantine_on)
        if self.quarantine == "shared":
            return (A + Ah).to(dt), self.B.to(dt)
        return torch.cat([A, Ah], 0).to(dt), torch.cat([self.B.to(dt), self.run_param("B_hack", run).to(dt)], 1)

    def _lora_weights_runs(self, runs: list[int] | None, dt: torch.dtype) -> tuple[Tensor, Tensor]:
        """_lora_weights of `runs` (all runs when None), formed together: ([n, k, d_in], [n, d_out, k])."""
        A = self._gate(self._stacked("A", runs), self.deployed_on)
        Ah = self._gate(self._stacked("A_hack", runs), self.quarantine_on)
        B = self.B.to(dt).expand(A.shape[0], *self.B.shape)
        if self.quarantine == "shared":
            return (A + Ah).to(dt), B
        return torch.cat([A, Ah], 1).to(dt), torch.cat([B, self._stacked("B_hack", runs).to(dt)], 2)

    def _lora(self, x: Float[Tensor, "*lead d_in"]) -> Float[Tensor, "*lead d_out"]:
        if self.active is not None:
            a_w, b_w = self._lora_weights(self.active, x.dtype)
            a = x @ a_w.T  # [*, k]
        else:
            self._runs_of(x)
            a_all, b_all = self._lora_weights_runs(None, x.dtype)
            a_rows, b_rows = self._by_row(a_all), self._by_row(b_all)
            a = torch.einsum("btd,bkd->btk", x, a_rows)
        if self.probe is not None:  # capturing: + x P_b^T (zero), its grad the rollout's dL/dA
            self._batched(x, self.probe)
            a = a + torch.einsum("bti,bki->btk", x.float(), self.probe).to(x.dtype)
        u = a @ b_w.T if self.active is not None else torch.einsum("btk,bok->bto", a, b_rows)  # [*, d_out]
        if self.probe_b is not None:  # + a_hack Q_b^T (zero), its grad the rollout's dL/dB_hack
            u = u + torch.einsum("btr,bor->bto", a[..., self.r:].float(), self.probe_b).to(x.dtype)
        return u * self.scale

    # -- per-rollout gradients -----------------------------------------------------------------

    def _record_grads(self, rec: dict) -> tuple[Tensor, Tensor]:
        """(deployed [b, P_d], quarantine [b, P_q]) of one captured forward; an off block gets 0."""
        b, r = rec["batch"], self.r
        assert self.axis == "none", f"{self.name}: per-rollout gradients of the axis piece are not formed"
        assert all(p.grad is not None for p in rec["probes"]), f"{self.name}: a captured forward got no backward"
        g = rec["probes"][0].grad
        if self.kind == "svd":
            dep, quar = (g, g) if self.quarantine == "shared" else (g[:, :r], g[:, r:])
        elif self.quarantine == "shared":
            dep, quar = g.flatten(1), g.flatten(1)
        else:
            dep = g[:, :r].flatten(1)
            quar = torch.cat([g[:, r:].flatten(1), rec["probes"][1].grad.flatten(1)], 1)
        if not rec["deployed_on"]:
            dep = torch.zeros_like(dep)
        if not rec["quarantine_on"]:
            quar = torch.zeros_like(quar)
        assert dep.shape[0] == b and quar.shape[0] == b
        return dep, quar

    def per_sample_grads(self) -> dict[str, Float[Tensor, "b p"]]:
        """Per-rollout gradients of the captured forwards (concatenated in forward order),
        flattened in the order of deployed_parameters() / quarantine_parameters()."""
        assert self.records, f"{self.name}: nothing captured"
        pairs = [self._record_grads(rec) for rec in self.records]
        return dict(
            deployed=torch.cat([d for d, _ in pairs]), quarantine=torch.cat([q for _, q in pairs])
        )

    def extra_repr(self) -> str:
        return f"kind={self.kind}, r={self.r}, quarantine={self.quarantine}"


# ---------------------------------------------------------------------------------------------
# model-level helpers


def wrap_model(model: nn.Module, cfg: AdapterConfig) -> dict[str, AdaptedLinear]:
    """Freeze every parameter of model and replace each targeted nn.Linear by an AdaptedLinear."""
    assert not adapter_modules(model), "model is already wrapped"
    pattern = re.compile(cfg.targets)
    names = [
        n for n, m in model.named_modules()
        if isinstance(m, nn.Linear) and pattern.search(n) and not NEVER_TARGET.search(n)
    ]
    assert names, f"no nn.Linear matches {cfg.targets!r}"
    for p in model.parameters():
        p.requires_grad_(False)
    adapters = {}
    for name in tqdm(names, desc="svd of targeted weights", disable=cfg.kind != "svd" or len(names) < 16):
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        adapters[name] = AdaptedLinear(getattr(parent, child), cfg, name)
        setattr(parent, child, adapters[name])
    model.adapter_config = cfg
    return adapters


def adapter_modules(model: nn.Module) -> dict[str, AdaptedLinear]:
    return {n: m for n, m in model.named_modules() if isinstance(m, AdaptedLinear)}


@contextlib.contextmanager
def folding(on: bool) -> Iterator[None]:
    """Inside: AdaptedLinear.fold = on (every model)."""
    was = AdaptedLinear.fold
    AdaptedLinear.fold = on
    try:
        yield
    finally:
        AdaptedLinear.fold = was


def add_runs(model: nn.Module, n: int) -> None:
    """Give every adapter n runs (copies of run 0's trainable tensors, taken now: call before training)."""
    for m in adapter_modules(model).values():
        m.add_runs(n)
    model.n_runs = n


def n_runs(model: nn.Module) -> int:
    return getattr(model, "n_runs", 1)


@contextlib.contextmanager
def _mode(model: nn.Module, active: int | None, row_runs: Tensor | None, row_counts: list[int] | None = None
          ) -> Iterator[None]:
    mods = list(adapter_modules(model).values())
    saved = [(m.active, m.row_runs, m.row_counts) for m in mods]
    try:
        for m in mods:
            m.active, m.row_runs, m.row_counts = active, row_runs, row_counts
        yield
    finally:
        for m, (a, rr, rc) in zip(mods, saved):
            m.active, m.row_runs, m.row_counts = a, rr, rc


def active_run(model: nn.Module, run: int) -> contextlib.AbstractContextManager:
    """Inside: every adapter is run `run`'s alone (its tensors, records, state dict; forwards use it for all rows)."""
    assert 0 <= run < n_runs(model), f"run {run} of a model with {n_runs(model)} runs"
    return _mode(model, run, None)


def batched_rows(model: nn.Module, run_of_row: Tensor) -> contextlib.AbstractContextManager:
    """Inside: a forward's row b goes through the adapter of run run_of_row[b] (rows sorted by run)."""
    assert run_of_row.ndim == 1 and run_of_row.dtype == torch.long, run_of_row
    assert bool((run_of_row[1:] >= run_of_row[:-1]).all()), "batched rows must be sorted by run"
    assert len(run_of_row) == 0 or 0 <= int(run_of_row[0]) and int(run_of_row[-1]) < n_runs(model), "run index"
    dev = next(iter(adapter_modules(model).values())).base.weight.device
    counts = torch.bincount(run_of_row.cpu(), minlength=n_runs(model)).tolist()
    return _mode(model, None, run_of_row.to(dev), counts)


def _axis_seeds(m: "AdaptedLinear") -> list[tuple[nn.Parameter, Tensor]]:
    """(a_in, u_in) and (a_out, W u_in) of a module's seeded axis piece (none without an axis)."""
    return [(m.axis_in, m.axis_u_in), (m.axis_out, m.axis_c_out)] if m.kind == "svd" and m.axis != "none" else []


def decay_anchors(model: nn.Module) -> list[tuple[nn.Parameter, Tensor]]:
    """(parameter, its seed) for every trainable adapter tensor that does not start at 0: the axis piece's a_in and
    a_out (seeds u_in and W u_in, read live, so a later seed_axis counts) and the own-basis LoRA B_hack. Weight decay
    pulls these toward their seed (no update), not toward 0 (grpo.Trainer.decay_to_seed)."""
    out = []
    for m in adapter_modules(model).values():
        out += _axis_seeds(m)
        if m.kind == "lora" and m.quarantine == "own":
            out.append((m.B_hack, m.B_hack_seed))
    return out


def axis_params(model: nn.Module) -> list[nn.Parameter]:
    """The seeded axis pieces' trainable a_in and a_out, in module order."""
    return [p for m in adapter_modules(model).values() for p, _ in _axis_seeds(m)]


def deployed_params(model: nn.Module) -> list[nn.Parameter]:
    return [p for m in adapter_modules(model).values() for p in m.deployed_parameters()]


def quarantine_params(model: nn.Module) -> list[nn.Parameter]:
    return [p for m in adapter_modules(model).values() for p in m.quarantine_parameters()]


@contextlib.contextmanager
def _blocks(model: nn.Module, deployed: bool | None, quarantine: bool | None) -> Iterator[None]:
    mods = list(adapter_modules(model).values())
    assert mods, "model has no adapters"
    saved = [(m.deployed_on, m.quarantine_on) for m in mods]
    try:
        for m in mods:
            m.deployed_on = m.deployed_on if deployed is None else deployed
            m.quarantine_on = m.quarantine_on if quarantine is None else quarantine
        yield
    finally:
        for m, (d, q) in zip(mods, saved):
            m.deployed_on, m.quarantine_on = d, q


@torch.no_grad()
def merged_weight(m: AdaptedLinear) -> Float[Tensor, "d_out d_in"]:
    """W plus the active blocks' update (AdaptedLinear.dense_update, in float32), in W's dtype: what a merged layer
    multiplies by (merged_weights; loop/sample_cache.py hashes it)."""
    w = m.base.weight
    return (w.float() + m.dense_update()).to(w.dtype)


@contextlib.contextmanager
def merged_weights(model: nn.Module, runs: Sequence[int] | None = None) -> Iterator[None]:
    """Inside: every adapted layer with an active block runs as one Linear whose weight is W plus that
    update (for decoding: one matmul per layer instead of three). Costs one more copy of the adapted
    weights (one per run in `runs`); no gradients flow; switching blocks inside is an error (the merged weight would
    be stale). runs: the runs of a batched model to merge, each under active_run (so each is the weight the run alone
    would merge); inside batched_rows each run's rows go through its own, and rows of another run are an error."""
    mods = [m for m in adapter_modules(model).values() if m.deployed_on or m.quarantine_on]
    try:
        for m in mods:
            m.merged_blocks = (m.deployed_on, m.quarantine_on)
            m.merged = merged_weight(m) if runs is None else [None] * n_runs(model)
        for r in sorted(set(runs or ())):
            with active_run(model, r):
                for m in mods:
                    m.merged[r] = merged_weight(m)
        yield
    finally:
        for m in mods:
            m.merged, m.merged_blocks = None, None


def reference_policy(model: nn.Module) -> contextlib.AbstractContextManager:
    """Both blocks off: the model computes exactly the base model."""
    return _blocks(model, deployed=False, quarantine=False)


def deployment_ablation(model: nn.Module) -> contextlib.AbstractContextManager:
    """Quarantine block off: the model that would be deployed."""
    return _blocks(model, deployed=None, quarantine=False)


def adapter_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """Trainable adapter tensors and the frozen LoRA B (SVD bases are recomputed from W)."""
    out = {}
    for name, m in adapter_modules(model).items():
        for pname, p in m.trainable().items():  # the active run's
            out[f"{name}.{pname}"] = p.detach().clone()
        if m.kind == "lora":
            out[f"{name}.B"] = m.B.detach().clone()
        if m.axis != "none":
            out[f"{name}.axis_u_in"] = m.axis_u_in.detach().clone()
            out[f"{name}.axis_c_out"] = m.axis_c_out.detach().clone()
    return out


def load_adapter_state_dict(model: nn.Module, state: dict[str, Tensor]) -> None:
    own = adapter_state_dict(model)
    assert set(own) == set(state), f"adapter keys differ: {sorted(set(own) ^ set(state))[:5]}"
    mods = adapter_modules(model)
    with torch.no_grad():
        for key, t in state.items():
            name, _, attr = key.rpartition(".")
            dst = getattr(mods[name], attr)
            assert dst.shape == t.shape, (key, dst.shape, t.shape)
            if attr == "B":
                assert torch.equal(dst, t.to(dst)), f"{key}: frozen B differs (other seed?)"
            else:
                dst.copy_(t)


def identity(model: nn.Module) -> str:
    """kind, rank, quarantine, seed, a digest of the wrapped base weights, and every adapter's name
    and block shapes; a v_hack saved with a different identity does not belong to this model. The LoRA scale
    (lora_alpha / r) is not part of it: it multiplies every module's update, and so every rollout's gradient, by one
    number, which leaves a v_hack direction and every cosine to it unchanged."""
    cfg = model.adapter_config
    mods = adapter_modules(model)
    axis = {} if cfg.axis == "none" else dict(axis=cfg.axis)  # absent for unseeded adapters (older files match)
    base = hashlib.sha256("".join(m.base_digest for m in mods.values()).encode()).hexdigest()[:16]
    return json.dumps(
        dict(
            kind=cfg.kind, rank=cfg.rank, quarantine=cfg.quarantine, seed=cfg.seed, base=base, **axis,
            modules=[
                [n, [list(p.shape) for p in m.deployed_parameters()],
                 [list(p.shape) for p in m.quarantine_parameters()]]
                for n, m in mods.items()
            ],
        ),
        sort_keys=True,
    )


@torch.no_grad()
def seed_axis(model: nn.Module, u_in: dict[str, Float[Tensor, " d_in"]]) -> dict[str, float]:
    """Seeded absorption: per adapter, u = unit(u_in[name]), u_out = unit(W u), s = |W u|; the axis piece's
    trainable a_in = u, a_out = s u_out and its frozen seed the same, so the adapter's output is unchanged.
    Returns s per module."""
    mods = adapter_modules(model)
    assert set(u_in) == set(mods), f"contrast modules differ from the adapters: {sorted(set(u_in) ^ set(mods))[:3]}"
    gains = {}
    for n, m in mods.items():
        assert m.axis != "none", f"{n}: adapter built without an axis (AdapterConfig.axis)"
        u = u_in[n].float().to(m.axis_u_in.device)
        assert float(u.norm()) > 0, f"{n}: zero input contrast"
        u = u / u.norm()
        wu = m.base.weight.float() @ u
        s = float(wu.norm())
        assert s > 0, f"{n}: W u_in = 0"
        for t, v in ((m.axis_u_in, u), (m.axis_in, u), (m.axis_c_out, wu), (m.axis_out, wu)):
            t.copy_(v)
        gains[n] = s
    return gains


def config_dict(model: nn.Module) -> dict:
    return asdict(model.adapter_config)


# ---------------------------------------------------------------------------------------------
# per-rollout gradients from one batched backward


@contextlib.contextmanager
def capture_per_sample_grads(model: nn.Module, summed: bool = True) -> Iterator[dict[str, AdaptedLinear]]:
    """Forwards of `model` (with grad enabled) inside arm zero probes whose .grad after the backward is
    each rollout's gradient. Clears earlier records on entry; records stay readable after exit until the
    next capture or clear_captured(). summed=False: the caller writes every trainable factor's .grad from the
    per-rollout gradients (write_routed_grads), so the backward need not form the summed gradient: a folded
    forward then builds its summed weight outside autograd, and the backward skips that weight's gradient (a
    d_out x d_in product over every token) and leaves the factors' .grad None; the values, the probes' gradients and
    the gradient to the layer's input stay the same, bit for bit."""
    mods = adapter_modules(model)
    assert mods, "model has no adapters"
    # checkpoint recomputation would run the forward again with the probes disarmed
    assert not any(getattr(m, "gradient_checkpointing", False) for m in model.modules()), (
        "capture does not support gradient checkpointing"
    )

    def arm(_module, args, kwargs) -> None:
        if torch.is_grad_enabled():
            x = kwargs.get("input_ids", kwargs.get("inputs_embeds", args[0] if args else None))
            assert isinstance(x, Tensor), "capture: the model's forward needs input_ids or inputs_embeds [batch, ...]"
            for m in mods.values():
                m.arm(x.shape[0])

    def disarm(*_) -> None:
        for m in mods.values():
            m.disarm()

    for m in mods.values():
        m.clear_records()
        m.summed, m.unsummed_pass = summed, False
    hooks = [model.register_forward_pre_hook(arm, with_kwargs=True),
             model.register_forward_hook(disarm, always_call=True)]  # also after a forward that raised
    model._pgrpo_capturing = True
    try:
        yield mods
    finally:
        for h in hooks:
            h.remove()
        disarm()
        for m in mods.values():
            m.summed = True
        model._pgrpo_capturing = False


def capturing(model: nn.Module) -> bool:
    """Whether a capture_per_sample_grads context is open on `model` (its forwards arm probes)."""
    return getattr(model, "_pgrpo_capturing", False)


def clear_captured(model: nn.Module) -> None:
    for m in adapter_modules(model).values():
        m.clear_records()


def per_sample_grads(model: nn.Module) -> dict[str, dict[str, Float[Tensor, "b p"]]]:
    return {n: m.per_sample_grads() for n, m in adapter_modules(model).items()}


def per_sample_grad_matrix(model: nn.Module) -> dict[str, Float[Tensor, "b p"]]:
    """All modules' per-rollout gradients concatenated in the order of deployed_params() and
    quarantine_params(): dict(deployed=[b, P_d], quarantine=[b, P_q])."""
    g = per_sample_grads(model).values()
    return dict(
        deployed=torch.cat([d["deployed"] for d in g], 1),
        quarantine=torch.cat([d["quarantine"] for d in g], 1),
    )


def _write_block(params: list[nn.Parameter], G: Float[Tensor, "b p"], w: Float[Tensor, " b"], any_w: bool) -> None:
    if not any_w:
        for p in params:
            p.grad = None  # untouched by AdamW, weight decay included
        return
    flat = w.to(G) @ G
    assert flat.numel() == sum(p.numel() for p in params)
    for p, g in zip(params, flat.split([p.numel() for p in params])):
        p.grad = g.view_as(p).to(p.dtype).clone()


def fill_summed_grads(model: nn.Module) -> int:
    """After a backward under capture_per_sample_grads(summed=False): in each module where some pass folded without
    the summed gradient (unsummed_pass), the deployed factors' .grad becomes the sum of their per-rollout gradients,
    the gradient of the summed loss over every pass (it replaces what passes that did not fold left). Modules where
    no pass folded (bf16, LoRA, few tokens) keep the backward's. Returns the number of modules filled."""
    filled = 0
    for m in adapter_modules(model).values():
        params = m.deployed_parameters()
        if m.unsummed_pass:
            G = m.per_sample_grads()["deployed"]
            _write_block(params, G, torch.ones(G.shape[0]), True)
            filled += 1
    return filled


def write_routed_grads(
    model: nn.Module, w_deployed: Float[Tensor, " b"], w_quarantine: Float[Tensor, " b"]
) -> None:
    """param.grad = sum_b w_b G_b for the deployed block (weights w_deployed) and the quarantine
    block (w_quarantine) of every adapter. A block whose weights are all zero gets grad None.
    Overwrites whatever backward left in .grad. The per-rollout gradients are formed one module at a time."""
    assert w_deployed.shape == w_quarantine.shape and w_deployed.ndim == 1
    any_dep, any_quar = bool((w_deployed != 0).any()), bool((w_quarantine != 0).any())
    for m in adapter_modules(model).values():
        g = m.per_sample_grads()
        assert g["deployed"].shape[0] == w_deployed.shape[0], (g["deployed"].shape, w_deployed.shape)
        _write_block(m.deployed_parameters(), g["deployed"], w_deployed, any_dep)
        _write_block(m.quarantine_parameters(), g["quarantine"], w_quarantine, any_quar)
