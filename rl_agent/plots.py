"""Learning curves of a training run as a PNG (matplotlib, headless)."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

from rl_agent.rewards import TERMS


def _read(progress_csv: Path) -> dict[str, list[float]]:
    cols: dict[str, list[float]] = {}
    with open(progress_csv, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            for k, v in row.items():
                try:
                    cols.setdefault(k, []).append(float(v) if v not in ("", None) else math.nan)
                except ValueError:
                    cols.setdefault(k, []).append(math.nan)
    return cols


def plot_learning_curves(progress_csv: str | os.PathLike, out_png: str | os.PathLike, title: str | None = None) -> Path:
    """Plot ``logs/progress.csv`` of :func:`rl_agent.train_ppo` (mean episode reward, coverage, collisions and
    shield interventions per 1,000 frames, reward terms, against training frames) into ``out_png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    progress_csv, out_png = Path(progress_csv), Path(out_png)
    cols = _read(progress_csv)
    if not cols.get("frames"):
        raise ValueError(f"{progress_csv}: no rows to plot")
    x = cols["frames"]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), constrained_layout=True)
    ax = axes[0][0]
    ax.plot(x, cols["ep_rew_mean"], color="tab:blue")
    ax.set_title("mean episode reward")
    ax = axes[0][1]
    ax.plot(x, cols["coverage_pct"], color="tab:green")
    ax.set_title("coverage per episode (% of navigable cells)")
    ax = axes[1][0]
    ax.plot(x, cols["collisions_per_1k"], label="collisions (all episodes)", color="tab:red")
    if "unshielded_collisions_per_1k" in cols:
        ax.plot(x, cols["unshielded_collisions_per_1k"], label="collisions (unshielded episodes)", color="tab:purple")
    ax.plot(x, cols["shield_per_1k"], label="shield interventions (all episodes)", color="tab:orange")
    ax.set_title("per 1,000 frames")
    ax.legend()
    ax = axes[1][1]
    for t in TERMS:
        ax.plot(x, cols.get(f"reward_{t}", [math.nan] * len(x)), label=t)
    ax.set_title("reward terms (episode sums)")
    ax.legend()
    for row in axes:
        for a in row:
            a.set_xlabel("training frames")
            a.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_png.with_name(out_png.stem + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, out_png)
    return out_png
