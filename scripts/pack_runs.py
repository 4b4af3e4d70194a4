"""Pack the evidence of finished runs into tarballs that a device call can bring back: every run's step logs,
metrics, eval rows, configuration and run_meta (checkpoints left out), split into parts under a size limit.

    python scripts/pack_runs.py out/runs "$OUT/runs" --max-mb 15     # -> $OUT/runs.part0.tgz, part1, ...
    for f in runs.part*.tgz; do tar xzf $f; done                     # here, then keep them in docs/results/<date>_<name>/
    python scripts/pack_runs.py out/runs "$OUT/runs" --xz            # -> $OUT/runs.part0.tar.xz: step logs stored
    python scripts/pack_runs.py --unpack runs.part0.tar.xz DEST      #    unzipped (xz packs them ~7x smaller), and
                                                                     #    zipped again on unpacking (the same rows)

A device call returns at most 8 files of 16 MiB; a results folder keeps the parts next to the numbers computed
from them.
"""

from __future__ import annotations

import argparse
import gzip
import io
import lzma
import os
import sys
import tarfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from projected_grpo.loop.logs import gzip_bytes

KEEP = ("step_*.jsonl.gz", "metrics.jsonl", "eval.jsonl", "args.json", "arm.json", "run_meta.json", "DONE", "*.log",
        "decisive_calls.jsonl")


XZ_RATIO = 25
"""Estimated compression of run files by xz, on the safe side: a part is closed once its estimated packed size passes
--max-mb (stage 1 of the decisive table measured about 38x at preset 6). Check the parts' real sizes (decisive_call.sh
does)."""


def fail(msg: str) -> None:
    print(f"pack_runs.py: {msg}", file=sys.stderr)
    raise SystemExit(2)


def evidence(runs: Path, checkpoints: bool = False) -> list[Path]:
    """The files of every run under `runs` that results are computed from, in a stable order; with checkpoints also
    the last checkpoint of every unfinished run (ckpt/last.pt of a run folder without DONE), so that a later call on
    a fresh machine resumes it."""
    files = {f for pattern in KEEP for f in runs.rglob(pattern) if "ckpt" not in f.parts and f.is_file()}
    if checkpoints:
        files |= {c for c in runs.glob("*/ckpt/last.pt") if not (c.parent.parent / "DONE").exists()}
    return sorted(files)


def member(f: Path, runs: Path, xz: bool) -> tuple[str, bytes]:
    """A file's name and bytes inside a part: with xz a step log is stored unzipped (step_NNNN.jsonl), which xz
    compresses far better than gzip's separate files."""
    data, name = f.read_bytes(), str(f.relative_to(runs.parent))
    if xz and name.endswith(".jsonl.gz"):
        data, name = gzip.decompress(data), name[:-3]
    return name, data


def split(runs: Path, max_bytes: int, xz: bool, checkpoints: bool = False) -> list[list[Path]]:
    """The evidence files in order, cut into parts: a new part once the estimated packed size passes max_bytes."""
    ratio = XZ_RATIO if xz else 1  # step logs are already gzipped in .tgz parts
    groups: list[list[Path]] = []
    size = 0
    for f in evidence(runs, checkpoints):
        n = len(member(f, runs, xz)[1]) // ratio
        if not groups or size + n > max_bytes:
            groups.append([])
            size = 0
        groups[-1].append(f)
        size += n
    return groups


def write_part(part: Path, files: list[Path], runs: Path, xz: bool, best: bool) -> Path:
    """One part: a tar.xz (preset 9e with best) or a tgz of `files`."""
    opts = dict(preset=9 | lzma.PRESET_EXTREME) if xz and best else {}
    with tarfile.open(part, "w:xz" if xz else "w:gz", **opts) as tar:
        for f in files:
            name, data = member(f, runs, xz)
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), int(f.stat().st_mtime)
            tar.addfile(info, io.BytesIO(data))
    return part


