"""Run logs: one gzipped jsonl file of rollouts per step, a metrics file of step summaries, eval rows.

Every file is written to a temporary name and renamed into place, so a crash (or a kill) leaves
either the old file or the new one, never a truncated one.

    out/runs/<run>/
        args.json                 the run's whole configuration: config.RunConfig, the arm and its intervention's
                                  flags under `intervention` (read back by config() here, CONFIG_EXCLUDED)
        run_meta.json             device, dtype, torch and transformers versions, weights sha256, CPU (models.run_meta)
        step_0000.jsonl.gz        one row per rollout of step 0
        metrics.jsonl             one summary row per step (rewritten atomically each step)
        eval.jsonl                one row per (step, condition) evaluation summary
        ckpt/                     last checkpoint (adapter state, optimizer, RNG)
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def gzip_bytes(blob: bytes) -> bytes:
    """A step log's bytes as written: gzip level 5 with no time stamp (equal rows, equal bytes)."""
    return gzip.compress(blob, compresslevel=5, mtime=0)


def write_step(run_dir: Path, step: int, rows: list[dict]) -> Path:
    path = run_dir / f"step_{step:04d}.jsonl.gz"
    blob = "".join(json.dumps(r, default=_jsonable) + "\n" for r in rows).encode()
    atomic_write_bytes(path, gzip_bytes(blob))
    return path


def write_jsonl(path: Path, rows: list[dict]) -> None:
    atomic_write_bytes(path, "".join(json.dumps(r, default=_jsonable) + "\n" for r in rows).encode())


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_step(path: Path) -> list[dict]:
    with gzip.open(path, "rt") as f:
        return [json.loads(line) for line in f if line.strip()]


def step_files(run_dir: Path) -> list[Path]:
    return sorted(Path(run_dir).glob("step_*.jsonl.gz"))


def load_rollouts(run_dir: str | Path):
    """All rollout rows of a run as a pandas DataFrame (column `step` included)."""
    import pandas as pd  # pandas only for these readers: a training run never loads it

    rows = [r for p in step_files(Path(run_dir)) for r in read_step(p)]
    return pd.DataFrame(rows)


def load_metrics(run_dir: str | Path):
    import pandas as pd  # as load_rollouts

    return pd.DataFrame(read_jsonl(Path(run_dir) / "metrics.jsonl"))


def load_eval(run_dir: str | Path):
    import pandas as pd  # as load_rollouts

    return pd.DataFrame(read_jsonl(Path(run_dir) / "eval.jsonl"))


META_KEYS = ("device", "dtype", "torch", "transformers", "model_sha256", "cpu")
"""run_meta fields that runs pooled or paired in one table share (model_sha256: the weights' hash, which
identifies an organism; cpu: the CPU model, since floating point differs between CPU kinds). The v_hack file's
hash (vhack_sha256) is shared by the runs of one arm (read_vhack_sha256; arms use different files)."""


CONFIG_EXCLUDED = {
    "seed": "the replicate: the runs pooled into one cell differ in it by design",
    "direction_seed": "a random-direction control's direction: a replicate factor like the seed, differing by design",
    "run": "the run folder's name (<arm>_s<seed>)",
    "out_dir": "the folder that holds the run folder",
    "match_run": "a matched control's matched run folder, <out_dir>/<matched arm>_s<seed>: it differs with seed and out_dir",
    "match_follow": "whether a matched control read its matched run's per-step values while that run trained or after it "
                    "had: the same values (arms.FollowedSchedule checks the rows it read)",
    "resume": "whether the run continued from its last checkpoint (verify_grpo: a resumed run equals an uninterrupted one)",
    "ckpt_every": "how often a checkpoint is written; training never reads one back except under resume",
    "device": "the flag ('' = cuda if available); the device the run used is run_meta.json's, which every run in one "
              "table shares (META_KEYS)",
}
"""The configuration fields that may differ between runs pooled into one cell or skipped as finished ({field: why});
the one place that says so. Every other field of args.json, the intervention's included, must agree."""

LEGACY = {"weight_decay_quarantine": 0.0, "adam_eps": 1e-8, "axis_lr_scale": 1.0, "negate": False, "eval_seed": -1,
          "rebound_alpha": 2.0, "trusted_rank": 5, "lora_alpha": -1.0}
"""args.json fields added after runs had been logged without them: the value those runs trained with."""

NOT_SAVED = "<not saved>"
"""How a configuration field reads in a run whose args.json lacks it (logged before the field existed; the
intervention's flags in runs from before args.json recorded them)."""


def read_args(run_dir: str | Path) -> dict:
    """A run's args.json; ValueError naming the file when it is missing or not a json object."""
    path = Path(run_dir) / "args.json"
    try:
        args = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: {type(e).__name__}: {e}") from None
    if not isinstance(args, dict):
        raise ValueError(f"{path}: not a json object")
    return args


def config(args: dict) -> dict:
    """A run's configuration from its args.json (as a dict): every RunConfig field and, beside them, the fields of
    `intervention` (config.InterventionConfig: the arm, the intervention's flags, the v_hack file; config.flat),
    LEGACY's value for a field logged before it existed, CONFIG_EXCLUDED left out."""
    flat = {**LEGACY, **{k: v for k, v in args.items() if k != "intervention"}, **args.get("intervention", {})}
    return {k: v for k, v in flat.items() if k not in CONFIG_EXCLUDED}


def read_config(run_dir: str | Path) -> dict:
    return config(read_args(run_dir))


def differences(have: dict, want: dict) -> dict:
    """{field: (have's value, want's value)} for the fields where two configurations (or recipes) differ, want's
    fields first; a field only one of them has reads as NOT_SAVED in the other."""
    keys = [*want, *(k for k in have if k not in want)]
    return {k: (have.get(k, NOT_SAVED), want.get(k, NOT_SAVED)) for k in keys
            if have.get(k, NOT_SAVED) != want.get(k, NOT_SAVED)}


def read_run_meta(run_dir: str | Path, keys: tuple[str, ...] = META_KEYS) -> dict:
    """A run's run_meta.json (`keys` of it); runs from before it existed, or a key, read as 'unknown'."""
    path = Path(run_dir) / "run_meta.json"
    meta = json.loads(path.read_text()) if path.exists() else {}
    return {k: str(meta.get(k, "unknown")) for k in keys}


def _jsonable(x):
    if hasattr(x, "item"):
        return x.item()
    if hasattr(x, "tolist"):
        return x.tolist()
    raise TypeError(f"not json serialisable: {type(x)}")
