"""Pack the evidence of finished runs into tarballs that a device call can bring back: every run's step logs,
metrics, eval rows, configuration and run_meta (checkpoints left out), split into parts under a size limit.

    python scripts/pack_runs.py out/runs "$OUT/runs" --max-mb 15     # -> $OUT/runs.part0.tgz, part1, ...
    for f in runs.part*.tgz; do tar xzf $f; done                     # here, then keep them in docs/results/<date>_<name>/

A device call returns at most 8 files of 16 MiB; a results folder keeps the parts next to the numbers computed
from them.
"""

from __future__ import annotations

import argparse
import sys
import tarfile
from pathlib import Path

KEEP = ("step_*.jsonl.gz", "metrics.jsonl", "eval.jsonl", "args.json", "arm.json", "run_meta.json", "DONE", "*.log")


def fail(msg: str) -> None:
    print(f"pack_runs.py: {msg}", file=sys.stderr)
    raise SystemExit(2)


def evidence(runs: Path) -> list[Path]:
    """The files of every run under `runs` that results are computed from, in a stable order."""
    return sorted({f for pattern in KEEP for f in runs.rglob(pattern) if "ckpt" not in f.parts and f.is_file()})


def pack(runs: Path, prefix: Path, max_bytes: int) -> list[Path]:
    """Files into prefix.partN.tgz, a new part once the uncompressed size passes max_bytes (step logs are already
    compressed, so the parts stay under the limit)."""
    parts, size, tar = [], 0, None
    for f in evidence(runs):
        if tar is None or size + f.stat().st_size > max_bytes:
            if tar:
                tar.close()
            parts.append(prefix.with_name(f"{prefix.name}.part{len(parts)}.tgz"))
            tar, size = tarfile.open(parts[-1], "w:gz"), 0
        tar.add(f, arcname=str(f.relative_to(runs.parent)))
        size += f.stat().st_size
    if tar:
        tar.close()
    return parts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", help="folder of run folders")
    ap.add_argument("prefix", help="output path prefix; parts are PREFIX.partN.tgz")
    ap.add_argument("--max-mb", type=float, default=15.0)
    a = ap.parse_args(argv)
    runs = Path(a.runs)
    if not runs.is_dir():
        fail(f"{runs}: not a folder")
    if not evidence(runs):
        fail(f"{runs}: no run files ({', '.join(KEEP)}) under it")
    parts = pack(runs, Path(a.prefix), int(a.max_mb * 2**20))
    print(f"packed {len(evidence(runs))} files of {runs} into {len(parts)} part(s): {', '.join(p.name for p in parts)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