def pack(runs: Path, prefix: Path, max_bytes: int, xz: bool = False, best: bool = False,
         checkpoints: bool = False) -> list[Path]:
    """Files into prefix.partN.tgz (or .tar.xz with xz; best: xz preset 9e, about a third smaller and several times
    slower, for what is kept in the repository), a new part once the estimated packed size passes max_bytes. The parts
    are compressed side by side, one process each (xz packs about 10 MiB/s a core)."""
    groups = split(runs, max_bytes, xz, checkpoints)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    ext = ".tar.xz" if xz else ".tgz"
    parts = [prefix.with_name(f"{prefix.name}.part{i}{ext}") for i in range(len(groups))]
    with ProcessPoolExecutor(max(1, min(len(groups), os.cpu_count() or 1))) as ex:
        return list(ex.map(write_part, parts, groups, *zip(*[(runs, xz, best)] * len(groups))))


def unit(name: str) -> str:
    """What a part's member belongs to: its run folder (TAG/RUN/...) or, for a file beside the runs, the file."""
    parts = name.split("/")
    return "/".join(parts[:2]) if len(parts) > 2 else name


def unpack(part: Path, dest: Path, keep_existing: bool = False) -> int:
    """Extract a part into dest, zipping step logs stored unzipped as the run logs write them (logs.gzip_bytes);
    the number of files written. keep_existing: a run folder (or a file beside the runs) that dest already holds is
    left as it is, every file of it in the part skipped: on a machine that kept its runs between calls, its own copy
    is at least as new as any carried part, and a part's older files mixed into a run that went on (or started again)
    would make a run of two histories."""
    n = 0
    with tarfile.open(part) as tar:
        members = tar.getmembers()
        present = {unit(m.name) for m in members if (dest / unit(m.name)).exists()} if keep_existing else set()
        for m in members:
            inside = (dest / m.name).resolve().is_relative_to(dest.resolve())
            assert m.isfile() and inside, f"{part}: {m.name} is not a file inside {dest}"
            if unit(m.name) in present:
                continue
            data = tar.extractfile(m).read()
            name = m.name
            if Path(name).name.startswith("step_") and name.endswith(".jsonl"):
                data, name = gzip_bytes(data), name + ".gz"
            out = dest / name
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
            n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", help="folder of run folders (with --unpack: a part)")
    ap.add_argument("prefix", help="output path prefix; parts are PREFIX.partN.tgz (with --unpack: the destination)")
    ap.add_argument("--max-mb", type=float, default=15.0)
    ap.add_argument("--xz", action="store_true", help="tar.xz parts with the step logs stored unzipped")
    ap.add_argument("--best", action="store_true", help="with --xz: preset 9e (smaller, slower)")
    ap.add_argument("--unpack", action="store_true", help="extract the part RUNS into the folder PREFIX")
    ap.add_argument("--keep-existing", action="store_true",
                    help="with --unpack: leave run folders (and files beside them) that PREFIX already holds as they are")
    ap.add_argument("--checkpoints", action="store_true",
                    help="also pack the last checkpoint of every unfinished run (for a later call to resume it)")
    a = ap.parse_args(argv)
    runs = Path(a.runs)
    if a.unpack:
        if not runs.is_file():
            fail(f"{runs}: no such part")
        n = unpack(runs, Path(a.prefix), a.keep_existing)
        print(f"unpacked {n} files of {runs} into {a.prefix}" + (" (runs already there kept)" if a.keep_existing else ""))
        return 0
    if not runs.is_dir():
        fail(f"{runs}: not a folder")
    if not evidence(runs):
        fail(f"{runs}: no run files ({', '.join(KEEP)}) under it")
    parts = pack(runs, Path(a.prefix), int(a.max_mb * 2**20), a.xz, a.best, a.checkpoints)
    print(f"packed {len(evidence(runs, a.checkpoints))} files of {runs} into {len(parts)} part(s): {', '.join(p.name for p in parts)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
