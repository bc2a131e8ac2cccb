"""How sure a segmentation score is: bootstrap over images (or blocks of video frames) of the dataset-level
confusion matrix.

The scores are the ones ``seglight.model.metrics`` defines: one confusion matrix summed over the images
(rows = target, columns = prediction, void left out), IoU per class, mIoU the macro mean over the classes
present in target or prediction. A bootstrap replicate draws N images with replacement from the N scored,
sums their (C,C) matrices and scores the sum; the 2.5th and 97.5th percentiles of R replicates are the 95%
interval. Images, not pixels, are the unit: pixels of one image are far from independent. Frames of a video a
moment apart are not independent either: with ``blocks`` (``resampling_blocks``: 10 s of frames of one sequence,
where the data names its frames) whole blocks are drawn instead, as many as there are; from fewer than
``MIN_BLOCKS`` blocks no interval is drawn (NaN).

``paired_difference`` draws the same images for two models scored on the same images, so the interval of
B - A is that of the difference, not of two overlapping intervals.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import yaml

from seglight.data.errors import DataError
from seglight.data.groups import frame_of
from seglight.model.metrics import scores

log = logging.getLogger(__name__)

REPLICATES = 1000
LEVEL = 0.95
# a class in fewer scored images gets no per-class interval: every replicate holding it repeats those images'
# IoU, so the percentiles collapse to a point and would read as certainty
MIN_IMAGES = 5
PER_CLASS = ("iou", "class_dice", "precision", "recall")
# block_frames=auto where the data names its frames (data.frame_pattern): 10 s at 30 fps. On CamVid's folds paired
# intervals still widen from blocks of 30 to 90 to 300 frames (experiments/camvid/README.md): scenes a few seconds
# apart are alike too
AUTO_BLOCK_FRAMES = 300
MIN_BLOCKS = 10  # fewer blocks than this to draw from: no interval (a percentile bootstrap of so few is too narrow)


def resampling_blocks(
    images: Sequence[str], frame_pattern: str | None, block_frames: int | str | None
) -> list[str] | None:
    """The block of each image that a bootstrap draws whole: its sequence and frame number // ``block_frames``
    (``data.frame_pattern`` reads them from the file name; ``auto``: ``AUTO_BLOCK_FRAMES`` where the data has a
    frame pattern). None (images drawn one by one) for ``block_frames`` null or 0, or ``auto`` without a pattern."""
    if not block_frames or (block_frames == "auto" and not frame_pattern):
        return None
    if not frame_pattern:
        raise ValueError(f"block_frames={block_frames} needs data.frame_pattern: (sequence, frame number) of a file")
    frames = frames_per_block(block_frames)
    blocks = []
    for image in images:
        sequence, number = frame_of(Path(image).stem, frame_pattern)
        blocks.append(f"{sequence}_{number // frames}")
    if too_few(blocks):
        log.warning("the %d images lie in %d blocks of %d frames, fewer than %d: no interval is drawn "
                    "(block_frames=N for smaller blocks; null draws images one by one, as if neighbouring frames "
                    "were independent)", len(images), len(set(blocks)), frames, MIN_BLOCKS)  # fmt: skip
    return blocks


def frames_per_block(block_frames: int | str) -> int:
    """The frame numbers per block of ``block_frames`` (``auto``: ``AUTO_BLOCK_FRAMES``)."""
    return AUTO_BLOCK_FRAMES if block_frames == "auto" else int(block_frames)


def too_few(blocks: Sequence[str] | None) -> bool:
    """Whether ``blocks`` are too few (under ``MIN_BLOCKS``) to draw an interval from."""
    return blocks is not None and len(set(blocks)) < MIN_BLOCKS


def run_frame_pattern(run_dir: Path) -> str | None:
    """data.frame_pattern of a training run (its config.yaml); None where it has none."""
    config = run_dir / "config.yaml"
    data = (yaml.safe_load(config.read_text()) or {}).get("data") or {} if config.is_file() else {}
    return data.get("frame_pattern")


def run_blocks(run_dir: Path, images: Sequence[str]) -> list[str] | None:
    """``resampling_blocks`` of a training run's val images (``block_frames=auto``, its config's data.frame_pattern)."""
    try:
        return resampling_blocks(images, run_frame_pattern(run_dir), "auto")
    except DataError as e:  # a summary or a model card is not lost over a name the pattern does not read
        log.warning("%s: intervals over images, not blocks of frames: %s", run_dir, e)
        return None


def replicate_weights(
    n: int, replicates: int = REPLICATES, seed: int = 0, blocks: Sequence[str] | None = None
) -> np.ndarray:
    """(R, n) how often each of n images is drawn in each of R bootstrap replicates: images drawn one by one
    (rows sum to n) or, with ``blocks`` (each image's), whole blocks (as many as there are), each image as often
    as its block."""
    if n < 1:
        raise ValueError("a bootstrap needs at least one image")
    rng = np.random.default_rng(seed)
    if blocks is None:
        return rng.multinomial(n, np.full(n, 1.0 / n), size=replicates)
    if len(blocks) != n:
        raise ValueError(f"{len(blocks)} blocks for {n} images")
    names, index = np.unique(np.asarray(blocks), return_inverse=True)
    return rng.multinomial(len(names), np.full(len(names), 1.0 / len(names)), size=replicates)[:, index]


def _replicate_scores(
    confusions: np.ndarray, weights: np.ndarray, point: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """(N,C,C) and (R,N) -> ``scores`` of each replicate's summed confusion matrix, (R, ...). The means (mIoU,
    Dice) are over the classes present in the N images, as those of ``point`` (the ``scores`` of their sum: the
    figure) are: a class that a replicate did not draw (none of its images) counts with its score in ``point``.
    Averaging that replicate over the other classes alone would move it by the class's whole share (a class scored
    0.2 among classes scored 0.8, or one predicted in a single image and so scored 0: the mean jumps by its share in
    every replicate that misses it), and leaving such replicates out would weigh that class's images more. A
    replicate that drew only all-void images has no score: NaN, left out of the interval."""
    n, c, _ = confusions.shape
    summed = (weights @ confusions.reshape(n, c * c).astype(np.float64)).reshape(-1, c, c)
    out = scores(summed)
    present = ~np.isnan(point["iou"])  # (C,) in the target or the prediction of some image
    empty = summed.sum((1, 2)) == 0  # every drawn image all void (always so where no class is present)
    for mean, per_class in (("mIoU", "iou"), ("dice", "class_dice")):
        values = np.where(np.isnan(out[per_class]), point[per_class], out[per_class])[:, present]  # (R, present)
        out[mean] = np.full(len(summed), np.nan) if not present.any() else np.where(empty, np.nan, values.mean(1))
    return out


def interval(samples: np.ndarray, level: float = LEVEL) -> np.ndarray:
    """(R, ...) replicates -> (..., 2) percentile interval [low, high]; NaN where every replicate is NaN."""
    tail = (1 - level) / 2 * 100
    with warnings.catch_warnings():  # a class absent from every replicate has no interval: NaN, no warning
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanpercentile(samples, [tail, 100 - tail], axis=0)
    return np.stack([low, high], axis=-1)


def too_rare(confusions: np.ndarray, side: str = "either", blocks: Sequence[str] | None = None) -> np.ndarray:
    """(N,C,C) -> (C,) bool: classes in fewer than ``MIN_IMAGES`` images (or ``blocks``): in the ground truth
    (``side="truth"``, what recall divides by), in the prediction (``"prediction"``, precision's) or in either
    (IoU, Dice)."""
    truth, predicted = confusions.sum(2) > 0, confusions.sum(1) > 0  # (N,C); rows = ground truth
    appears = {"truth": truth, "prediction": predicted, "either": truth | predicted}[side]
    if blocks is not None:  # in how many blocks
        _, index = np.unique(np.asarray(blocks), return_inverse=True)
        per_block = np.zeros((index.max() + 1, appears.shape[1]), bool)
        np.logical_or.at(per_block, index, appears)
        appears = per_block
    return appears.sum(0) < MIN_IMAGES


def bootstrap(
    confusions: np.ndarray,
    replicates: int = REPLICATES,
    seed: int = 0,
    level: float = LEVEL,
    blocks: Sequence[str] | None = None,
) -> dict:
    """Per-image confusion matrices (N,C,C) -> the scores of their sum with intervals (images drawn one by one, or
    whole ``blocks``: see ``replicate_weights``).

    Returns {name: value} for the ``scores`` of the summed matrix, {name + "_ci": (..., 2)} for each (per class:
    NaN for a class in fewer than ``MIN_IMAGES`` images; for recall, ground truths; for precision, predictions), and
    "per_image_mIoU" (the mean over images of each image's own mIoU, images without a scored pixel left out)
    with its "per_image_mIoU_ci".
    """
    weights = replicate_weights(len(confusions), replicates, seed, blocks)
    point = scores(confusions.sum(0))
    samples = _replicate_scores(confusions, weights, point)
    out: dict[str, Any] = dict(point)
    out.update({f"{k}_ci": interval(v, level) for k, v in samples.items()})
    for key in PER_CLASS:
        side = {"recall": "truth", "precision": "prediction"}.get(key, "either")
        out[f"{key}_ci"][too_rare(confusions, side, blocks)] = np.nan
    scored = confusions.sum((1, 2)) > 0  # an all-void image has no mIoU: out of the per-image mean
    image_miou = np.where(scored, scores(confusions)["mIoU"], 0.0)  # (N,)
    out["per_image_mIoU"] = float(image_miou[scored].mean()) if scored.any() else float("nan")
    with np.errstate(invalid="ignore"):
        out["per_image_mIoU_ci"] = interval((weights @ image_miou) / (weights @ scored), level)
    if too_few(blocks):
        out.update({k: np.full_like(v, np.nan, dtype=float) for k, v in out.items() if k.endswith("_ci")})
    return out


def paired_difference(
    a: np.ndarray,
    b: np.ndarray,
    replicates: int = REPLICATES,
    seed: int = 0,
    level: float = LEVEL,
    blocks: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """Two models' per-image confusion matrices (N,C,C) on the same N images, in the same order -> B - A:
    {"mIoU_diff": (), "mIoU_diff_ci": (2,), "iou_diff": (C,), "iou_diff_ci": (C,2)}, each replicate drawing
    the same images (or ``blocks``) for both (no per-class interval for a class in fewer than ``MIN_IMAGES``)."""
    if a.shape != b.shape:
        raise ValueError(f"paired runs need the same images and classes: {a.shape} vs {b.shape}")
    weights = replicate_weights(len(a), replicates, seed, blocks)
    pa, pb = scores(a.sum(0)), scores(b.sum(0))
    sa, sb = _replicate_scores(a, weights, pa), _replicate_scores(b, weights, pb)
    iou_diff_ci = interval(sb["iou"] - sa["iou"], level)
    iou_diff_ci[too_rare(a + b, blocks=blocks)] = np.nan
    miou_diff_ci = interval(sb["mIoU"] - sa["mIoU"], level)
    if too_few(blocks):
        iou_diff_ci[:], miou_diff_ci[:] = np.nan, np.nan
    return {
        "mIoU_diff": pb["mIoU"] - pa["mIoU"],
        "mIoU_diff_ci": miou_diff_ci,
        "iou_diff": pb["iou"] - pa["iou"],
        "iou_diff_ci": iou_diff_ci,
    }
