"""Loading policies: the organism (built here) or any transformers causal LM by hub id or path.

    "organism:cpu"        the pinned CPU-size organism (data/organisms; organism.pinned)
    "organism:cpu@51b7c62e"  a further pinned organism, by a prefix of its weights sha256
    "organism:tiny"       the pinned tiny organism used by checks
    "Qwen/Qwen3-4B"       a hub id (needs network) or a local folder

bf16 on a GPU, fp32 on the CPU. A hacking teacher can be a peft LoRA adapter on the base model,
merged into it (`load_teacher`).
"""

from __future__ import annotations

import collections
import contextlib
import copy
import ctypes
import functools
import hashlib
import json
import os
import platform
import resource
import subprocess
from pathlib import Path
from typing import Callable, Iterator

import jaxtyping
import torch
import transformers
from jaxtyping import Float, Int
from safetensors import safe_open
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode
from transformers import AutoModelForCausalLM, AutoTokenizer

from projected_grpo.organism import pinned


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def set_threads() -> None:
    """One torch thread unless PGRPO_THREADS says otherwise: on a 2-core machine a second thread
    competing with the sandbox workers (or another run) slows matmuls several-fold."""
    torch.set_num_threads(int(os.environ.get("PGRPO_THREADS", "1")))


def process_cpu_s() -> float:
    """User and system CPU seconds of this process's threads so far (its reaped children's not included)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


CUDA_SYNC = ("spin", "blocking")


def set_cuda_sync(device: str) -> None:
    """PGRPO_CUDA_SYNC=blocking: a CPU thread waiting for the GPU sleeps instead of spinning (the driver's
    CU_CTX_SCHED_BLOCKING_SYNC on the device's primary context), leaving its core to the sandbox's jobs; spin (the
    default): the driver's own choice. Must run before this process first uses the device."""
    mode = os.environ.get("PGRPO_CUDA_SYNC", "spin")
    assert mode in CUDA_SYNC, f"PGRPO_CUDA_SYNC={mode!r}: one of {', '.join(CUDA_SYNC)}"
    if mode == "spin" or not device.startswith("cuda"):
        return
    assert not torch.cuda.is_initialized(), ("PGRPO_CUDA_SYNC=blocking: CUDA was already in use in this process (it is "
                                             "built for one process a GPU, not data parallel)")
    lib = ctypes.CDLL("libcuda.so.1")
    set_flags = lib.cuDevicePrimaryCtxSetFlags_v2
    set_flags.argtypes = [ctypes.c_int, ctypes.c_uint]
    dev, index = ctypes.c_int(), int(device.partition(":")[2] or 0)
    rc = lib.cuInit(0)
    assert rc == 0, f"cuInit: CUDA error {rc}"
    rc = lib.cuDeviceGet(ctypes.byref(dev), index)
    assert rc == 0, f"cuDeviceGet({index}): CUDA error {rc}"
    rc = set_flags(dev.value, 0x04)  # CU_CTX_SCHED_BLOCKING_SYNC
    assert rc == 0, f"cuDevicePrimaryCtxSetFlags: CUDA error {rc}"


CPU_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def cpu_jiffies() -> dict[str, int]:
    """The whole machine's CPU time since boot in clock ticks by kind, from /proc/stat's first line (guest time is
    already inside user and nice)."""
    return dict(zip(CPU_FIELDS, map(int, Path("/proc/stat").read_text().split()[1:1 + len(CPU_FIELDS)])))


def cpu_model() -> str:
    """The CPU's model name (floating point differs between CPU kinds enough to build different organisms)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def resolve(spec: str) -> str:
    """Model spec -> a folder or hub id that from_pretrained accepts. Never builds a model: an organism spec
    resolves to a pinned folder whose weights hash is checked (organism.pinned.resolve)."""
    if spec.startswith("organism:"):
        return str(pinned.resolve(spec))
    return spec


def weights_id(spec: str) -> str:
    """What identifies a model in run_meta and v_hack files: the weights sha256 of a local folder with
    model.safetensors (organisms are always such folders), else the spec itself (a hub id)."""
    folder = Path(resolve(spec))
    return pinned.sha256_of(folder) if (folder / "model.safetensors").exists() else spec


def run_meta(model, spec: str, device: str, vhack: str = "") -> dict:
    """What a run must share with another to be paired or pooled with it (scripts/results.py), where it ran, and the
    code it ran (git_state: the evidence that dates it)."""
    return dict(device=str(device).split(":")[0], dtype=str(next(model.parameters()).dtype).replace("torch.", ""),
                torch=torch.__version__, transformers=transformers.__version__, model_sha256=weights_id(spec),
                organism=Path(resolve(spec)).name if spec.startswith("organism:") else spec, cpu=cpu_model(),
                vhack_sha256=safetensors_content_sha256(Path(vhack)) if vhack else "", **git_state())


def safetensors_content_sha256(path: Path) -> str:
    """sha256 of a safetensors file's content: its metadata with sorted keys, then each tensor (sorted by name) as name,
    dtype, shape and bytes. The file's own bytes are no content hash: safetensors writes the metadata in a random key
    order, so two saves of the same direction file differ in their sha256 (three GPU calls of the decisive pilot)."""
    h = hashlib.sha256()
    with safe_open(str(path), "pt") as f:
        h.update(json.dumps(f.metadata() or {}, sort_keys=True).encode())
        for name in sorted(f.keys()):
            t = f.get_tensor(name).contiguous()
            h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
            h.update(t.view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


GIT_STAMP = ".git_commit.json"
"""The file at a tree's root that brings its commit into a copy without .git (a device call): the commit and its file
table, written in the checkout by `scripts/stamp_commit.py` (write_git_stamp) and carried with the call."""


def git_state(repo: Path = pinned.REPO) -> dict:
    """git_commit: the commit the checkout is at; git_dirty: whether tracked files differ from it (untracked files
    are not counted); git_commit_source: where the claim comes from. In a git checkout of its own, git ('git').
    In a copy of the tree without .git (a device call) that carries GIT_STAMP, or whose .git says dirty while the
    stamp's table matches every tracked file (a device copy with the .git of an earlier commit), the stamp ('stamp',
    stamped_state):
    the commit is the stamp's claim, git_dirty is computed here from the copy's content against the stamp's file
    table, and git_tree_digest lets results.py check that table against the commit in the repository. Otherwise
    (no checkout, no stamp; a subfolder; an installed package) 'unknown' ('none')."""
    def git(*args: str) -> str | None:
        r = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    stamp = (repo / GIT_STAMP).is_file()
    if top is not None and Path(top).resolve() == repo.resolve():
        state = dict(git_commit=git("rev-parse", "HEAD"),
                     git_dirty=bool(git("status", "--porcelain", "--untracked-files=no")), git_commit_source="git")
        if state["git_dirty"] and stamp and not (stamped := stamped_state(repo))["git_dirty"]:
            # a copy whose .git is older than its files (a device call sends the .git of the session's start) but
            # whose stamp's table matches every tracked file: the stamp names the commit these files are
            return stamped
        return state
    if stamp:  # not a checkout of its own
        return stamped_state(repo)
    return dict(git_commit="unknown", git_dirty="unknown", git_commit_source="none")


def git_ls_tree(repo: Path, commit: str) -> list[tuple[str, str, str]]:
    """(mode, blob sha1, path) of every file of `commit` (git ls-tree -r), sorted by path."""
    r = subprocess.run(["git", "-C", str(repo), "ls-tree", "-r", "-z", commit], capture_output=True, check=True)
    rows = []
    for line in r.stdout.decode().split("\0"):
        if line:
            meta, path = line.split("\t", 1)
            mode, _kind, blob = meta.split()
            rows.append((mode, blob, path))
    return sorted(rows, key=lambda e: e[2])


def git_tree_digest(files: list) -> str:
    """sha256 of a file table's sorted 'mode blob\tpath' lines: the same for a stamp and for git ls-tree of its
    commit, and for nothing else."""
    h = hashlib.sha256()
    for mode, blob, path in sorted((tuple(f) for f in files), key=lambda e: e[2]):
        h.update(f"{mode} {blob}\t{path}\n".encode())
    return h.hexdigest()


def _blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _matches(path: Path, mode: str, blob: str) -> bool:
    """Whether a file of the copy has the content git stored for it (mode bits are not compared; a submodule,
    mode 160000, counts as matching)."""
    if mode == "160000":
        return True
    if mode == "120000":
        return path.is_symlink() and _blob_sha1(os.readlink(path).encode()) == blob
    return path.is_file() and not path.is_symlink() and _blob_sha1(path.read_bytes()) == blob


def write_git_stamp(repo: Path = pinned.REPO, out: Path | None = None) -> dict:
    """Write GIT_STAMP (or `out`) for the checkout `repo`: HEAD, HEAD's file table, and whether tracked files
    differed from HEAD when it was written (for information; a run decides git_dirty from what it finds)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()

    head = git("rev-parse", "HEAD")
    files = [list(f) for f in git_ls_tree(repo, head)]
    stamp = dict(git_commit=head, files=files, git_tree_digest=git_tree_digest(files),
                 dirty_when_stamped=bool(git("status", "--porcelain", "--untracked-files=no")))
    (out or repo / GIT_STAMP).write_text(json.dumps(stamp))
    return stamp


