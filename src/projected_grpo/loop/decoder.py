"""A fast batched rollout decoder through the adapters; transformers' `generate` stays the reference.

    out = decode(model, prompts, temperature=1.0, max_new_tokens=1536, eos_id=..., pad_id=...)
    out.tokens     completion ids per prompt, cut after the first EOS (as sampling.sample returns them)
    out.logprobs   per-token log p(token) under the policy at temperature 1 (float32), same cut

How it works:
- Shared prompts (`share_prompts`, default on): when the prompts come as runs of equal prompts (a GRPO
  group repeats each prompt G times; G is the gcd of the runs' lengths), each G rows are one *group*: its prompt is prefilled once and its K/V
  is stored once per group, and each row keeps its own K/V of its new tokens. A decode step attends in
  two parts (cascade_attention): the G rows' queries over the group's prompt, read once per group, and
  each row over its own new tokens; the two softmax parts are merged exactly through their
  log-sum-exps. Without equal runs G = 1: every row has one cache row for prompt and new tokens.
- Groups are left-padded into waves of equal size. The wave size fills the free accelerator memory
  with the KV cache (`plan_waves`).
- The caches are preallocated per layer as [groups or rows, kv_heads, length, head_dim] with a boolean
  mask of filled columns. Positions are HF generate's: cumsum of the attention mask minus 1.
- One step runs the model's own modules (embedding, norms, q/k/v/o projections, which may be
  AdaptedLinear with either block on or off, q_norm/k_norm, rotary embedding, MLP, lm_head). With
  `merge` (default) each adapted layer's active blocks are folded into its weight for the whole
  decode (adapters.merged_weights), so a projection is one matmul; a layer's q/k/v projections, and its
  MLP's gate/up projections, then run as one matmul each (fused_projections). Only the attention over the cache
  is written here (`attention`: sdpa, or batched matmuls in decode steps): without shared prompts
  F.scaled_dot_product_attention over the filled prefix [0, S) of the cache, with grouped-query heads
  folded into the query-length axis (no K/V copy); with shared prompts, for each part, an SDPA kernel that
  also returns the log-sum-exp (on CUDA cuDNN's fused attention, on the CPU its flash kernel). The mask becomes an additive bias once per
  forward, shared by the layers. S is the current length rounded up to `bucket`, so a step reads about
  the filled part of the cache.
- On CUDA (mode "graph") one CUDA graph per bucket S is captured at its first use and replayed
  for every later step of that bucket (static buffers for ids, positions, column, mask and logits).
  A decode step writes only the cache column it was given, so the warm-up run before a capture
  and the replay write the same values.
- Sampling as transformers' generate does it (float32 logits; temperature, then top-k, then top-p
  as its logits warpers; softmax; torch.multinomial on the global generator; a finished row gets
  the pad id), one multinomial call per step over the whole wave: with the same seed and the same
  batch the draws are the same. Generation of a wave stops when every row has emitted EOS.

Supported: decoder-only Llama-family attention (llama, qwen2, qwen3): full attention, no sliding
window, rotary embedding without dynamic scaling.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
from dataclasses import dataclass
from typing import Callable, Iterator, Literal

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn

from projected_grpo.method import adapters as ad
from projected_grpo.loop.models import compiled, log_softmax_at, shape_checks_off

SUPPORTED = ("llama", "qwen2", "qwen3")


@dataclass
class DecodeConfig:
    """How the fast decoder runs (not what it samples)."""

    mode: Literal["auto", "graph", "eager"] = "auto"
    """graph: CUDA graphs of the decode step (CUDA only); eager: the same step without graphs;
    auto: graph on CUDA, eager elsewhere."""
    bucket: int = 128
    """attention reads the cache prefix (with shared prompts: each row's own new tokens) rounded up to a
    multiple of this many columns (one CUDA graph per multiple); a shared prompt is read whole"""
    max_batch: int = 0
    """rows per wave, in whole groups with shared prompts (at least one group); 0 = as many as the KV cache
    fits in mem_frac of the free memory (CUDA), all (CPU)"""
    mem_frac: float = 0.95
    """fraction of the free accelerator memory (after emptying the allocator's cache) the KV cache and sampling
    buffers may take; 0.95 fits a 4B-shaped step's 256 rows x (600 + 1536) tokens with shared prompts in one
    wave on an H100 (peak 72.3 of 79.2 GiB; docs/results/2026-11-24_issue15_cascade), 0.85 needed two; measured
    on that one shape only"""
    prefill_rows: int = 16
    """rows per prefill forward (bounds prefill activation memory)"""
    logprobs: bool = False
    """also return each sampled token's log-probability at temperature 1"""
    merge: bool = True
    """decode with each adapted layer's active blocks folded into its weight (adapters.merged_weights):
    one matmul per layer instead of three, for one more copy of the adapted weights; fully adapted layers' q/k/v
    and gate/up then run as one matmul each"""
    attention: Literal["sdpa", "matmul", "efficient"] = "sdpa"
    """decode-step attention over the cache: sdpa (F.scaled_dot_product_attention with the mask) or
    matmul (two batched matmuls per kv head, masked softmax between them); prefill always uses sdpa.
    With shared prompts each part needs its log-sum-exp: sdpa then runs cuDNN's fused attention on CUDA
    (the CPU's flash kernel elsewhere); efficient runs the fused memory-efficient kernel instead (CUDA)"""
    fuse: bool = True
    """with merge: run each fully adapted layer's q/k/v, and its gate/up, as one matmul each (fused_projections)"""
    compile: bool = False
    """torch.compile each layer's work around the attention (norms, projections, q/k norms, rotary embedding;
    output projection, MLP; the merge of shared prompts' two parts) into fused kernels; the attention kernels
    over the cache stay as written here. The first decode of each variant (blocks, adapter structure) in a
    process pays the compile time"""
    share_prompts: bool = True
    """rows whose prompts come as runs of G equal prompts (the same G for every prompt) share one prefill
    and one copy of the prompt's KV cache; otherwise (or False) every row has its own"""


@dataclass
class Decoded:
    tokens: list[list[int]]
    logprobs: list[list[float]] | None
    waves: int
    batch: int
    """rows per wave"""
    group: int = 1
    """rows per shared prompt (1: no sharing)"""
    fused: int = 0
    """projection groups run as one matmul (q/k/v, gate/up: two per fully adapted layer when merged)"""


# ---- the model's pieces ---------------------------------------------------------------------------

@dataclass
class Arch:
    """The modules and sizes of a Llama-family causal LM that the step uses."""

    embed: nn.Module
    layers: nn.ModuleList
    norm: nn.Module
    lm_head: nn.Module
    rotary: nn.Module
    apply_rope: object
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    attention_inputs: Callable
    """attention_inputs, or its torch.compile'd version (DecodeConfig.compile)"""
    layer_output: Callable
    """layer_output, or its torch.compile'd version"""
    merge_parts: Callable
    """merge_parts, or its torch.compile'd version"""
    fused: list[tuple[Fused | None, Fused | None]] = dataclasses.field(default_factory=list)
    """per layer, its (q/k/v, gate/up) projections fused into one matmul each (fused_projections), or None"""


@dataclass
class Fused:
    """Several projections that read the same input as one Linear: weight [sum of outputs, d_in], their biases
    concatenated (or None), and each projection's output width."""

    weight: Tensor
    bias: Tensor | None
    sizes: tuple[int, ...]

    def __call__(self, h: Tensor) -> tuple[Tensor, ...]:
        return F.linear(h, self.weight, self.bias).split(self.sizes, dim=-1)


def arch_of(model: nn.Module, compile: bool = False) -> Arch:
    cfg = model.config
    assert cfg.model_type in SUPPORTED, f"fast decoder supports {SUPPORTED}, not {cfg.model_type!r}"
    assert all(t == "full_attention" for t in (getattr(cfg, "layer_types", None) or ["full_attention"])), \
        "sliding-window layers are not supported"
    assert not getattr(cfg, "use_sliding_window", False), "sliding window is not supported"
    assert (getattr(cfg, "pretraining_tp", 1) or 1) == 1, "pretraining_tp > 1 is not supported"
    rope = getattr(model.model.rotary_emb, "rope_type", "default")
    assert "dynamic" not in rope, f"rope type {rope!r} changes with the sequence length; not supported"
    attn = model.model.layers[0].self_attn
    return Arch(embed=model.model.embed_tokens, layers=model.model.layers, norm=model.model.norm,
                lm_head=model.lm_head, rotary=model.model.rotary_emb,
                apply_rope=sys.modules[type(attn).__module__].apply_rotary_pos_emb,
                heads=cfg.num_attention_heads, kv_heads=cfg.num_key_value_heads, head_dim=attn.head_dim,
                vocab=model.lm_head.weight.shape[0],
                attention_inputs=compiled(attention_inputs) if compile else attention_inputs,
                layer_output=compiled(layer_output) if compile else layer_output,
                merge_parts=compiled(merge_parts) if compile else merge_parts)


def kv_bytes_per_token(arch: Arch, dtype: torch.dtype) -> int:
    return len(arch.layers) * 2 * arch.kv_heads * arch.head_dim * torch.finfo(dtype).bits // 8


# ---- attention over the cache ---------------------------------------------------------------------

def attention_bias(mask: Bool[Tensor, "b t s"], rep: int, dtype: torch.dtype) -> Float[Tensor, "b 1 q s"]:
    """The additive mask (0 where attended, -inf elsewhere) with each kv head's query heads folded into the
    query axis as gqa_attention folds q: q = (head, t). Built once per forward and shared by the layers."""
    b, t, s = mask.shape
    m = mask[:, None, None].expand(b, 1, rep, t, s).reshape(b, 1, rep * t, s)
    return torch.zeros(m.shape, dtype=dtype, device=m.device).masked_fill_(~m, -float("inf"))


def gqa_attention(q: Float[Tensor, "b h t d"], k: Float[Tensor, "b g s d"], v: Float[Tensor, "b g s d"],
                  bias: Float[Tensor, "b 1 q s"], scale: float, kernel: str = "sdpa") -> Float[Tensor, "b t hd"]:
    """Softmax attention of each query head over its key/value head (head i uses kv head i // (h/g))."""
    b, h, t, d = q.shape
    g = k.shape[1]
    qg = q.reshape(b, g, h // g * t, d)
    if kernel != "matmul":
        o = F.scaled_dot_product_attention(qg, k, v, attn_mask=bias, scale=scale)
    else:  # reads K and V once each; the scores of rep * t queries per kv head are small in decoding
        scores = torch.matmul(qg, k.transpose(-1, -2)).float() * scale + bias
        o = torch.matmul(scores.softmax(-1).to(v.dtype), v)
    return o.reshape(b, h, t, d).transpose(1, 2).reshape(b, t, h * d)


def partial_attention(q: Float[Tensor, "b g q d"], k: Float[Tensor, "b g s d"], v: Float[Tensor, "b g s d"],
                      bias: Float[Tensor, "#b 1 #q s"], scale: float, kernel: str) -> tuple[Tensor, Float[Tensor, "b g q"]]:
    """Softmax attention over one part of the keys and its log-sum-exp (float32) per query, so that parts
    can be merged exactly (merge_parts)."""
    if kernel == "matmul":
        scores = torch.matmul(q, k.transpose(-1, -2)).float() * scale + bias
        lse = torch.logsumexp(scores, -1)
        return torch.matmul((scores - lse[..., None]).exp().to(v.dtype), v), lse
    bias = bias.expand(q.shape[0], q.shape[1], q.shape[2], k.shape[2])
    if not q.is_cuda:
        o, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, attn_mask=bias, scale=scale)
        return o, lse
    if kernel == "efficient":  # the fused memory-efficient SDPA kernel with its log-sum-exp
        o, lse = torch.ops.aten._scaled_dot_product_efficient_attention(q, k, v, bias, True, scale=scale)[:2]
    else:  # cuDNN's fused attention with its log-sum-exp (4.8% faster than "efficient" in one same-run bench)
        o, lse = torch.ops.aten._scaled_dot_product_cudnn_attention(q, k, v, bias, True, scale=scale)[:2]
    return o, lse.reshape(q.shape[0], q.shape[1], -1)[..., : q.shape[2]].float()


def merge_parts(o1: Tensor, lse1: Tensor, o2: Tensor, lse2: Tensor) -> Tensor:
    """Softmax attention over the union of two key sets from each set's output and log-sum-exp."""
    lse = torch.logaddexp(lse1, lse2)
    return (o1.float() * (lse1 - lse).exp()[..., None] + o2.float() * (lse2 - lse).exp()[..., None]).to(o1.dtype)


def cascade_attention(q: Float[Tensor, "b h 1 d"], pk: Float[Tensor, "n g p d"], pv: Float[Tensor, "n g p d"],
                      pbias: Float[Tensor, "n 1 1 p"], ok: Float[Tensor, "b g s d"], ov: Float[Tensor, "b g s d"],
                      obias: Float[Tensor, "1 1 1 s"], scale: float, kernel: str, merge: Callable = merge_parts
                      ) -> Float[Tensor, "b 1 hd"]:
    """A decode step's attention when the b rows come in n groups of G rows with one shared prompt: the
    queries of a group's G rows read its prompt's K/V once (one part), each row reads its own new tokens'
    K/V (the other part), and the two softmax parts are merged by their log-sum-exps."""
    b, h, t, d = q.shape
    n, g = pk.shape[0], pk.shape[1]
    G, rq = b // n, h // g * t
    qp = q.reshape(n, G, g, rq, d).transpose(1, 2).reshape(n, g, G * rq, d)
    o1, l1 = partial_attention(qp, pk, pv, pbias, scale, kernel)
    o1 = o1.reshape(n, g, G, rq, d).transpose(1, 2).reshape(b, g, rq, d)
    l1 = l1.reshape(n, g, G, rq).transpose(1, 2).reshape(b, g, rq)
    o2, l2 = partial_attention(q.reshape(b, g, rq, d), ok, ov, obias, scale, kernel)
    return merge(o1, l1, o2, l2).reshape(b, h, t, d).transpose(1, 2).reshape(b, t, h * d)


class KVCache:
    """Per-layer K and V of the prompts (and, where rows have their own, of everything): [rows or groups,
    kv_heads, length, head_dim], with the mask of filled columns; with shared prompts also each row's own K/V
    of its new tokens [rows, kv_heads, new, head_dim]."""

    def __init__(self, arch: Arch, n: int, length: int, dtype: torch.dtype, device: torch.device, own: tuple[int, int] = (0, 0)):
        shape = (n, arch.kv_heads, length, arch.head_dim)
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in arch.layers]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in arch.layers]
        self.filled = torch.zeros((n, length), dtype=torch.bool, device=device)
        b, new = own
        oshape = (b, arch.kv_heads, new, arch.head_dim)
        self.ok = [torch.zeros(oshape, dtype=dtype, device=device) for _ in arch.layers] if b else []
        self.ov = [torch.zeros(oshape, dtype=dtype, device=device) for _ in arch.layers] if b else []


