"""Gate: the driver call's sample cache (PGRPO_SAMPLE_CACHE, loop/sample_cache.py) changes no completion.

On the tiny organism (CPU, the fast decoder, 8 prompts x 2 samples, 24 new tokens):

1. Adapters that differ in structure but not in update have one model digest: the shared quarantine at zero, the own
   quarantine at zero, and the own quarantine with a seeded axis piece (exactly zero output), with both blocks on and
   under deployment ablation; the unwrapped base model has another (the decoder fuses its projections otherwise). A quarantine offset moved by 1e-3 changes the digest, and its ablation gives the zero
   model's digest back; one deployed offset moved by 1e-3 changes it again.
2. A child process (fast tier: a fork of this one; full tier: a fresh interpreter) samples through the shared-quarantine model with the folder set, and writes one entry; this
   process, with the own-quarantine model (another adapter structure), reads it without decoding: its completions
   equal a decode with no folder token for token, and the global torch generator is left where that decode leaves it.
3. A changed model (deployed offsets moved by 0.5), a changed generator seed and a changed temperature each miss (decode and
   write a new entry), and each equals its own decode with no folder.
4. scripts/_runner.run_all gives its jobs a folder of its own call and removes it when the call ends.

Deliberate break (`--break digest`: the digest reads every adapted layer's base weight, not its merged weight) must
make check 1 fail.
Prints one PASS line; exit 1 on failure.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _gate_common import full_tier, run_gate  # noqa: E402

from projected_grpo.loop import sample_cache, sampling  # noqa: E402
from projected_grpo.loop.models import load_policy  # noqa: E402
from projected_grpo.method import adapters as ad  # noqa: E402
from projected_grpo.organism import tasks  # noqa: E402

SETTINGS = dict(temperature=1.0, max_new_tokens=24, decoder="fast-eager")


def model(quarantine: str, axis: str = "none"):
    m, tok = load_policy("organism:tiny", "cpu")
    ad.wrap_model(m, ad.AdapterConfig(quarantine=quarantine, axis=axis))
    if axis != "none":  # seeded at random unit inputs: a_in = u_in, a_out = c_out, so the piece's output is zero
        g = torch.Generator().manual_seed(3)
        ad.seed_axis(m, {n: torch.nn.functional.normalize(torch.randn(mod.d_in, generator=g), dim=0)
                         for n, mod in ad.adapter_modules(m).items()})
    return m, tok


def prompts(tok) -> list[list[int]]:
    ps = tasks.generate_split("eval", 8, seed=1)
    return [sampling.prompt_ids(tok, p) for p in ps for _ in range(2)]


def sample(m, tok, pids, seed: int = 7, temperature: float = 1.0) -> tuple[list[list[int]], torch.Tensor]:
    """Completions and the global generator's state after the call."""
    out = sampling.sample(m, tok, pids, temperature, SETTINGS["max_new_tokens"], seed, decoder=SETTINGS["decoder"])
    return out, torch.get_rng_state()


def nudge(m, by: float = 0.5) -> None:
    """Move every layer's first deployed offset (by 0.5: enough to change sampled tokens)."""
    with torch.no_grad():
        for mod in ad.adapter_modules(m).values():
            mod.delta_S[0] += by


def child(folder: Path) -> None:
    """The writer: a forked process (its own memory, the shared folder on disk) that samples through the
    shared-quarantine model once; exits 0 when it wrote exactly one entry and read none."""
    status = 1
    try:
        os.environ.update(PGRPO_SAMPLE_CACHE=str(folder), PGRPO_THREADS="1")
        torch.set_num_threads(1)  # as this process (the thread count is part of the key)
        sample_cache.STATS.update(read=0, written=0)
        m, tok = model("shared")
        sample(m, tok, prompts(tok))
        assert sample_cache.STATS == dict(read=0, written=1), sample_cache.STATS
        status = 0
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
    finally:
        os._exit(status)  # never back into the gate's own code


def run_child(folder: Path) -> None:
    """Run the writer and wait for it. Fast tier: a fork of this process (no second interpreter start; it shares this
    process's hash seed and module state, which the CPU drivers' forked jobs share too). Full tier: a fresh
    interpreter, as the GPU drivers start their jobs."""
    if full_tier():
        code = f"import sys, pathlib; sys.path.insert(0, {str(Path(__file__).parent)!r}); import verify_sample_cache as v; " \
               f"v.child(pathlib.Path({str(folder)!r}))"
        assert subprocess.run([sys.executable, "-c", code]).returncode == 0, "the child process failed (its traceback is above)"
        return
    pid = os.fork()
    if pid == 0:
        child(folder)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child process failed (its traceback is above)"