LEFT_BEHIND = "docs/results/"
"""Tracked files no run reads: results, their run archives and write-ups. A device call leaves them behind (its tree
may not pass 64 MiB, and the archives alone pass it), so a stamped copy may lack them; one present must still match."""


def left_behind(repo: Path, path: str) -> bool:
    """Whether a stamped file is absent from the copy and is one that device calls leave behind (LEFT_BEHIND)."""
    return path.startswith(LEFT_BEHIND) and not os.path.lexists(repo / path)


def stamped_state(repo: Path) -> dict:
    """git_state from GIT_STAMP in a copy without .git: the stamp's commit, git_dirty from the copy's content (a
    tracked file changed or missing against the stamp's table, but a results file left behind: LEFT_BEHIND),
    git_tree_digest of that table, and up to 10 of the changed paths."""
    stamp = json.loads((repo / GIT_STAMP).read_text())
    files = stamp["files"]
    changed = [path for mode, blob, path in files if not _matches(repo / path, mode, blob) and not left_behind(repo, path)]
    return dict(git_commit=str(stamp["git_commit"]), git_dirty=bool(changed), git_commit_source="stamp",
                git_tree_digest=git_tree_digest(files), git_changed=changed[:10])


def load_policy(spec: str, device: str | None = None, dtype: torch.dtype | None = None):
    """(model, tokenizer) for `spec`, model on `device` in eval mode with every weight frozen."""
    device = device or default_device()
    dtype = dtype or (torch.bfloat16 if device.startswith("cuda") else torch.float32)
    if spec.startswith("organism:"):  # small: one load per process, a copy per caller (a Trainer wraps its model)
        model, tok = copy.deepcopy(loaded_organism(resolve(spec), dtype))
        return model.to(device), tok
    return load_frozen(resolve(spec), dtype, device)


