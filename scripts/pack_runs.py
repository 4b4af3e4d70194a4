"""Pack the evidence of finished runs into tarballs that a device call can bring back: every run's step logs,
metrics, eval rows, configuration and run_meta (checkpoints left out), split into parts under a size limit.

    python scripts/pack_runs.py out/runs "$OUT/runs" --max-mb 15     # -> $OUT/runs.part0.tgz, part1, ...
    for f in runs.part*.tgz; do tar xzf $f; done                     # here, then keep them in docs/results/<date>_<name>/
    python scripts/pack_runs.py out/runs "$OUT/runs" --xz            # -> $OUT/runs.part0.tar.xz: step logs stored
    python scripts/pack_runs.py --unpack runs.part*.tar.xz DEST      #    unzipped (xz packs them ~7x smaller), and
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
import re
import sys
import tarfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from projected_grpo.env import rollouts
from projected_grpo.loop.logs import gzip_bytes

KEEP = ("step_*.jsonl.gz", "metrics.jsonl", "eval.jsonl", "args.json", "arm.json", "run_meta.json", "DONE", "*.log",
        "decisive_calls.jsonl", rollouts.KEPT_FILE)


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


RUN_DIR = re.compile(r".+_s\d+")
"""A run folder's name (<arm>_s<seed>, the drivers' naming)."""


def unit(name: str) -> str:
    """What a file belongs to, in a part or on disk (a path relative to the packed folder's parent): the run folder
    on its path (..../<arm>_s<seed>), or the file itself when no folder on its path is a run's (a process log, a
    driver's call record)."""
    parts = name.split("/")
    for i, folder in enumerate(parts[:-1]):
        if RUN_DIR.fullmatch(folder):
            return "/".join(parts[: i + 1])
    return name


def packed_size(f: Path, runs: Path, xz: bool) -> int:
    """A file's estimated size in a part: xz's text ratio (XZ_RATIO) for logs, none for checkpoints (float tensors
    barely compress) or inside .tgz parts (step logs are gzipped already)."""
    raw = len(member(f, runs, xz)[1])
    return raw // XZ_RATIO if xz and f.suffix != ".pt" else raw


def split(runs: Path, max_bytes: int, xz: bool, checkpoints: bool = False) -> list[list[Path]]:
    """The evidence files cut into parts, each run folder (unit) whole in one part: a new part once the next unit
    would take the estimated packed size past max_bytes (a unit larger than that gets a part of its own)."""
    units: dict[str, list[Path]] = {}
    for f in evidence(runs, checkpoints):
        units.setdefault(unit(str(f.relative_to(runs.parent))), []).append(f)
    groups: list[list[Path]] = []
    size = 0
    for files in units.values():
        n = sum(packed_size(f, runs, xz) for f in files)
        if not groups or (groups[-1] and size + n > max_bytes):
            groups.append([])
            size = 0
        groups[-1] += files
        size += n
    return groups


def write_part(part: Path, files: list[Path], runs: Path, xz: bool, best: bool) -> Path:
    """One part: a tar.xz (preset 9e with best) or a tgz of `files`."""
    opts = dict(preset=9 | lzma.PRESET_EXTREME) if xz and best else {}
    tmp = part.with_name(part.name + ".tmp")  # a call killed mid-pack leaves no whole-looking truncated part
    with tarfile.open(tmp, "w:xz" if xz else "w:gz", **opts) as tar:
        for f in files:
            name, data = member(f, runs, xz)
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), int(f.stat().st_mtime)
            tar.addfile(info, io.BytesIO(data))
    return tmp.replace(part)


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


def unpack(parts: list[Path], dest: Path, keep_existing: bool = False, step_logs: bool = True) -> int:
    """Extract parts into dest, zipping step logs stored unzipped as the run logs write them (logs.gzip_bytes);
    the number of files written. keep_existing: a run folder (or a file beside the runs) that dest held before the
    first part was opened is left as it is, every file of it in the parts skipped: on a machine that kept its runs
    between calls, its own copy is at least as new as any carried part, and a part's older files mixed into a run that
    went on (or started again) would make a run of two histories. What dest holds is read once, before any part, so
    that one part's files never make another part's files of the same run look present; every part's headers are read
    before any file is written, so a truncated part writes nothing. step_logs=False leaves the step logs out
    (results.py reads none of them)."""
    opened = [tarfile.open(part) for part in parts]
    try:
        names = [(part, tar, m) for part, tar in zip(parts, opened) for m in tar.getmembers()]
        present = {unit(m.name) for _, _, m in names if (dest / unit(m.name)).exists()} if keep_existing else set()
        n = 0
        for part, tar, m in names:
            inside = (dest / m.name).resolve().is_relative_to(dest.resolve())
            assert m.isfile() and inside, f"{part}: {m.name} is not a file inside {dest}"
            is_step_log = Path(m.name).name.startswith("step_")
            if unit(m.name) in present or (is_step_log and not step_logs):
                continue
            data, name = tar.extractfile(m).read(), m.name
            if is_step_log and name.endswith(".jsonl"):
                data, name = gzip_bytes(data), name + ".gz"
            out = dest / name
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
            n += 1
        return n
    finally:
        for tar in opened:
            tar.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="+", metavar="PATH",
                    help="RUNS PREFIX: the folder of run folders and the parts' path prefix (PREFIX.partN.tgz); "
                         "with --unpack: PART [PART ...] DEST, every part into the folder DEST")
    ap.add_argument("--max-mb", type=float, default=15.0)
    ap.add_argument("--xz", action="store_true", help="tar.xz parts with the step logs stored unzipped")
    ap.add_argument("--best", action="store_true", help="with --xz: preset 9e (smaller, slower)")
    ap.add_argument("--unpack", action="store_true", help="extract the parts into the folder DEST")
    ap.add_argument("--keep-existing", action="store_true",
                    help="with --unpack: leave run folders (and files beside them) that DEST held before as they are")
    ap.add_argument("--no-step-logs", action="store_true",
                    help="with --unpack: leave out the step logs (step_NNNN.jsonl[.gz]); what results.py reads is the rest")
    ap.add_argument("--checkpoints", action="store_true",
                    help="also pack the last checkpoint of every unfinished run (for a later call to resume it)")
    a = ap.parse_args(argv)
    if len(a.paths) < 2 or (len(a.paths) > 2 and not a.unpack):
        fail(f"{' '.join(a.paths)}: expected RUNS PREFIX, or with --unpack PART [PART ...] DEST")
    if a.unpack:
        parts, dest = [Path(x) for x in a.paths[:-1]], Path(a.paths[-1])
        for part in parts:
            if not part.is_file():
                fail(f"{part}: no such part")
        n = unpack(parts, dest, a.keep_existing, step_logs=not a.no_step_logs)
        print(f"unpacked {n} files of {len(parts)} part(s) into {dest}" + (" (runs already there kept)" if a.keep_existing else ""))
        return 0
    runs, a.prefix = Path(a.paths[0]), a.paths[1]
    if not runs.is_dir():
        fail(f"{runs}: not a folder")
    if not evidence(runs):
        fail(f"{runs}: no run files ({', '.join(KEEP)}) under it")
    parts = pack(runs, Path(a.prefix), int(a.max_mb * 2**20), a.xz, a.best, a.checkpoints)
    print(f"packed {len(evidence(runs, a.checkpoints))} files of {runs} into {len(parts)} part(s): {', '.join(p.name for p in parts)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
