"""audit: which labels does the model doubt? Ranks the images of a labelled split by how confidently a model
disagrees with their masks, confident-learning style (Northcutt et al., 2021), pixel by pixel on the softmax.

Pass 1 predicts every image once and sums, per class j, the predicted probability p_j over the pixels labelled j:
their mean is the class's threshold t_j (its self-confidence: how sure the model is of j where the label says j).
A pixel labelled y whose predicted class k (the argmax) is not y is *confidently disputed* when p_k >= t_k (and
p_k > p_y): the model is as sure of k there as it is, on average, where the label says k. Void
pixels are never disputed. Pass 2 scores each image from what pass 1 kept of the pixels where prediction and label
differ (``Disagreement``: 6 bytes for each such pixel, 1 bit for every other), so no image is predicted twice.

The score of an image is the share of its labelled pixels that lie in confidently disputed *regions*, each pixel
weighted by its margin p_k - p_y; regions are the disputed pixels that survive a ``REGION_OPENING`` square opening.
Why regions: a good model disagrees confidently with almost every mask along the outlines (an annotation drawn a
pixel off, a decoder's blur), in slivers one or two pixels wide. Their share grows with the length of outline, so the
plain disputed share ranks clean images of many small objects above an image with a whole object under the wrong
class; the opening drops the slivers and keeps the object (tests/test_audit.py builds that trap and checks both
rankings). Why the margin: of two regions of one size, the one the model is sure of ranks above one where two
classes are nearly tied. The price: a mislabelled structure thinner than the opening (a pole a pixel or two wide)
does not count. A high score flags a label to look at, not a proven error: the model may be the one that is wrong.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from seglight.data.dataset import SegmentationDataset
from seglight.inference.predictor import Predictor
from seglight.inference.scored_data import checkpoint_dataset
from seglight.report.audit_figures import suspect_pictures
from seglight.report.html import hex_color, png_uri, render
from seglight.util.files import atomic_write

SUSPECTS = "suspects.csv"
PAGE = "audit.html"
TEMPLATE = "audit.html.j2"
COLUMNS = ["image", "score", "disputed_fraction", "disputed_pixels", "region_pixels", "main_confusion"]
REGION_OPENING = 3  # side of the square opening that keeps disputed regions and drops slivers along outlines


@dataclass
class Disagreement:
    """What pass 2 needs of one image: the pixels whose predicted class is not the label (void included).

    ``where`` is the (H*W,) bool of those n pixels packed into bits; ``label`` and ``predicted`` (n,) uint16 are their
    label y and predicted class k, ``p_label`` and ``p_predicted`` (n,) float16 the probabilities p_y (NaN on void)
    and p_k; ``labelled`` counts the image's non-void pixels."""

    shape: tuple[int, int]
    where: np.ndarray
    label: np.ndarray
    predicted: np.ndarray
    p_label: np.ndarray
    p_predicted: np.ndarray
    labelled: int

    def pixels(self) -> np.ndarray:
        """(H,W) bool: where the prediction is not the label."""
        h, w = self.shape
        return np.unpackbits(self.where, count=h * w).astype(bool).reshape(h, w)

    def prediction(self, mask: np.ndarray) -> np.ndarray:
        """The predicted classes (H,W) uint16, rebuilt from the label ``mask`` (H,W) and the disagreements."""
        pred = mask.astype(np.uint16)
        pred[self.pixels()] = self.predicted
        return pred

    def disputed(self, thresholds: np.ndarray) -> np.ndarray:
        """(n,) bool: which of the n disagreeing pixels are confidently disputed under ``thresholds`` (C,)."""
        p_k = self.p_predicted.astype(np.float32)
        with np.errstate(invalid="ignore"):  # void pixels: p_y is NaN, never disputed
            return (p_k >= thresholds[self.predicted]) & (p_k > self.p_label.astype(np.float32))

    def spread(self, values: np.ndarray, fill: Any = 0) -> np.ndarray:
        """(n,) values of the disagreeing pixels -> (H,W) of their dtype, ``fill`` elsewhere."""
        out = np.full(self.shape, fill, dtype=values.dtype)
        out[self.pixels()] = values
        return out


def disagreement(probs: np.ndarray, mask: np.ndarray, ignore_index: int) -> tuple[Disagreement, np.ndarray]:
    """probs (C,H,W) and the label mask (H,W) of one image -> (its Disagreement, (2,C) float64: per class j the sum
    of p_j over the pixels labelled j and their count, which ``class_thresholds`` turns into thresholds)."""
    num_classes = probs.shape[0]
    valid = mask != ignore_index
    label = np.where(valid, mask, 0).astype(np.intp)
    p_label = np.take_along_axis(probs, label[None], axis=0)[0]  # (H,W)
    predicted = probs.argmax(axis=0)  # (H,W)
    p_predicted = np.take_along_axis(probs, predicted[None], axis=0)[0]  # (H,W)
    stats = np.stack(
        [
            np.bincount(label[valid], weights=p_label[valid], minlength=num_classes),
            np.bincount(label[valid], minlength=num_classes).astype(np.float64),
        ]
    )
    differ = (predicted != mask) | ~valid
    kept = Disagreement(
        shape=(mask.shape[0], mask.shape[1]),
        where=np.packbits(differ.ravel()),
        label=mask[differ].astype(np.uint16),
        predicted=predicted[differ].astype(np.uint16),
        p_label=np.where(valid, p_label, np.nan)[differ].astype(np.float16),
        p_predicted=p_predicted[differ].astype(np.float16),
        labelled=int(valid.sum()),
    )
    return kept, stats