@functools.lru_cache(maxsize=4)
def loaded_organism(path: str, dtype: torch.dtype):
    """(model, tokenizer) of an organism folder on the CPU, loaded once per process: from_pretrained costs about half
    a second even for the tiny organism, and gates and drivers start many runs on one organism. Callers get a deep
    copy (load_policy); this one is never handed out."""
    return load_frozen(path, dtype, "cpu")


def load_frozen(path: str, dtype: torch.dtype, device: str):
    """(model, tokenizer) from a folder or hub id, model on `device` in eval mode with every weight frozen."""
    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token_id is None or tok.pad_token_id == tok.eos_token_id:
        # a distinct pad token keeps EOS inside the loss mask
        tok.add_special_tokens({"pad_token": "<|pad|>"}) if "<|pad|>" not in tok.get_vocab() else None
        tok.pad_token = "<|pad|>"
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device)
    if len(tok) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tok))
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()
    return model, tok


def set_shape_checks(on: bool) -> bool:
    """Switch BEARTYPE=1's runtime shape checks (jaxtyping's) on or off; returns whether they were on.
    Compiled code runs with them off: dynamo does not trace jaxtyping's checker (eager runs keep them)."""
    was = not jaxtyping.config.jaxtyping_disable
    jaxtyping.config.update("jaxtyping_disable", not on)
    return was


@contextlib.contextmanager
def shape_checks_off() -> Iterator[None]:
    """Shape checks off inside (set_shape_checks)."""
    was = set_shape_checks(False)
    try:
        yield
    finally:
        set_shape_checks(was)


def loud_recompile_limit() -> None:
    """Room for the guarded variants a run compiles (grad, capture, blocks, adapter structure), and an error
    past it instead of dynamo's silent fall back to eager."""
    import torch._dynamo  # 2.5 s to import: only runs that compile pay it

    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
    torch._dynamo.config.fail_on_recompile_limit_hit = True


def compile_backend() -> str:
    """torch.compile's backend for compile_layers and compiled: PGRPO_COMPILE_BACKEND where set, else "inductor"
    (training, benches, smoke_gpu). The CPU gates set "aot_eager" (scripts/_gate_common.cheap_cpu_compile): dynamo's
    graph capture and AOTAutograd's functionalized forward and backward graphs, run by eager kernels, without
    inductor's C++ code generation (cold on the 2-core CPU, inductor made verify_decoder and verify_per_sample_grads
    cost minutes each)."""
    return os.environ.get("PGRPO_COMPILE_BACKEND") or "inductor"