def check_digests() -> int:
    digests = {}
    for q, axis in (("shared", "none"), ("own", "none"), ("own", "quarantine")):
        m, _ = model(q, axis)
        digests[(q, axis, "kept")] = sample_cache.model_digest(m)
        with ad.deployment_ablation(m):
            digests[(q, axis, "ablated")] = sample_cache.model_digest(m)
    assert len(set(digests.values())) == 1, f"zero updates of other structures gave other digests: {digests}"
    base, _ = load_policy("organism:tiny", "cpu")  # unwrapped: its projections fuse differently in the decoder
    assert sample_cache.model_digest(base) not in digests.values(), "an unwrapped model shares the wrapped one's digest"
    m, _ = model("own")
    with torch.no_grad():
        next(iter(ad.adapter_modules(m).values())).delta_S_hack[0] += 1e-3
    kept = sample_cache.model_digest(m)
    with ad.deployment_ablation(m):
        ablated = sample_cache.model_digest(m)
    next(iter(ad.adapter_modules(m).values())).delta_S.data[0] += 1e-3
    moved = sample_cache.model_digest(m)
    zero = next(iter(digests.values()))
    assert kept != zero, "a nonzero quarantine block kept the zero model's digest"
    assert ablated == zero, "its deployment ablation (a zero deployed block alone) is not the zero model's digest"
    assert moved not in (zero, kept), "a moved deployed offset kept an earlier digest"
    return len(digests)


def check_reads_and_misses(folder: Path) -> str:
    m, tok = model("own")
    pids = prompts(tok)
    os.environ.pop("PGRPO_SAMPLE_CACHE", None)
    fresh, rng_fresh = sample(m, tok, pids)
    fresh_other = {"model": None, "seed": sample(m, tok, pids, seed=8)[0], "temperature": sample(m, tok, pids, temperature=0.7)[0]}
    mm, _ = model("own")
    nudge(mm)
    fresh_other["model"] = sample(mm, tok, pids)[0]
    run_child(folder)
    assert len(list(folder.glob("*.json"))) == 1, "the child wrote no entry"
    os.environ["PGRPO_SAMPLE_CACHE"] = str(folder)
    torch.manual_seed(12345)  # the hit must leave the generator where a decode would, whatever came before
    got, rng_got = sample(m, tok, pids)
    assert sample_cache.STATS == dict(read=1, written=0), f"not read from the child's entry: {sample_cache.STATS}"
    assert got == fresh, "completions read from the cache differ from a decode"
    assert torch.equal(rng_got, rng_fresh), "a read left the global generator elsewhere than a decode"
    for what, want in fresh_other.items():
        before = dict(sample_cache.STATS)
        out = sample(mm, tok, pids)[0] if what == "model" else \
            sample(m, tok, pids, seed=8)[0] if what == "seed" else sample(m, tok, pids, temperature=0.7)[0]
        assert sample_cache.STATS["written"] == before["written"] + 1, f"a changed {what} read an entry"
        assert out == want and out != fresh, f"a changed {what}: completions differ from its own decode, or equal the unchanged"
    n = len(list(folder.glob("*.json")))
    assert n == 4, f"{n} entries, 4 expected"
    os.environ.pop("PGRPO_SAMPLE_CACHE")
    return f"{len(pids)} completions read equal to a decode (RNG state too); 3 changed keys missed"


def check_runner(tmp: Path) -> str:
    import _runner

    plan = _runner.Plan(arms=[], seeds=[0], model="organism:tiny", runs=str(tmp / "runs"), steps=1, eval_every=0)
    show = [sys.executable, "-c", "import os; print('FOLDER', os.environ['PGRPO_SAMPLE_CACHE'])"]
    os.environ.pop("PGRPO_SAMPLE_CACHE", None)
    out = _runner.run_all([("show", show, [], ["show_s0"])], plan, 1, 1e18, every_s=1e9)
    log = (tmp / "runs" / "_logs" / "show.log").read_text()
    folder = Path(log.split("FOLDER ", 1)[1].split()[0])
    assert out.failed == [] and folder.parent == tmp / "runs" / "_logs", (out, folder)
    assert not folder.exists(), f"run_all left its sample cache folder {folder}"
    return "run_all's jobs got a folder of the call, removed at its end"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--break", dest="brk", choices=("digest",), help=argparse.SUPPRESS)
    a = ap.parse_args()
    torch.set_num_threads(1)
    if a.brk == "digest":
        ad.merged_weight = lambda m: m.base.weight
    n = check_digests()
    with tempfile.TemporaryDirectory() as t:
        reads = check_reads_and_misses(Path(t) / "cache")
        runner = check_runner(Path(t))
    print(f"PASS sample_cache: {n} zero-update adapters (3 structures, kept and ablated) share one digest, a moved "
          f"offset does not, an ablated quarantine gives it back; {reads}; {runner}")


if __name__ == "__main__":
    run_gate("sample_cache", main)
