"""The picture of ``seglight.compare``: each compared run's differences to the baseline, with their intervals."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

SPREAD = 0.6  # the share of a row's height over which the runs' points are spread


def difference_figure(
    labels: Sequence[str], runs: Sequence[str], diffs: np.ndarray, intervals: np.ndarray, title: str = ""
) -> Figure:
    """R compared runs' differences to the baseline on K rows (mIoU first, then the classes) -> a Figure.

    ``diffs`` (R,K) and ``intervals`` (R,K,2) [low, high]: each is drawn as a point on a horizontal bar, one
    colour per run, row k at y = -k, with a line at 0 (no difference). NaN (a class neither run scores) is left
    out. A bootstrap percentile interval need not hold its point, so the bars are drawn from the interval itself.
    """
    diffs = np.asarray(diffs, dtype=np.float64).reshape(len(runs), len(labels))
    intervals = np.asarray(intervals, dtype=np.float64).reshape(len(runs), len(labels), 2)
    fig, ax = plt.subplots(figsize=(7.0, 1.2 + 0.32 * len(labels) * max(1, len(runs)) ** 0.5))
    rows = -np.arange(len(labels), dtype=np.float64)
    offsets = (np.arange(len(runs)) - (len(runs) - 1) / 2) * (SPREAD / max(1, len(runs)))
    for r, name in enumerate(runs):
        y = rows - offsets[r]  # run r slightly below run r-1 within each row
        colour = f"C{r % 10}"
        ax.hlines(y, intervals[r, :, 0], intervals[r, :, 1], color=colour, linewidth=2)
        ax.plot(diffs[r], y, "o", color=colour, label=name)
    ax.axvline(0.0, color="black", linewidth=0.8)
    if len(labels) > 1:
        ax.axhline(-0.5, color="grey", linewidth=0.5, linestyle=":")  # mIoU above, the classes below
    ax.set_yticks(rows, list(labels))
    ax.set_ylim(rows[-1] - 0.6, 0.6)
    ax.set_xlabel("difference to the baseline (IoU), 95% interval")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    return fig
