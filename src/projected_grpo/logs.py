"""Run logs: one gzipped jsonl file of rollouts per step, a metrics file of step summaries, eval rows.

Every file is written to a temporary name and renamed into place, so a crash (or a kill) leaves
either the old file or the new one, never a truncated one.

    out/runs/<run>/
        args.json                 the run's arguments
        run_meta.json             device, dtype, torch and transformers versions, weights sha256, CPU (run_meta)
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


def write_step(run_dir: Path, step: int, rows: list[dict]) -> Path:
    path = run_dir / f"step_{step:04d}.jsonl.gz"
    blob = "".join(json.dumps(r, default=_jsonable) + "\n" for r in rows).encode()
    atomic_write_bytes(path, gzip.compress(blob, compresslevel=5))
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
    import pandas as pd

    rows = [r for p in step_files(Path(run_dir)) for r in read_step(p)]
    return pd.DataFrame(rows)


def load_metrics(run_dir: str | Path):
    import pandas as pd

    return pd.DataFrame(read_jsonl(Path(run_dir) / "metrics.jsonl"))


def load_eval(run_dir: str | Path):
    import pandas as pd

    return pd.DataFrame(read_jsonl(Path(run_dir) / "eval.jsonl"))


META_KEYS = ("device", "dtype", "torch", "transformers", "model_sha256")
"""run_meta fields that runs pooled or paired in one table share (model_sha256: the weights' hash, which
identifies an organism; the folder name and the CPU model are recorded but not compared)"""


def run_meta(model, spec: str, device: str) -> dict:
    """What a run must share with another to be paired or pooled with it (scripts/results.py), and where it ran."""
    import torch
    import transformers

    from projected_grpo.models import resolve, weights_id
    from projected_grpo.organism.build import cpu_model

    return dict(device=str(device).split(":")[0], dtype=str(next(model.parameters()).dtype).replace("torch.", ""),
                torch=torch.__version__, transformers=transformers.__version__, model_sha256=weights_id(spec),
                organism=Path(resolve(spec)).name if spec.startswith("organism:") else spec, cpu=cpu_model())


RECIPE = {"lr": None, "weight_decay": None, "weight_decay_quarantine": 0.0, "adam_eps": 1e-8, "axis_lr_scale": 1.0, "steps": None,
          "prompts_per_step": None, "group": None, "max_new_tokens": None, "temperature": None, "difficulties": None,
          "mechanisms": None, "data_seed": None, "n_train": None, "n_eval": None, "eval_samples": None, "warmup": None,
          "grad_clip": None, "kl_coef": None, "clip_eps": None, "inner_iters": None, "adapter": None, "rank": None,
          "adapter_seed": None}
"""A run's training recipe: the args.json fields no registry arm sets, which every run compared in one table shares
({field: its value for runs logged before the field existed, or None when every run has it})."""


def read_recipe(run_dir: str | Path) -> dict:
    """RECIPE's fields of a run's args.json; ValueError naming the file when a field without a default is missing."""
    path = Path(run_dir) / "args.json"
    args = json.loads(path.read_text())
    missing = [k for k, v in RECIPE.items() if v is None and k not in args]
    if missing:
        raise ValueError(f"{path}: no {missing[0]!r}")
    return {k: args.get(k, v) for k, v in RECIPE.items()}


def recipe_differences(run_dir: str | Path, want: dict) -> dict:
    """{field: (the run's value, wanted value)} for the fields of `want` where the run's recipe differs."""
    have = read_recipe(run_dir)
    return {k: (have[k], v) for k, v in want.items() if have[k] != v}


def read_run_meta(run_dir: str | Path) -> dict:
    """A run's run_meta.json; runs from before it existed read as 'unknown' in every key."""
    path = Path(run_dir) / "run_meta.json"
    meta = json.loads(path.read_text()) if path.exists() else {}
    return {k: str(meta.get(k, "unknown")) for k in META_KEYS}


def _jsonable(x):
    if hasattr(x, "item"):
        return x.item()
    if hasattr(x, "tolist"):
        return x.tolist()
    raise TypeError(f"not json serialisable: {type(x)}")
