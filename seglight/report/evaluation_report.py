"""report.html for ``seglight.evaluate``: headline scores with bootstrap intervals, the per-class table, the
confusion matrix, calibration, the worst and best images, and where the checkpoint came from.

``Gallery`` keeps only the k worst and k best images seen (small thumbnails), so memory does not grow with
the split; ``write_report`` renders templates/report.html.j2 into one self-contained file.
"""

from __future__ import annotations

import heapq
import itertools
from pathlib import Path
from typing import Any, Sequence

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from seglight.data.palette import Palette
from seglight.data.transforms import display_rgb
from seglight.model.calibration import ReliabilityBins
from seglight.report.figures import confusion_figure
from seglight.report.html import hex_color, png_uri, render

THUMB_WIDTH = 320
ERROR_RGB = (230, 30, 30)  # a wrong pixel on the error map
VOID_RGB = (40, 40, 40)  # a void pixel: not scored


def thumbnail(array: np.ndarray, width: int = THUMB_WIDTH, nearest: bool = False) -> np.ndarray:
    """(H,W[,3]) uint8 -> at most ``width`` wide, aspect kept (nearest neighbour for label maps)."""
    h, w = array.shape[:2]
    if w <= width:
        return array
    size = (width, max(1, round(h * width / w)))
    return np.asarray(
        Image.fromarray(array).resize(size, Image.Resampling.NEAREST if nearest else Image.Resampling.BILINEAR)
    )


def error_map(image: np.ndarray, target: np.ndarray, pred: np.ndarray, ignore_index: int) -> np.ndarray:
    """(H,W,3) uint8: the image faded to grey, wrong pixels red, void pixels dark."""
    grey = image.astype(np.float32).mean(axis=2, keepdims=True) * 0.5 + 110
    out = np.repeat(grey, 3, axis=2).astype(np.uint8)
    void = target == ignore_index
    out[(pred != target) & ~void] = ERROR_RGB
    out[void] = VOID_RGB
    return out


class Gallery:
    """The ``k`` lowest- and ``k`` highest-scoring images offered, each as four thumbnails (image, ground
    truth, prediction, error map), kept in two bounded heaps."""

    def __init__(self, k: int, palette: Palette) -> None:
        self.k = k
        self.palette = palette
        self._worst: list[tuple[float, int, dict[str, Any]]] = []  # max-heap on score via negation
        self._best: list[tuple[float, int, dict[str, Any]]] = []  # min-heap on score
        self._order = itertools.count()

    def offer(self, name: str, score: float, image: np.ndarray, target: np.ndarray, pred: np.ndarray) -> None:
        """image (H,W,3) uint8, target and pred (H,W) class indices (target with ignore_index for void)."""
        if self.k <= 0:
            return
        n = next(self._order)
        fits_worst = len(self._worst) < self.k or -self._worst[0][0] > score
        fits_best = len(self._best) < self.k or self._best[0][0] < score
        if not (fits_worst or fits_best):
            return
        entry = {"name": name, "score": score, "panels": self._panels(image, target, pred)}
        if fits_worst:
            _push(self._worst, (-score, n, entry), self.k)
        if fits_best:
            _push(self._best, (score, n, entry), self.k)

    def _panels(self, image: np.ndarray, target: np.ndarray, pred: np.ndarray) -> np.ndarray:
        ignore = self.palette.ignore_index
        image = display_rgb(image)
        tiles = [
            thumbnail(image),
            thumbnail(self.palette.to_color(target), nearest=True),
            thumbnail(self.palette.to_color(pred), nearest=True),
            thumbnail(error_map(image, target, pred, ignore), nearest=True),
        ]
        gap = np.full((tiles[0].shape[0], 4, 3), 255, np.uint8)
        return np.concatenate([t for tile in tiles for t in (tile, gap)][:-1], axis=1)

    def worst(self) -> list[dict[str, Any]]:
        return [e for _, _, e in sorted(self._worst, key=lambda t: (-t[0], t[1]))]

    def best(self) -> list[dict[str, Any]]:
        return [e for _, _, e in sorted(self._best, key=lambda t: (-t[0], t[1]))]


def _push(heap: list, item: tuple, k: int) -> None:
    if len(heap) < k:
        heapq.heappush(heap, item)
    else:
        heapq.heappushpop(heap, item)


def reliability_figure(bins: ReliabilityBins, title: str = "reliability"):
    """Accuracy against confidence per bin (the diagonal is perfect calibration), pixel counts below."""
    centres = (bins.edges[:-1] + bins.edges[1:]) / 2
    width = bins.edges[1] - bins.edges[0]
    fig, (ax, ax_count) = plt.subplots(2, 1, figsize=(4.6, 5.0), gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    accuracy = bins.accuracy()
    ax.bar(centres, np.nan_to_num(accuracy), width=width * 0.95, color="#4c78a8", label="accuracy")
    ax.plot([0, 1], [0, 1], "--", color="#888", label="perfect calibration")
    ax.plot(centres, bins.mean_confidence(), "o", ms=3, color="#e45756", label="mean confidence")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(f"{title}: ECE {bins.ece():.3f}")
    ax.legend(fontsize=8, loc="upper left")
    ax_count.bar(centres, bins.count / max(bins.count.sum(), 1), width=width * 0.95, color="#9d9d9d")
    ax_count.set_ylabel("pixels")
    ax_count.set_xlabel("confidence (largest class probability)")
    fig.tight_layout()
    return fig


def class_rows(stats: dict[str, Any], names: Sequence[str], confusion: np.ndarray, palette: Palette) -> list[dict]:
    """One dict per class for the table: colour, IoU with interval, precision, recall, Dice, pixel share."""
    share = confusion.sum(axis=1) / max(confusion.sum(), 1)
    return [
        {
            "name": name,
            "color": hex_color(palette.colors[k]),
            "iou": stats["iou"][k],
            "iou_ci": stats["iou_ci"][k],
            "precision": stats["precision"][k],
            "recall": stats["recall"][k],
            "dice": stats["class_dice"][k],
            "share": share[k],
        }
        for k, name in enumerate(names)
    ]


def write_report(
    path: str | Path,
    stats: dict[str, Any],
    names: Sequence[str],
    palette: Palette,
    confusion: np.ndarray,
    reliability: ReliabilityBins,
    gallery: Gallery,
    calibration: dict[str, Any],
    provenance: dict[str, Any],
    images: int,
) -> Path:
    """Renders report.html. ``stats``: ``seglight.report.bootstrap.bootstrap`` of the per-image confusions;
    ``confusion`` (C,C) the summed counts; ``calibration``: temperature in use, ECE, and after a fit the fitted
    temperature and the ECE before/after on the pixel sample; ``provenance``: name -> text."""
    return render(
        "report.html.j2",
        path,
        stats=stats,
        images=images,
        classes=class_rows(stats, names, confusion, palette),
        confusion_png=png_uri(confusion_figure(confusion, names)),
        reliability_png=png_uri(reliability_figure(reliability)),
        calibration=calibration,
        worst=[dict(e, png=png_uri(e["panels"])) for e in gallery.worst()],
        best=[dict(e, png=png_uri(e["panels"])) for e in gallery.best()],
        provenance=provenance,
    )