@dataclass
class Attend:
    """Where a forward writes its K/V and what it attends over. Prefix form (own_bias None): K/V at columns
    `cols` of cache rows `rows` and attention over the cache's first bias.shape[-1] columns. Shared form: each
    row's K/V at column cols[0] of its own cache, attention over its group's prompt (bias) and its own first
    own_bias.shape[-1] columns (cascade_attention)."""

    rows: slice
    cols: Tensor
    bias: Tensor
    own_bias: Tensor | None = None
    kernel: str = "sdpa"


def attention_inputs(arch: Arch, layer: nn.Module, x: Float[Tensor, "b t e"], cos: Tensor, sin: Tensor,
                     qkv: Fused | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """A layer's q [b, heads, t, d], k and v [b, kv_heads, t, d]: input norm, projections (one matmul where
    `qkv` fuses them), q/k norms, rotary."""
    attn = layer.self_attn
    b, t, _ = x.shape
    h = layer.input_layernorm(x)
    q, k, v = qkv(h) if qkv is not None else (attn.q_proj(h), attn.k_proj(h), attn.v_proj(h))
    q = q.reshape(b, t, -1, arch.head_dim)
    k = k.reshape(b, t, -1, arch.head_dim)
    v = v.reshape(b, t, -1, arch.head_dim).transpose(1, 2)
    if hasattr(attn, "q_norm"):
        q, k = attn.q_norm(q), attn.k_norm(k)
    q, k = arch.apply_rope(q.transpose(1, 2), k.transpose(1, 2), cos, sin)
    return q, k, v


def layer_output(layer: nn.Module, x: Float[Tensor, "b t e"], o: Float[Tensor, "b t hd"],
                 gate_up: Fused | None = None) -> Float[Tensor, "b t e"]:
    """The residual stream after a layer: output projection of the attention, then the MLP block (its gate and up
    projections one matmul where `gate_up` fuses them)."""
    x = x + layer.self_attn.o_proj(o)
    h = layer.post_attention_layernorm(x)
    if gate_up is None:
        return x + layer.mlp(h)
    gate, up = gate_up(h)
    return x + layer.mlp.down_proj(layer.mlp.act_fn(gate) * up)


def layer_step(arch: Arch, i: int, x: Float[Tensor, "b t e"], cos: Tensor, sin: Tensor, cache: KVCache,
               at: Attend) -> Float[Tensor, "b t e"]:
    """One decoder layer: write this step's K/V into the layer's cache and attend (see Attend)."""
    layer = arch.layers[i]
    qkv, gate_up = arch.fused[i] if arch.fused else (None, None)
    q, k, v = arch.attention_inputs(arch, layer, x, cos, sin, qkv)
    kc, vc = cache.k[i][at.rows], cache.v[i][at.rows]
    if at.own_bias is None:
        kc.index_copy_(2, at.cols, k.to(kc.dtype))
        vc.index_copy_(2, at.cols, v.to(vc.dtype))
        s = at.bias.shape[-1]
        o = gqa_attention(q, kc[:, :, :s], vc[:, :, :s], at.bias, layer.self_attn.scaling, at.kernel)
    else:
        ok, ov = cache.ok[i], cache.ov[i]
        ok.index_copy_(2, at.cols, k.to(ok.dtype))
        ov.index_copy_(2, at.cols, v.to(ov.dtype))
        s = at.own_bias.shape[-1]
        o = cascade_attention(q, kc, vc, at.bias, ok[:, :, :s], ov[:, :, :s], at.own_bias, layer.self_attn.scaling,
                              at.kernel, arch.merge_parts)
    return arch.layer_output(layer, x, o, gate_up)


# ---- fused projections ----------------------------------------------------------------------------

def fuse(mods: list[nn.Module]) -> Fused | None:
    """Adapted projections of one input with merged weights (adapters.merged_weights) as one Fused whose weight
    holds them in one buffer; each module's merged weight becomes a view of it, so no memory is added (the
    separate copies are freed). None unless every module is adapted and merged, and either all or none of them
    have a bias."""
    biases = [m.base.bias if isinstance(m, ad.AdaptedLinear) else None for m in mods]
    if not all(isinstance(m, ad.AdaptedLinear) and m.merged is not None for m in mods) or \
            len({b is None for b in biases}) > 1:
        return None
    weight = torch.cat([m.merged for m in mods])
    sizes = tuple(m.merged.shape[0] for m in mods)
    for m, view in zip(mods, weight.split(sizes)):
        m.merged = view
    return Fused(weight, None if biases[0] is None else torch.cat(biases), sizes)


@contextlib.contextmanager
def fused_projections(arch: Arch) -> Iterator[int]:
    """Inside adapters.merged_weights: every layer's q/k/v projections and its MLP's gate/up projections run as
    one matmul each in the decode (a larger matmul reads its weight closer to the memory bandwidth). Yields the
    number of fused groups (two per layer whose seven projections are all adapted and merged)."""
    arch.fused = [(fuse([ly.self_attn.q_proj, ly.self_attn.k_proj, ly.self_attn.v_proj]),
                   fuse([ly.mlp.gate_proj, ly.mlp.up_proj])) for ly in arch.layers]
    try:
        yield sum(f is not None for pair in arch.fused for f in pair)
    finally:
        arch.fused = []


def forward_cached(arch: Arch, cache: KVCache, ids: Int[Tensor, "b t"], pos: Int[Tensor, "b t"],
                   at: Attend) -> Float[Tensor, "b v"]:
    """Logits of the last position of `ids`, writing K/V and attending as `at` says."""
    x = arch.embed(ids)
    cos, sin = arch.rotary(x, pos)
    for i in range(len(arch.layers)):
        x = layer_step(arch, i, x, cos, sin, cache, at)
    return arch.lm_head(arch.norm(x[:, -1:]))[:, 0]


# ---- sampling (transformers' generate semantics) -------------------------------------------------

def warp(logits: Float[Tensor, "b v"], temperature: float, top_k: int, top_p: float) -> Float[Tensor, "b v"]:
    """Temperature, then top-k, then top-p, as transformers' TemperatureLogitsWarper, TopKLogitsWarper
    and TopPLogitsWarper (min_tokens_to_keep 1)."""
    s = logits / temperature if temperature != 1.0 else logits
    if top_k:
        kth = torch.topk(s, min(top_k, s.shape[-1]))[0][..., -1, None]
        s = s.masked_fill(s < kth, -float("inf"))
    if top_p < 1.0:
        sorted_s, idx = torch.sort(s, descending=False)
        remove = sorted_s.softmax(dim=-1).cumsum(dim=-1) <= (1 - top_p)
        remove[..., -1:] = False
        s = s.masked_fill(remove.scatter(1, idx, remove), -float("inf"))
    return s


def draw(logits: Float[Tensor, "b v"], temperature: float, top_k: int, top_p: float,
         generator: torch.Generator | None = None) -> Int[Tensor, " b"]:
    """Greedy at temperature 0, else one multinomial draw per row from the warped distribution (from `generator`,
    the global one when None)."""
    if temperature <= 0:
        return logits.argmax(-1)
    probs = F.softmax(warp(logits, temperature, top_k, top_p), dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(1)


@dataclass
class Segment:
    """Rows of a wave drawn from one generator: one run's rows (None: the global generator for every row, as before
    runs had generators), or the last wave's filler rows (a generator of their own, so a run's stream is what it
    would be alone)."""

    rows: slice
    generator: torch.Generator | None


def draw_segments(logits: Float[Tensor, "b v"], unfinished: Bool[Tensor, " b"], segments: list[Segment],
                  temperature: float, top_k: int, top_p: float) -> Int[Tensor, " b"]:
    """Each segment's rows drawn from its generator; a segment whose rows have all ended draws nothing (a run alone
    stops there)."""
    if len(segments) == 1 and segments[0].rows == slice(0, logits.shape[0]):
        return draw(logits, temperature, top_k, top_p, segments[0].generator)
    nxt = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    for seg in segments:
        if bool(unfinished[seg.rows].any()):
            nxt[seg.rows] = draw(logits[seg.rows], temperature, top_k, top_p, seg.generator)
    return nxt


# ---- one wave -------------------------------------------------------------------------------------

def left_pad(prompts: list[list[int]], pad_id: int, device) -> tuple[Int[Tensor, "b p"], Bool[Tensor, "b p"]]:
    P = max(map(len, prompts))
    ids = torch.full((len(prompts), P), pad_id, dtype=torch.long)
    real = torch.zeros((len(prompts), P), dtype=torch.bool)
    for i, p in enumerate(prompts):
        assert p, "empty prompt"
        ids[i, P - len(p):] = torch.tensor(p)
        real[i, P - len(p):] = True
    return ids.to(device), real.to(device)


class Wave:
    """A static-shape decode state for `n` groups of G rows (G = 1: every row its own prompt), prompt width P,
    `new` tokens per row."""

    def __init__(self, arch: Arch, n: int, G: int, P: int, new: int, cfg: DecodeConfig, dtype, device):
        self.arch, self.n, self.G, self.P, self.new, self.cfg, self.device = arch, n, G, P, new, cfg, device
        self.b = b = n * G
        self.shared = G > 1
        # G = 1: one cache row per row holding prompt and new tokens; G > 1: the prompt once per group, own new tokens per row
        self.length = P if self.shared else P + new
        self.cache = KVCache(arch, n, self.length, dtype, device, own=(b, new) if self.shared else (0, 0))
        self.ids = torch.zeros((b, 1), dtype=torch.long, device=device)
        self.pos = torch.zeros((b, 1), dtype=torch.long, device=device)
        self.col = torch.zeros((1,), dtype=torch.long, device=device)
        self.own_cols = torch.arange(new, device=device)
        # a group's prompt columns; a persistent buffer, refilled per wave, since captured graphs read it
        self.prompt_bias = torch.zeros((n, 1, 1, P), dtype=dtype, device=device)
        self.logits = torch.zeros((b, arch.vocab), dtype=torch.float32, device=device)
        self.graphs: dict[int, torch.cuda.CUDAGraph] = {}
        self.pool = None
        self.use_graphs = uses_graphs(cfg, device)
        assert not self.use_graphs or torch.device(device).type == "cuda", "mode graph needs CUDA"
        self.model: nn.Module | None = None  # set for several runs of one batched model (adapters.add_runs)
        # each row's run, a persistent buffer refilled per wave, since captured graphs read it
        self.row_runs = torch.zeros(b, dtype=torch.long, device=device)
        self.group_runs = torch.zeros(n, dtype=torch.long, device=device)

    def rows_of_runs(self, rows: slice | None = None) -> contextlib.AbstractContextManager:
        """Inside: each row (each group's prompt row when `rows` of groups is given) through its run's adapter;
        nothing for one run."""
        if self.model is None:
            return contextlib.nullcontext()
        return ad.batched_rows(self.model, self.row_runs if rows is None else self.group_runs[rows])

    def prefill(self, ids: Int[Tensor, "n p"], real: Bool[Tensor, "n p"]) -> Float[Tensor, "b v"]:
        """Run the groups' left-padded prompts (width exactly P) through the cache; each row gets the logits
        of its group's last prompt token."""
        assert ids.shape == (self.n, self.P), (ids.shape, self.n, self.P)
        c = self.cache
        c.filled.zero_()
        c.filled[:, : self.P] = real
        pos = (real.long().cumsum(-1) - 1).masked_fill(~real, 0)
        cols = torch.arange(self.P, device=self.device)
        causal = cols[None, :] <= cols[:, None]  # [query, key]
        diag = torch.eye(self.P, dtype=torch.bool, device=self.device)  # pad queries attend to themselves
        rep = self.arch.heads // self.arch.kv_heads
        dtype = self.cache.k[0].dtype
        out = []
        for r0 in range(0, self.n, self.cfg.prefill_rows):
            rows = slice(r0, min(self.n, r0 + self.cfg.prefill_rows))
            mask = (real[rows, None, :] & causal[None]) | diag[None]
            at = Attend(rows, cols, attention_bias(mask, rep, dtype))
            with self.rows_of_runs(rows):
                out.append(forward_cached(self.arch, c, ids[rows], pos[rows], at).float())
        self.prompt_bias.copy_(attention_bias(real[:, None, :], 1, dtype))
        self.pos.copy_(pos[:, -1:].repeat_interleave(self.G, 0))
        return torch.cat(out).repeat_interleave(self.G, 0)

    def _step(self, s: int) -> None:
        """One decode step over the first s columns (of the cache, or with shared prompts of each row's own
        new tokens): reads the ids/pos/col buffers, writes self.logits."""
        rep, dtype = self.arch.heads // self.arch.kv_heads, self.cache.k[0].dtype
        if self.shared:
            own = (self.own_cols[:s] <= self.col)[None, None, :]  # every row has fed tokens 0..col
            at = Attend(slice(None), self.col, self.prompt_bias, attention_bias(own, 1, dtype), self.cfg.attention)
        else:
            self.cache.filled.index_fill_(1, self.col, True)
            at = Attend(slice(None), self.col, attention_bias(self.cache.filled[:, None, :s], rep, dtype),
                        kernel=self.cfg.attention)
        logits = forward_cached(self.arch, self.cache, self.ids, self.pos, at)
        self.logits.copy_(logits.float())

    def step(self, tokens: Int[Tensor, " b"], t: int) -> Float[Tensor, "b v"]:
        """Feed each row's token number t (position +1 per row); logits of the next token."""
        self.ids.copy_(tokens[:, None])
        self.pos.add_(1)
        col = t if self.shared else self.P + t
        self.col.fill_(col)
        s = min(self.length if not self.shared else self.new, math.ceil((col + 1) / self.cfg.bucket) * self.cfg.bucket)
        if not self.use_graphs:
            with self.rows_of_runs():
                self._step(s)
        else:
            if s not in self.graphs:
                with self.rows_of_runs():
                    self.graphs[s] = self._capture(s)
            self.graphs[s].replay()
        return self.logits

    def _capture(self, s: int) -> torch.cuda.CUDAGraph:
        """Warm up on a side stream, then capture _step(s); the step is idempotent for fixed buffers."""
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            self._step(s)
        torch.cuda.current_stream().wait_stream(side)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g, pool=self.pool):
            self._step(s)
        self.pool = g.pool()
        return g

    def run(self, prompts: list[list[int]], temperature: float, top_k: int, top_p: float, eos_id: int,
            pad_id: int, segments: list[Segment] | None = None) -> tuple[Int[Tensor, "b n"], Float[Tensor, "b n"]]:
        """Sample up to `new` tokens per row from the groups' prompts (one per group); (tokens, their
        temperature-1 log-probs), pad after EOS, G consecutive rows per group. Rows are drawn per segment (one
        global-generator segment when None)."""
        assert len(prompts) == self.n, (len(prompts), self.n)
        segments = segments or [Segment(slice(0, self.b), None)]
        ids, real = left_pad(prompts, pad_id, self.device)
        pad_cols = self.P - ids.shape[1]
        if pad_cols:  # a narrower wave than planned: pad on the left to the static width
            ids = F.pad(ids, (pad_cols, 0), value=pad_id)
            real = F.pad(real, (pad_cols, 0), value=False)
        toks = torch.full((self.b, self.new), pad_id, dtype=torch.long, device=self.device)
        lps = torch.zeros((self.b, self.new), dtype=torch.float32, device=self.device)
        unfinished = torch.ones(self.b, dtype=torch.bool, device=self.device)
        logits = self.prefill(ids, real)
        for t in range(self.new):
            nxt = draw_segments(logits, unfinished, segments, temperature, top_k, top_p)
            nxt = torch.where(unfinished, nxt, torch.full_like(nxt, pad_id))
            toks[:, t] = nxt
            if self.cfg.logprobs:
                lps[:, t] = log_softmax_at(logits[:, None], nxt[:, None])[:, 0]
            unfinished &= nxt != eos_id
            if t + 1 == self.new or not bool(unfinished.any()):  # as generate: no draws after the last row ends
                break
            logits = self.step(nxt, t)
        return toks, lps


# ---- waves ----------------------------------------------------------------------------------------

def uses_graphs(cfg: DecodeConfig, device) -> bool:
    """Whether decode steps replay CUDA graphs (mode graph, or auto on CUDA). A graph replays the row layout it was
    captured with, so a batched model's rows then read their runs from a buffer (unmerged adapters), never from split
    sizes fixed at capture (merged per-run weights)."""
    return cfg.mode == "graph" or (cfg.mode == "auto" and torch.device(device).type == "cuda")


def plan_waves(n: int, G: int, P: int, new: int, arch: Arch, dtype: torch.dtype, device,
               cfg: DecodeConfig) -> tuple[int, int]:
    """(waves, groups per wave): the fewest equal waves of n groups of G rows whose KV cache and buffers fit."""
    cap = n
    if cfg.max_batch:
        cap = max(1, cfg.max_batch // G)
    elif torch.device(device).type == "cuda":
        torch.cuda.empty_cache()  # blocks the allocator keeps from training count as free here
        free = torch.cuda.mem_get_info(device)[0]
        per_group = (P + G * new) * kv_bytes_per_token(arch, dtype) + G * arch.vocab * 4 * 8  # caches + logits temps
        cap = max(1, int((free * cfg.mem_frac - 2**30) // per_group))
    waves = math.ceil(n / min(cap, n))
    return waves, math.ceil(n / waves)


def prompt_group(prompts: list[list[int]], share: bool) -> int:
    """G: the largest group size such that every G consecutive prompts from the start are equal (the gcd of
    the lengths of the runs of equal prompts; a GRPO batch gives its group size), or 1 without sharing."""
    if not share:
        return 1
    runs, i = [], 0
    while i < len(prompts):
        j = i
        while j < len(prompts) and prompts[j] == prompts[i]:
            j += 1
        runs.append(j - i)
        i = j
    return math.gcd(*runs)


def cut(tokens: list[int], lps: list[float], eos_id: int, pad_id: int) -> tuple[list[int], list[float]]:
    """Up to and including the first EOS; trailing pads of an unfinished row dropped (cut_at_eos)."""
    kept = cut_at_eos(tokens, eos_id, pad_id)
    return kept, lps[: len(kept)]


def cut_at_eos(row: list[int], eos_id: int, pad_id: int) -> list[int]:
    """Keep tokens up to and including the first EOS; drop trailing pads of unfinished rows."""
    if eos_id in row:
        return row[: row.index(eos_id) + 1]
    while row and row[-1] == pad_id:
        row = row[:-1]
    return row


@torch.no_grad()
def decode(model: nn.Module, prompts: list[list[int]], temperature: float, max_new_tokens: int, eos_id: int,
           pad_id: int, top_k: int = 0, top_p: float = 1.0, cfg: DecodeConfig | None = None,
           generators: list[torch.Generator] | None = None, sizes: list[int] | None = None,
           runs: list[int] | None = None) -> Decoded:
    """Sample one completion per prompt. generators None: from the global torch generator (seed it before calling).
    Else the prompts come as consecutive blocks of sizes[k] rows, block k drawn from generators[k] (a block's draws
    do not depend on the other blocks when every block fits one wave); runs[k]: the run of a batched model
    (adapters.add_runs) block k goes through: each row through its run's merged weight (eager steps; not fused), or
    through its run's unmerged adapter where the steps replay CUDA graphs (uses_graphs)."""
    cfg = cfg or DecodeConfig()
    assert pad_id != eos_id, "pad id equals eos id"
    assert max_new_tokens >= 1 and prompts
    assert cfg.attention in ("sdpa", "matmul", "efficient"), f"unknown attention kernel {cfg.attention!r}"
    sizes = sizes or [len(prompts)]
    assert sum(sizes) == len(prompts) and (generators is None or len(generators) == len(sizes)), (sizes, generators)
    assert runs is None or len(runs) == len(sizes), (runs, sizes)
    arch = arch_of(model, cfg.compile)
    p = next(model.parameters())
    dtype, device = arch.embed.weight.dtype, p.device
    if runs is not None:  # each row its run's adapter: a merged weight per run (eager), not fused; unmerged in graphs
        cfg = dataclasses.replace(cfg, merge=cfg.merge and not uses_graphs(cfg, device), fuse=False)
    G = math.gcd(prompt_group(prompts, cfg.share_prompts), *sizes)  # a group never spans two blocks
    unique = prompts[::G]
    block_of_row = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    P = math.ceil(max(map(len, prompts)) / 8) * 8  # aligned widths for the attention kernels' masks
    was_training = model.training
    model.eval()
    wave = None
    try:
        # merged before planning: the merged weights take memory the cache cannot
        with ad.merged_weights(model, runs) if cfg.merge else contextlib.nullcontext(), \
                fused_projections(arch) if cfg.fuse else contextlib.nullcontext(0) as n_fused, \
                shape_checks_off() if cfg.compile else contextlib.nullcontext():
            waves, n = plan_waves(len(unique), G, P, max_new_tokens, arch, dtype, device, cfg)
            wave = Wave(arch, n, G, P, max_new_tokens, cfg, dtype, device)
            wave.model = model if runs is not None else None
            filler_gen = torch.Generator(device=device).manual_seed(0) if generators is not None else None
            tokens, logprobs = [], []
            for w in range(waves):
                chunk = unique[w * n:(w + 1) * n]
                filler = [chunk[0]] * (n - len(chunk))  # static shape: the last wave is filled up, outputs dropped
                kept_rows = len(chunk) * G
                blocks = block_of_row[w * n * G: w * n * G + kept_rows]
                blocks = torch.cat([blocks, blocks[-1:].expand(n * G - kept_rows)])  # filler rows: the last's run
                if runs is not None:
                    wave.row_runs.copy_(torch.tensor(runs)[blocks])
                    wave.group_runs.copy_(wave.row_runs[::G])
                segments = None if generators is None else wave_segments(blocks[:kept_rows], generators) + (
                    [Segment(slice(kept_rows, n * G), filler_gen)] if kept_rows < n * G else [])
                toks, lps = wave.run(chunk + filler, temperature, top_k, top_p, eos_id, pad_id, segments)
                for row, lp in zip(toks[:kept_rows].tolist(), lps[:kept_rows].tolist()):
                    kept, kept_lp = cut(row, lp, eos_id, pad_id)
                    tokens.append(kept)
                    logprobs.append(kept_lp)
    finally:
        model.train(was_training)
        wave = None  # frees the KV cache and the CUDA graphs' memory pool before training needs it
        if torch.device(device).type == "cuda":
            torch.cuda.empty_cache()
    return Decoded(tokens, logprobs if cfg.logprobs else None, waves, n * G, G, n_fused)


def wave_segments(blocks: Int[Tensor, " b"], generators: list[torch.Generator]) -> list[Segment]:
    """A wave's rows as segments of consecutive rows of one block, each with its block's generator."""
    out, start = [], 0
    for b, count in zip(*torch.unique_consecutive(blocks, return_counts=True)):
        out.append(Segment(slice(start, start + int(count)), generators[int(b)]))
        start += int(count)
    return out
