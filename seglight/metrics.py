"""Segmentation metrics (torchmetrics) and the metric key names used everywhere else.

``build_metrics`` gives a MetricCollection fed with prediction (B,H,W) and target (B,H,W):
  mIoU  macro Jaccard index over classes present in prediction or target
  iou   per-class Jaccard index (C,)
  dice  macro Dice (= F1 over pixels)
  acc   pixel accuracy (micro)
All ignore ``ignore_index`` pixels. Keys are logged as ``<stage>/<name>``, per class as
``<stage>/iou/<class name>``.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score, MulticlassJaccardIndex

MIOU, IOU, DICE, ACC, LOSS = "mIoU", "iou", "dice", "acc", "loss"
MONITOR = f"val/{MIOU}"  # what checkpoints and early stopping watch (mode max)


def build_metrics(num_classes: int, ignore_index: int = 255) -> MetricCollection:
    kw = {"num_classes": num_classes, "ignore_index": ignore_index, "validate_args": False}
    return MetricCollection({
        MIOU: MulticlassJaccardIndex(average="macro", **kw),
        IOU: MulticlassJaccardIndex(average="none", **kw),
        DICE: MulticlassF1Score(average="macro", **kw),
        ACC: MulticlassAccuracy(average="micro", **kw),
    }, compute_groups=False)  # with compute groups, members sharing a state computed from unsynced copies under
    #                           DDP (mIoU differed from 1 process; tests/test_reliability.py)


def flatten(values: Mapping[str, torch.Tensor], stage: str, class_names: Sequence[str]) -> dict[str, float]:
    """Computed collection -> {"val/mIoU": .., "val/iou/<class>": .., ...} as floats (no prefix if stage is "")."""
    prefix = f"{stage}/" if stage else ""
    out: dict[str, float] = {}
    for key, value in values.items():
        if value.ndim == 0:
            out[f"{prefix}{key}"] = float(value)
        else:
            for name, v in zip(class_names, value.tolist()):
                out[f"{prefix}{key}/{name}"] = float(v)
    return out