def compile_layers(model, backend: str | None = None) -> Callable[[], None]:
    """torch.compile every decoder layer's forward in place (regional compilation: the layers share one
    compiled graph, since their weights enter as inputs; a second sequence length recompiles it with
    dynamic shapes). Fuses the norms, rotary embedding, activations and the adapters' elementwise work of
    the training and log-prob forwards and their backward; the fast decoder calls the layers' parts, not
    their forward, so it is unaffected. Per-rollout capture works through it (adapters: probes, no
    hooks). The model's forwards default to use_cache=False until restore (a pre-hook; the config is
    untouched): a KV cache indexes the layers, so each layer would compile its own graph. A graph is guarded: grad on or off, capture on or off,
    blocks on or off and each adapter structure compile their own; past the raised recompile limit
    dynamo raises instead of running eager in silence. Module hooks registered after a layer compiled
    do not fire inside it. Shape checks are off until restore (set_shape_checks). `backend`: torch.compile's
    backend, compile_backend() unless given. Returns a function that restores eager layers, the cache default and
    the checks."""
    layers, checks_were_on = model.model.layers, set_shape_checks(False)

    def no_cache(_module, args, kwargs):  # the config stays as it is: it is part of the model's identity
        kwargs.setdefault("use_cache", False)
        return args, kwargs

    handle = model.register_forward_pre_hook(no_cache, with_kwargs=True)

    def own_grad(p: torch.nn.Parameter) -> None:
        # a compiled backward may return one buffer as the gradient of two inputs (the shared quarantine's
        # delta_S and delta_S_hack get equal gradients); autograd then stores that one buffer as both .grads and
        # the next micro-batch adds into it twice. A copy per accumulation keeps each .grad its own (adapter
        # parameters are small)
        p.grad = p.grad.clone()

    grad_hooks = [p.register_post_accumulate_grad_hook(own_grad) for p in model.parameters() if p.requires_grad]
    loud_recompile_limit()
    for layer in layers:
        layer.compile(backend=backend or compile_backend())

    def restore() -> None:
        for layer in layers:
            layer._compiled_call_impl = None
        handle.remove()
        for h in grad_hooks:
            h.remove()
        set_shape_checks(checks_were_on)

    return restore


class OpCounter(TorchDispatchMode):
    """Inside: every aten operation dispatched is counted under the label `phase` holds at that moment (set it to
    split the count; "all" until then). Backward operations count where the autograd engine runs in this thread (on
    the CPU). Each operation costs a dispatch on the CPU; one that is not a view launches at least one kernel on a
    GPU, where a foreach call is a few multi-tensor kernels but counts here one operation per tensor (its CPU path)."""

    def __init__(self):
        super().__init__()
        self.counts: collections.Counter = collections.Counter()
        self.phase = "all"

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.counts[self.phase] += 1
        return func(*args, **(kwargs or {}))


def log_softmax_at(logits: Float[Tensor, "b t v"], targets: Int[Tensor, "b t"]) -> Float[Tensor, "b t"]:
    """log_softmax(logits)[targets] in float32."""
    return torch.log_softmax(logits.float(), dim=-1).gather(-1, targets[..., None]).squeeze(-1)


def compiled(fn: Callable) -> Callable:
    """fn compiled with dynamic shapes (prefill chunks and decode steps, micro-batches of any width share a
    graph) by compile_backend(), once per process and backend; each guarded variant (blocks on or off, adapter
    structure, merged or not) compiles once, under loud_recompile_limit."""
    return _compiled(fn, compile_backend())


@functools.cache
def _compiled(fn: Callable, backend: str) -> Callable:
    loud_recompile_limit()
    return torch.compile(fn, dynamic=True, backend=backend)


def layers_compiled(model) -> bool:
    """Whether compile_layers has compiled the model's layers (and not restored them)."""
    return model.model.layers[0]._compiled_call_impl is not None


def selected_logprobs(model) -> Callable:
    """log_softmax_at for this model's training forwards: compiled where its layers are (one fused pass over the
    logits instead of a float32 copy, the log-softmax and its gradient in full), eager otherwise."""
    return compiled(log_softmax_at) if layers_compiled(model) else log_softmax_at


def load_teacher(base_spec: str, adapter_path: str, device: str | None = None):
    """A hacking teacher: base model with a peft LoRA adapter merged in (e.g. the environment's
    `ariahw/rl-rewardhacking-leetcode-rh-s65` on Qwen3-4B)."""
    from peft import PeftModel  # peft is needed only for a hub teacher adapter; the loop never loads one

    model, tok = load_policy(base_spec, device)
    merged = PeftModel.from_pretrained(model, adapter_path).merge_and_unload()
    for p in merged.parameters():
        p.requires_grad_(False)
    return merged.eval(), tok


def is_local(spec: str) -> bool:
    return spec.startswith("organism:") or Path(spec).exists()
