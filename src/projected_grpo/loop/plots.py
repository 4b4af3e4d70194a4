"""Plots of runs: hack/solve trajectories per arm with seed bands, erase diagnostics, routing."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from projected_grpo.loop import logs  # noqa: E402

RUN_RE = re.compile(r"^(?P<arm>.+)_s(?P<seed>\d+)$")


def runs_by_arm(runs_dir: Path, arms: list[str]) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for d in sorted(Path(runs_dir).iterdir()):
        m = RUN_RE.match(d.name)
        if d.is_dir() and m and m["arm"] in arms:
            out.setdefault(m["arm"], []).append(d)
    return out


def band(ax, xs_list: list[np.ndarray], ys_list: list[np.ndarray], label: str) -> None:
    """Mean over seeds with a min-max band, on the steps all seeds share."""
    if not ys_list:
        return
    n = min(len(y) for y in ys_list)
    x = xs_list[0][:n]
    Y = np.stack([y[:n] for y in ys_list])
    line, = ax.plot(x, Y.mean(0), label=f"{label} (n={len(ys_list)})")
    ax.fill_between(x, Y.min(0), Y.max(0), color=line.get_color(), alpha=0.2)


def plot_runs(runs_dir: Path, arms: list[str], out: Path) -> list[Path]:
    by_arm = runs_by_arm(runs_dir, arms)
    paths = []
    # training trajectories
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for arm, dirs in by_arm.items():
        ms = [logs.load_metrics(d) for d in dirs]
        ms = [m for m in ms if len(m)]
        band(axes[0], [m["step"].to_numpy() for m in ms], [m["hack_strict"].to_numpy() for m in ms], arm)
        band(axes[1], [m["step"].to_numpy() for m in ms], [m["gt_pass"].to_numpy() for m in ms], arm)
    axes[0].set(title="training rollouts: strict hack rate", xlabel="step", ylim=(-0.02, 1.02))
    axes[1].set(title="training rollouts: ground-truth pass rate", xlabel="step", ylim=(-0.02, 1.02))
    axes[0].legend(fontsize=8)
    paths.append(save(fig, out / "train_trajectories.png"))
    # evaluation trajectories (deployed model = quarantine ablated)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for arm, dirs in by_arm.items():
        for ax, split, cell, key in ((axes[0], "hinted", "all", "hack_strict"), (axes[1], "hinted", "heldout", "hack_strict"),
                                     (axes[2], "nohint", "all", "solve")):
            xs, ys = [], []
            for d in dirs:
                e = logs.load_eval(d)
                if not len(e):
                    continue
                e = e[(e.quarantine == "ablated") & (e.split == split)]
                if cell == "heldout":
                    e = e[e.cell.isin(["stdout_marker", "exit_code"])].groupby("step", as_index=False)[key].mean()
                else:
                    e = e[e.cell == cell]
                e = e.sort_values("step")
                xs.append(e["step"].to_numpy())
                ys.append(e[key].to_numpy())
            band(ax, xs, ys, arm)
    axes[0].set(title="eval, hinted: strict hack (deployed)", xlabel="step", ylim=(-0.02, 1.02))
    axes[1].set(title="eval, held-out mechanisms: strict hack (deployed)", xlabel="step", ylim=(-0.02, 1.02))
    axes[2].set(title="eval, no hint: solve rate (deployed)", xlabel="step", ylim=(-0.02, 1.02))
    axes[0].legend(fontsize=8)
    paths.append(save(fig, out / "eval_trajectories.png"))
    # erase diagnostics and routing
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for arm, dirs in by_arm.items():
        ms = [m for m in (logs.load_metrics(d) for d in dirs) if len(m)]
        if ms and "cos_in" in ms[0]:
            band(axes[0], [m["step"].to_numpy() for m in ms], [m["cos_in"].to_numpy() for m in ms], f"{arm} cos_in")
            band(axes[0], [m["step"].to_numpy() for m in ms], [m["cos_out"].to_numpy() for m in ms], f"{arm} cos_out")
        if ms and "routed_frac" in ms[0]:
            band(axes[1], [m["step"].to_numpy() for m in ms], [m["routed_frac"].to_numpy() for m in ms], arm)
        for d in dirs[:1]:
            r = logs.load_rollouts(d)
            if "route_score" in r:
                r = r.dropna(subset=["route_score"])
                for lab, sub in (("strict hack", r[r.hack_strict]), ("not hack", r[~r.hack_strict])):
                    if len(sub):
                        axes[2].hist(sub["route_score"], bins=40, alpha=0.5, density=True, label=f"{arm}: {lab}")
    axes[0].set(title="erase: mean per-module cosine of deployed grad with v_hack", xlabel="step")
    axes[1].set(title="route: routed fraction per step", xlabel="step")
    axes[2].set(title="routing score by ground-truth label (measurement only)", xlabel="cosine to v_grad")
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    paths.append(save(fig, out / "diagnostics.png"))
    return paths


def save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_summary(res: dict, out: Path) -> Path:
    """Forest plot of the results table: per arm, the deployed model's strict hack on the pairs' mechanisms
    and on the held-out ones, and its no-hint solve rate, mean with the 95% interval (results.py's res)."""
    keys = (("hack_strict_indist_ablated", "strict hack, pair mechanisms (deployed)"),
            ("hack_strict_heldout_ablated", "strict hack, held-out mechanisms (deployed)"),
            ("solve_nohint_ablated", "no-hint solve (deployed)"))
    names = list(res["arms"])
    fig, axes = plt.subplots(1, 3, figsize=(15, 0.35 * len(names) + 1.5), sharey=True)
    for ax, (key, title) in zip(axes, keys):
        for y, arm in enumerate(names):
            v = res["arms"][arm].get(key)
            if v:
                ax.errorbar(v[0], y, xerr=[[v[0] - v[1]], [v[2] - v[0]]], fmt="o", capsize=3)
        ax.set(title=title, xlim=(-0.02, 1.02))
        ax.axvline(res["arms"].get("vanilla", {}).get(key, [float("nan")])[0], color="grey", ls=":")
    axes[0].set_yticks(range(len(names)), [f"{a} (n={res['arms'][a]['n']})" for a in names])
    axes[0].invert_yaxis()
    return save(fig, out / "summary.png")