def class_thresholds(stats: np.ndarray) -> np.ndarray:
    """(2,C) summed self-confidence and pixel counts -> (C,) thresholds t_j, the mean p_j over the pixels labelled j;
    inf for a class no pixel is labelled with (nothing is disputed in its favour)."""
    sums, counts = stats
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / counts, np.inf)


def disputed_regions(kept: Disagreement, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """-> ((H,W) bool confidently disputed pixels, (H,W) bool those of them in regions: they survive the opening)."""
    disputed = kept.spread(kept.disputed(thresholds), fill=False)
    kernel = np.ones((REGION_OPENING, REGION_OPENING), np.uint8)
    return disputed, cv2.morphologyEx(disputed.astype(np.uint8), cv2.MORPH_OPEN, kernel).astype(bool)


def score_image(kept: Disagreement, thresholds: np.ndarray, class_names: list[str]) -> dict[str, Any]:
    """One image's row: ``score`` (the margin-weighted share of labelled pixels in disputed regions, see the module
    docstring), ``disputed_fraction`` (share of labelled pixels confidently disputed, regions or not),
    ``disputed_pixels``, ``region_pixels`` and ``main_confusion`` ("A labelled as B": the predicted class and the
    label of most pixels in the regions, or of the disputed pixels where there is no region)."""
    disputed, region = disputed_regions(kept, thresholds)
    labelled = max(kept.labelled, 1)
    margin = kept.p_predicted.astype(np.float32) - np.nan_to_num(kept.p_label.astype(np.float32))
    score = float(kept.spread(margin)[region].sum()) / labelled
    at = region if region.any() else disputed
    confusion = ""
    if at.any():
        c = len(class_names)
        label, predicted = kept.spread(kept.label)[at], kept.spread(kept.predicted)[at]
        y, k = divmod(int(np.bincount(label.astype(np.intp) * c + predicted, minlength=c * c).argmax()), c)
        confusion = f"{class_names[k]} labelled as {class_names[y]}"
    return {
        "score": score,
        "disputed_fraction": int(disputed.sum()) / labelled,
        "disputed_pixels": int(disputed.sum()),
        "region_pixels": int(region.sum()),
        "main_confusion": confusion,
    }


def audit(
    predictor: Predictor, dataset: SegmentationDataset, output: str | Path, top_k: int = 24, title: str = ""
) -> list[dict[str, Any]]:
    """Ranks the images of ``dataset`` by ``score_image``; writes ``suspects.csv`` (``COLUMNS``: every image, most
    suspicious first) and ``audit.html`` (the method, the class thresholds and the ``top_k`` suspects pictured)
    into ``output``. Returns the rows in that order."""
    names = predictor.class_names
    if dataset.num_classes != len(names):
        raise ValueError(f"the model has {len(names)} classes {names}, the data {dataset.num_classes}")
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    kept: list[Disagreement] = []
    stats = np.zeros((2, len(names)))
    for i in tqdm(range(len(dataset)), desc="audit", unit="img"):
        image, mask = dataset.read_pair(i)
        one, image_stats = disagreement(predictor.predict_image(image), mask, dataset.ignore_index)
        kept.append(one)
        stats += image_stats
    thresholds = class_thresholds(stats)
    rows = [{"image": str(dataset.pairs[i][0]), **score_image(k, thresholds, names)} for i, k in enumerate(kept)]
    order = sorted(range(len(rows)), key=lambda i: -rows[i]["score"])  # stable: ties keep the dataset's order
    _write_suspects(output / SUSPECTS, [rows[i] for i in order])
    suspects = []
    for rank, i in enumerate(order[:top_k], start=1):
        image, mask = dataset.read_pair(i)
        region = disputed_regions(kept[i], thresholds)[1]
        pictures = suspect_pictures(image, mask, kept[i].prediction(mask), region, predictor.palette)
        pngs = {k: png_uri(p) for k, p in pictures.items()}
        suspects.append({**rows[i], "rank": rank, "name": Path(rows[i]["image"]).name, "pictures": pngs})
    classes = [
        {
            "name": n,
            "colour": hex_color(predictor.palette.colors[j]),
            "threshold": float(t) if np.isfinite(t) else None,
            "pixels": int(count),
        }
        for j, (n, t, count) in enumerate(zip(names, thresholds, stats[1]))
    ]
    render(
        TEMPLATE,
        output / PAGE,
        title=title,
        images=len(rows),
        suspects=suspects,
        classes=classes,
        opening=REGION_OPENING,
    )
    print(f"audit of {len(rows)} images: {output / SUSPECTS}, {output / PAGE}")
    for row in suspects[:5]:
        print(f"  {row['rank']:>3}  {row['score']:.4f}  {row['name']}  {row['main_confusion']}")
    return [rows[i] for i in order]


def _write_suspects(path: Path, rows: list[dict[str, Any]]) -> None:
    """suspects.csv: ``COLUMNS``, one row per image in the order given, fractions to 6 decimals."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        fractions = [f"{row['score']:.6f}", f"{row['disputed_fraction']:.6f}"]
        writer.writerow([row["image"], *fractions, row["disputed_pixels"], row["region_pixels"], row["main_confusion"]])
    atomic_write(path, lambda f: f.write(text.getvalue().encode("utf-8")))


def audit_checkpoint(
    ckpt: str | Path, data: dict[str, Any], split: str, output: str | Path, top_k: int = 24, **predictor: Any
) -> list[dict[str, Any]]:
    """``audit`` of the model at ``ckpt`` on ``split`` of the data config ``data`` (plain values, resolved; the split
    the checkpoint recorded where it applies, see ``scored_data.split_dataset``), run with ``predictor`` options."""
    model, dataset, _ = checkpoint_dataset(ckpt, data, split, **predictor)
    return audit(model, dataset, output, top_k, title=f"{ckpt}, {split} split")
