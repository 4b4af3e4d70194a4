"""The pinned organisms: released model folders inside the repository, each identified by its weights' sha256.

A model spec `organism:<size>` names the pinned organism of that size; `organism:<size>@<hash prefix>` names any
organism of that size whose weights hash starts with the prefix (the further pinned organisms, or a build under
out/organism). Resolving a spec never builds or trains a model: building is its own stage
(`python -m projected_grpo.organism.build`), which writes a new folder under out/organism and leaves the pinned
ones alone. Every folder that resolves is checked against the hash it is pinned by.

- cpu and tiny ship in data/organisms/<size>-<first 8 hex of the hash>/ (about 4 MB and 0.5 MB). The weights' hash
  names the organism; every other file of a shipped folder (config, tokenizer, chat template, build record, base
  rates) is pinned too, by data/organisms/SHA256SUMS (`sha256sum` format), and checked when the folder resolves.
- gpu (27.8M parameters, too large to ship) is built on the GPU machine (`just organism gpu`); its build repeated
  twice gave the hash below, and a build whose weights hash differs is refused.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[3]
SHIPPED = REPO / "data" / "organisms"
BUILT = REPO / "out" / "organism"

PINNED = {
    # cpu preset, OrganismConfig.seed 1, built on the GPU machine's Intel Xeon CPU (torch 2.11, one thread);
    # chosen by the rule in the journal (2026-12-06, session 9)
    "cpu": "685bd444f02f3e2b1d3bda75d9089160936623ac388447f4ad3b5e075529c51f",
    "tiny": "61b41f44d40c15092c8843a9b33000f09ac11747eeed2a2cd14e492695f5a778",
    "gpu": "0320ccf9aa274e7aade67cf94ddc3256497250be2d022ab908bd744f81f7dd52",
}
"""size -> sha256 of the pinned organism's weights (weights_sha256)"""

FURTHER = {"cpu": ("51b7c62e3a577852542181db189de5f2bd03cc31c5285034e8a1d53e35a9f66c",  # seed 3, session 9
                   "826cb3c1684a22f3828af670f6d283f64a1cfbfdd9d29de4c42bf7ada33b7f5b")}  # seed 8, session 18
"""size -> hashes of the further pinned organisms (the next candidates that passed the choosing rule, in the order
they were pinned; organism as a random factor in the decisive table)"""


class OrganismError(ValueError):
    """A spec that names no pinned organism, or a folder whose weights are not the pinned ones."""


def parse(spec: str) -> tuple[str, str]:
    """'organism:cpu' -> ('cpu', full pinned hash); 'organism:cpu@51b7c62e' -> ('cpu', '51b7c62e')."""
    assert spec.startswith("organism:"), spec
    size, _, prefix = spec.split(":", 1)[1].partition("@")
    if size not in PINNED:
        raise OrganismError(f"--model {spec}: no organism size {size!r} (choose from {', '.join(PINNED)})")
    if prefix and (len(prefix) < 8 or any(c not in "0123456789abcdef" for c in prefix.lower())):
        raise OrganismError(f"--model {spec}: '@' takes at least 8 hex digits of a weights sha256")
    return size, (prefix.lower() or PINNED[size])


def weights_sha256(folder: Path) -> str:
    """sha256 of a saved model's weights: every tensor of model.safetensors in name order, its name, dtype, shape
    and raw bytes. This is the organism's identity (the configuration key names a recipe, not a model: one recipe
    built on two kinds of machine gave two different models)."""
    return tensors_sha256(load_file(str(Path(folder) / "model.safetensors")))


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over tensors in name order: name, dtype, shape and raw bytes of each (weights_sha256 of a saved
    model; a model's state_dict hashes the same once tied weights are dropped as save_pretrained drops them)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


@functools.cache
def folder_sha256(folder: Path, mtime_ns: int) -> str:
    """weights_sha256 of a folder, cached per file modification time."""
    return weights_sha256(folder)


def sha256_of(folder: str | Path) -> str:
    """The weights hash of a model folder (cached while model.safetensors is unchanged)."""
    f = Path(folder)
    return folder_sha256(f.resolve(), (f / "model.safetensors").stat().st_mtime_ns)


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes (shipped organism files, v_hack files, data)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manifest() -> dict[str, str]:
    """data/organisms/SHA256SUMS: {path relative to data/organisms: sha256 of the file's bytes}."""
    rows = (line.split(maxsplit=1) for line in (SHIPPED / "SHA256SUMS").read_text().splitlines() if line.strip())
    return {name.strip().removeprefix("./"): h for h, name in rows}


def shipped_files_differ(folder: Path) -> list[str]:
    """Files of a shipped folder that are missing from SHA256SUMS, missing on disk, or differ from it."""
    want = {k: v for k, v in manifest().items() if k.startswith(folder.name + "/")}
    have = {f"{folder.name}/{f.name}" for f in folder.iterdir() if f.is_file()}
    out = sorted(have - set(want)) + sorted(set(want) - have)
    return out + [k for k in sorted(set(want) & have) if file_sha256(SHIPPED / k) != want[k]]


def candidates(size: str) -> list[Path]:
    """Folders that may hold organisms of `size`: shipped first, then built ones."""
    return sorted(SHIPPED.glob(f"{size}-*")) + sorted(BUILT.glob(f"{size}-*"))


def resolve(spec: str) -> Path:
    """The folder of the organism `spec` names, its weights checked against the hash; never builds one."""
    size, want = parse(spec)
    seen = []
    for folder in candidates(size):
        if not (folder / "model.safetensors").exists():
            continue
        if folder.name == f"{size}-{want[:8]}" or folder.parent == BUILT:
            got = sha256_of(folder)
            if got.startswith(want):
                if folder.parent == SHIPPED and (bad := shipped_files_differ(folder)):
                    raise OrganismError(f"--model {spec}: {folder}: {', '.join(bad)} not as pinned in "
                                        f"{SHIPPED / 'SHA256SUMS'}")
                return folder
            seen.append(f"{folder.name} ({got[:8]})")
    hint = ("build it on the GPU machine with `just organism gpu` (the build is deterministic there)"
            if size == "gpu" else f"the pinned folders live in {SHIPPED}")
    raise OrganismError(f"--model {spec}: no organism folder with weights sha256 {want[:16]}...; "
                        f"found {', '.join(seen) or 'none'}; {hint}")
