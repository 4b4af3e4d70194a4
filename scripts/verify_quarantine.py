"""Gate: the quarantine block's subspace is as designed, measured through each adapter's forward.

Per wrapped Linear of a tiny random Qwen3 (hidden 64, MLP 128), each block's update space is read off
the module's forward: with one block switched on and one of its coordinates set to 1, the module's
output on the identity input minus the base output is that coordinate's weight update dW. Then:

    svd own, rank 8 (spare singular directions), rank 20 (spare in 64-wide weights, off-diagonal in the
    32-wide k/v projections) and full rank (off-diagonal pieces):
        every quarantine dW is Frobenius-orthogonal to every deployed dW (|cos| < 1e-5), the
        quarantine's dWs have full rank r, and the deployed dW_i is W's i-th singular piece
        (<dW_i, W>_F = s_i)
    svd shared: the quarantine's dW_i equals the deployed dW_i (the shrinkage null, by design)
    lora own: the quarantine trains its own B_hack (a parameter, not the deployed block's frozen B)
"""

from __future__ import annotations

import time


import torch  # noqa: E402
from jaxtyping import Float  # noqa: E402
from torch import Tensor  # noqa: E402
from transformers import Qwen3Config, Qwen3ForCausalLM  # noqa: E402

from projected_grpo.method import adapters as ad  # noqa: E402


def tiny_model() -> Qwen3ForCausalLM:
    cfg = Qwen3Config(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, head_dim=16, vocab_size=100, max_position_embeddings=64)
    torch.manual_seed(0)
    return Qwen3ForCausalLM(cfg).eval()


@torch.no_grad()
def block_updates(m: ad.AdaptedLinear, block: str) -> Float[Tensor, "r o i"]:
    """dW of each coordinate of one block's SVD offset, read from the forward on the identity."""
    x = torch.eye(m.d_in)[None]
    base = m.base(x)
    p = m.delta_S if block == "deployed" else m.delta_S_hack
    saved = (m.deployed_on, m.quarantine_on, m.delta_S.clone(), m.delta_S_hack.clone())
    m.deployed_on, m.quarantine_on = block == "deployed", block == "quarantine"
    out = []
    for i in range(m.r):
        m.delta_S.zero_(), m.delta_S_hack.zero_()
        p[i] = 1.0
        out.append((m(x) - base)[0].T)
    m.deployed_on, m.quarantine_on = saved[0], saved[1]
    m.delta_S.copy_(saved[2]), m.delta_S_hack.copy_(saved[3])
    return torch.stack(out)


def gram_cos(A: Float[Tensor, "r o i"], B: Float[Tensor, "s o i"]) -> Float[Tensor, "r s"]:
    a, b = A.flatten(1), B.flatten(1)
    return (a @ b.T) / (a.norm(dim=1)[:, None] * b.norm(dim=1)[None]).clamp(min=1e-30)


def check_svd_own(rank: int | None) -> tuple[float, int]:
    model = tiny_model()
    mods = ad.wrap_model(model, ad.AdapterConfig(kind="svd", rank=rank, quarantine="own", cache_dir=None))
    worst = 0.0
    for n, m in mods.items():
        D, Q = block_updates(m, "deployed"), block_updates(m, "quarantine")
        c = float(gram_cos(D, Q).abs().max())
        assert c < 1e-5, f"svd own rank {rank} {n}: quarantine dW not orthogonal to the deployed block's (|cos| {c:.2e})"
        q_rank = int(torch.linalg.matrix_rank(Q.flatten(1).double(), atol=1e-6))
        assert q_rank == m.r, f"svd own rank {rank} {n}: quarantine spans {q_rank} < {m.r} directions"
        s = torch.linalg.svdvals(m.base.weight.double())[: m.r]
        on_w = (D.double().flatten(1) @ m.base.weight.double().flatten()).abs()
        assert torch.allclose(on_w, s, rtol=1e-4, atol=1e-5), f"{n}: deployed pieces are not W's singular pieces"
        worst = max(worst, c)
    return worst, len(mods)


def check_svd_shared() -> None:
    model = tiny_model()
    mods = ad.wrap_model(model, ad.AdapterConfig(kind="svd", rank=8, quarantine="shared", cache_dir=None))
    for n, m in mods.items():
        D, Q = block_updates(m, "deployed"), block_updates(m, "quarantine")
        assert torch.allclose(D, Q, atol=1e-6), f"svd shared {n}: the blocks' updates differ"


def check_lora_own() -> None:
    model = tiny_model()
    mods = ad.wrap_model(model, ad.AdapterConfig(kind="lora", rank=8, quarantine="own", cache_dir=None))
    for n, m in mods.items():
        q = m.quarantine_parameters()
        assert any(p is m.B_hack for p in q) and isinstance(m.B_hack, torch.nn.Parameter), n
        assert not any(p is m.B for p in q + m.deployed_parameters()), f"{n}: the deployed B is trained"
        overlap = torch.linalg.svdvals(m.B.T.float() @ m.B_hack.detach().float()).max()
        assert overlap < 0.99, f"{n}: B_hack spans B's columns (max principal cosine {overlap:.3f})"


def main() -> None:
    t0 = time.time()
    res = {rank: check_svd_own(rank) for rank in (8, 20, None)}
    check_svd_shared()
    check_lora_own()
    n_mod = res[8][1]
    print(f"PASS quarantine: svd own quarantine Frobenius-orthogonal to the deployed block in all {n_mod} modules at "
          f"rank 8 (spare singular directions, max |cos| {res[8][0]:.1e}), 20 and full (off-diagonal pieces, "
          f"{res[20][0]:.1e}, {res[None][0]:.1e}), quarantine of full rank r, deployed pieces = W's singular pieces; "
          f"svd shared blocks identical; lora own trains its own B_hack; {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
