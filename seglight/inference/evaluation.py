"""evaluate: a model over a labelled split -> metrics.json, per_class.csv, per_image.csv, confusion.png, and a
printed table. ``split_dataset`` picks the images: a checkpoint's own recorded split where it has one."""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from seglight.data.datamodule import SegDataModule
from seglight.data.dataset import SegmentationDataset
from seglight.data.splits import data_differences
from seglight.inference.predictor import Predictor
from seglight.model.metrics import ACC, IOU, MIOU, class_scores, confusion_matrix, confusion_scores, flatten
from seglight.report.figures import confusion_figure, save_figure
from seglight.report.tables import print_class_table, score_text
from seglight.util.files import atomic_write, write_json

log = logging.getLogger(__name__)


def split_dataset(
    dm: SegDataModule,
    split: str,
    recorded: dict[str, Any] | None,
    data_cfg: dict[str, Any],
    ckpt: str | Path = "the model",
) -> SegmentationDataset:
    """The images to score for ``split``: those the checkpoint's run recorded for it (``recorded``, the
    checkpoint's ``data_split``: its data config and splits.json) when the configured data is the data it was
    trained on, else the configured split, with a warning naming the data options that differ."""
    if recorded is None:
        log.warning("%s records no data split: scoring the configured %s split", ckpt, split)
        return dm.raw_dataset(split)
    source, how = data_differences(recorded["data"], data_cfg)
    if source:
        log.warning(
            "the data config differs from the checkpoint's in %s: scoring the configured %s split, not the run's",
            ", ".join(f"data.{k} ({recorded['data'].get(k)!r} -> {data_cfg.get(k)!r})" for k in source),
            split,
        )
        return dm.raw_dataset(split)
    if how:
        log.warning(
            "data.%s differ from the checkpoint's; the run's recorded split is scored all the same", ", data.".join(how)
        )
        for key in how:  # the recorded files are looked up where the run drew them from
            setattr(dm.splits, key, recorded["data"].get(key))
    if not recorded["files"].get(split):
        raise ValueError(f"{ckpt}: its run had no {split} split")
    dm.use_recorded_splits(recorded["files"])
    dataset = dm.raw_dataset(split)
    print(f"scoring the checkpoint's own {split} split: {len(dataset)} images recorded by its run (splits.json)")
    return dataset


def evaluate(predictor: Predictor, dataset: SegmentationDataset, output: str | Path) -> dict[str, float]:
    """Predicts every image of ``dataset`` at its own size and scores it against its mask (void ignored).

    Writes ``metrics.json`` (``mIoU``, ``dice``, ``acc``, ``iou/<class>``), ``per_class.csv`` (class, IoU,
    Dice, pixel share), ``per_image.csv`` (``image`` path, ``mIoU``, ``acc``, ``iou/<class>``; empty where a class
    is in neither mask nor prediction), ``confusions.npz`` (``save_confusions``) and ``confusion.png``
    (row-normalised) into ``output``; returns the metrics.
    """
    names, ignore = predictor.class_names, dataset.ignore_index
    if dataset.num_classes != len(names):
        raise ValueError(f"the model has {len(names)} classes {names}, the data {dataset.num_classes}")
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    total = torch.zeros(len(names), len(names), dtype=torch.long)
    per_image, confusions = [], []
    for i in tqdm(range(len(dataset)), desc="evaluate", unit="img"):
        image, mask = dataset.read_pair(i)
        pred = torch.from_numpy(predictor.predict_masks([image])[0].astype(np.int64))[None]  # (1,H,W)
        target = torch.from_numpy(mask.astype(np.int64))[None]  # (1,H,W)
        confusion = confusion_matrix(pred, target, len(names), ignore)  # (C,C)
        total += confusion
        confusions.append(confusion.numpy())
        per_image.append((str(dataset.pairs[i][0]), confusion_scores(confusion)))
    result = flatten(confusion_scores(total), "", names)
    cm = total.numpy()
    share = cm.sum(axis=1) / max(cm.sum(), 1)
    per_class_dice = class_scores(total)[1].tolist()
    write_json(output / "metrics.json", result)
    with (output / "per_class.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["class", "IoU", "Dice", "pixel_share"])
        for k, name in enumerate(names):
            iou = score_text(result[f"iou/{name}"], digits=6, missing="")  # an absent class: empty cell
            dice = score_text(per_class_dice[k], digits=6, missing="")
            w.writerow([name, iou, dice, f"{share[k]:.6f}"])
    _write_per_image(output / "per_image.csv", per_image, names)
    save_confusions(output / CONFUSIONS, [image for image, _ in per_image], confusions, names)
    save_figure(confusion_figure(cm, names), output / "confusion.png")
    print_class_table(
        {f"eval/{k}": v for k, v in result.items()}, "eval", names, title=f"evaluation ({len(dataset)} images)"
    )
    return result


CONFUSIONS = "confusions.npz"


def save_confusions(path: Path, images: list[str], confusions: list[np.ndarray], names: list[str]) -> None:
    """confusions.npz: ``images`` (N,) paths, ``confusions`` (N,C,C) int64 counts per image (rows = target),
    ``class_names`` (C,): what bootstrap intervals and ``seglight.compare`` resample."""
    stack = np.stack(confusions).astype(np.int64) if confusions else np.zeros((0, len(names), len(names)), np.int64)
    atomic_write(
        path, lambda f: np.savez_compressed(f, images=np.array(images), confusions=stack, class_names=np.array(names))
    )


def load_confusions(path: str | Path) -> tuple[list[str], np.ndarray, list[str]]:
    """confusions.npz -> (image paths, (N,C,C) counts, class names)."""
    with np.load(path) as z:
        return [str(x) for x in z["images"]], z["confusions"], [str(x) for x in z["class_names"]]


def _write_per_image(path: Path, rows: list[tuple[str, dict[str, torch.Tensor]]], names: list[str]) -> None:
    """per_image.csv: image, mIoU, acc, iou/<class> per image, in the dataset's order."""
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", MIOU, ACC, *(f"{IOU}/{n}" for n in names)])
        for image, scores in rows:
            ious = [score_text(v, digits=6, missing="") for v in scores[IOU].tolist()]
            w.writerow([image, f"{float(scores[MIOU]):.6f}", f"{float(scores[ACC]):.6f}", *ious])


def evaluate_checkpoint(
    ckpt: str | Path, data: dict[str, Any], split: str, output: str | Path, **predictor: Any
) -> dict[str, float]:
    """``evaluate`` of the model at ``ckpt`` on ``split`` of the data config ``data`` (plain values, resolved;
    the split the checkpoint recorded where it applies, see ``split_dataset``), run with ``predictor`` options."""
    from hydra.utils import instantiate

    model = Predictor.load(ckpt, **predictor)
    dm = instantiate(data, _convert_="all")
    return evaluate(model, split_dataset(dm, split, model.data_split, data, ckpt), output)
