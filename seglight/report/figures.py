"""Pictures: colour masks, overlays, side-by-side panels, confusion matrix, training curves."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt  # headless machines fall back to Agg by themselves; notebooks stay inline
import numpy as np
import torch

from seglight.data.palette import Palette
from seglight.data.transforms import display_rgb


def denormalize(image: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Normalised image (N,H,W) float -> (H,W,3) uint8 (multispectral: as ``display_rgb`` shows it)."""
    m = torch.tensor(mean, dtype=torch.float32)[:, None, None]
    s = torch.tensor(std, dtype=torch.float32)[:, None, None]
    values = image.detach().float().cpu() * s + m
    if len(mean) != 3:
        return display_rgb(values.permute(1, 2, 0).numpy())
    return (values.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def overlay(image: np.ndarray, index: np.ndarray, palette: Palette, alpha: float = 0.5) -> np.ndarray:
    """Palette colours of index (H,W) blended over image (H,W,3) uint8 (or multispectral, ``display_rgb``); ignored
    pixels show the image."""
    image = display_rgb(image)
    colour = palette.to_color(index).astype(np.float32)
    out = image.astype(np.float32) * (1 - alpha) + colour * alpha
    keep = np.asarray(index) == palette.ignore_index
    out[keep] = image[keep]
    return out.round().astype(np.uint8)


def panel(image: np.ndarray, target: np.ndarray | None, pred: np.ndarray, palette: Palette) -> np.ndarray:
    """One row (H, k*W, 3) uint8: image | ground truth | prediction | overlay of the prediction."""
    tiles = [display_rgb(image)] + ([palette.to_color(target)] if target is not None else [])
    tiles += [palette.to_color(pred), overlay(image, pred, palette)]
    return np.concatenate(tiles, axis=1)


def confusion_figure(confusion: np.ndarray, class_names: Sequence[str], title: str = "confusion (row-normalised)"):
    """Row-normalised confusion matrix (rows: ground truth) as a matplotlib Figure."""
    cm = np.asarray(confusion, dtype=np.float64)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(1.2 + 0.55 * n, 1.0 + 0.5 * n))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("prediction")
    ax.set_ylabel("ground truth")
    ax.set_title(title)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                ax.text(
                    j,
                    i,
                    f"{norm[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black",
                )
    fig.tight_layout()
    return fig


def figure_to_array(fig) -> np.ndarray:
    """Matplotlib Figure -> (H,W,3) uint8, and closes it."""
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return rgb


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    """Saves a Figure as PNG and closes it."""
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return Path(path)


def read_csv_log(path: str | Path) -> dict[str, list[tuple[float, float]]]:
    """Lightning CSVLogger metrics.csv -> {metric: [(epoch or step, value), ...]}."""
    series: dict[str, list[tuple[float, float]]] = {}
    with Path(path).open(newline="") as f:
        for row in csv.DictReader(f):
            x = float(row.get("epoch") or row.get("step") or 0)
            for key, value in row.items():
                if key in ("epoch", "step") or value in ("", None):
                    continue
                series.setdefault(key, []).append((x, float(value)))
    return series


def curves_figure(
    metrics_csv: str | Path,
    keys: Sequence[str] = ("train/loss_epoch", "val/loss", "val/mIoU", "train/mIoU", "val/dice"),
):
    """Training curves from a CSVLogger file: losses on the left, metrics on the right."""
    series = read_csv_log(metrics_csv)
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 3.6))
    for key in keys:
        if key not in series:
            continue
        xs, ys = zip(*series[key])
        ax = ax_loss if "loss" in key else ax_metric
        ax.plot(np.array(xs) + (1 if "val" in key or "epoch" in key else 0), ys, marker="o", ms=3, label=key)
    for ax, title in ((ax_loss, "loss"), (ax_metric, "metrics")):
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def cost_figure(rows: Sequence[dict]):
    """Accuracy against cost for the jobs of a sweep (rows of ``seglight.training.sweep.collect``): val mIoU
    (with its 95% interval where known) against training minutes and against prediction speed (val images/s),
    each point labelled with its job, so a researcher on modest hardware picks the model that fits. A job whose val
    score is not held out (``val_caveat``) is drawn hollow, its label saying why."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    done = [r for r in rows if r.get("val/mIoU") is not None]
    for ax, key, label in (
        (axes[0], "fit_minutes", "training time (minutes)"),
        (axes[1], "val_img_per_s", "prediction speed (val images/s)"),
    ):
        for r in done:
            x = r.get(key)
            if x is None or x != x:  # missing or NaN
                continue
            y, ci = float(r["val/mIoU"]), r.get("val/mIoU_ci")
            err = None
            if isinstance(ci, str) and ci.startswith("["):
                low, high = (float(v) for v in ci.strip("[]").split(","))
                err = [[y - low], [high - y]]
            caveat = r.get("val_caveat")  # a val score that is not held out: hollow, and the label says why
            ax.errorbar([x], [y], yerr=err, fmt="o", capsize=3, mfc="none" if caveat else None)
            name = f"{r['job']} ({caveat})" if caveat else str(r["job"])
            ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("val mIoU (95% interval)")
    axes[1].set_xlabel("prediction speed (val images/s): right is faster")
    fig.suptitle("accuracy against cost, one point per job")
    fig.tight_layout()
    return fig
