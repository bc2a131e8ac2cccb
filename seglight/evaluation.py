"""evaluate: a model over a labelled split -> metrics.json, per_class.csv, confusion.png, and a printed table."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from seglight.data.dataset import SegmentationDataset
from seglight.inference import Predictor
from seglight.metrics import build_metrics, class_scores, flatten
from seglight.report import print_class_table, write_json
from seglight.visualize import confusion_figure, save_figure


def evaluate(predictor: Predictor, dataset: SegmentationDataset, output: str | Path) -> dict[str, float]:
    """Predicts every image of ``dataset`` at its own size and scores it against its mask (void ignored).

    Writes ``metrics.json`` (``mIoU``, ``dice``, ``acc``, ``iou/<class>``), ``per_class.csv`` (class, IoU,
    Dice, pixel share) and ``confusion.png`` (row-normalised) into ``output``; returns the metrics.
    """
    names, ignore = predictor.class_names, dataset.ignore_index
    if dataset.num_classes != len(names):
        raise ValueError(f"the model has {len(names)} classes {names}, the data {dataset.num_classes}")
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    metrics = build_metrics(len(names), ignore)
    for i in tqdm(range(len(dataset)), desc="evaluate", unit="img"):
        image, mask = dataset.read_pair(i)
        pred = torch.from_numpy(predictor.predict_masks([image])[0].astype(np.int64))[None]  # (1,H,W)
        target = torch.from_numpy(mask.astype(np.int64))[None]                         # (1,H,W)
        metrics.update(pred, target)
    result = flatten(metrics.compute(), "", names)
    cm = metrics.last_confusion.numpy()
    share = cm.sum(axis=1) / max(cm.sum(), 1)
    per_class_dice = class_scores(metrics.last_confusion)[1].tolist()
    write_json(output / "metrics.json", result)
    with (output / "per_class.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["class", "IoU", "Dice", "pixel_share"])
        for k, name in enumerate(names):
            w.writerow([name, f"{result[f'iou/{name}']:.6f}", f"{per_class_dice[k]:.6f}", f"{share[k]:.6f}"])
    save_figure(confusion_figure(cm, names), output / "confusion.png")
    print_class_table({f"eval/{k}": v for k, v in result.items()}, "eval", names, title=f"evaluation ({len(dataset)} images)")
    return result
