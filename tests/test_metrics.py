import csv
import json
import math
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from seglight.inference.evaluation import evaluate
from seglight.model.metrics import SegmentationMetrics, class_scores, confusion_scores, flatten
from seglight.report.tables import class_table
from seglight.util.files import write_json


def test_metrics_equal_hand_computed_values():
    # 3 classes; the last target pixel is void (255) and must not count.
    target = torch.tensor([[0, 0, 1, 1, 2, 2, 255]])
    pred = torch.tensor([[0, 1, 1, 1, 2, 0, 2]])
    m = SegmentationMetrics(3, ignore_index=255)
    m.update(pred, target)
    out = flatten(m.compute(), "val", ["a", "b", "c"])
    # class a: tp 1, fp 1 (pixel 5), fn 1 (pixel 1) -> IoU 1/3, Dice 2/4
    # class b: tp 2, fp 1, fn 0 -> IoU 2/3, Dice 4/5 ; class c: tp 1, fp 0, fn 1 -> IoU 1/2, Dice 2/3
    ious = [1 / 3, 2 / 3, 1 / 2]
    dices = [1 / 2, 4 / 5, 2 / 3]
    for name, v in zip("abc", ious):
        assert abs(out[f"val/iou/{name}"] - v) < 1e-6
    assert abs(out["val/mIoU"] - sum(ious) / 3) < 1e-6
    assert abs(out["val/dice"] - sum(dices) / 3) < 1e-6
    assert abs(out["val/acc"] - 4 / 6) < 1e-6


def test_accumulates_over_batches():
    m = SegmentationMetrics(2)
    m.update(torch.tensor([[0, 0]]), torch.tensor([[0, 0]]))
    m.update(torch.tensor([[1, 1]]), torch.tensor([[0, 1]]))
    out = flatten(m.compute(), "val", ["x", "y"])
    assert abs(out["val/iou/x"] - 2 / 3) < 1e-6 and abs(out["val/iou/y"] - 1 / 2) < 1e-6


def test_metrics_equal_torchmetrics_classes_with_absent_classes():
    # 6 classes, class 5 never appears (absent from the macro means), class 4 only in the target,
    # void pixels scattered; several batches accumulate.
    from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score, MulticlassJaccardIndex

    g = torch.Generator().manual_seed(0)
    kw = {"num_classes": 6, "ignore_index": 255}
    ref = {
        "mIoU": MulticlassJaccardIndex(average="macro", **kw),
        "dice": MulticlassF1Score(average="macro", **kw),
        "acc": MulticlassAccuracy(average="micro", **kw),
        "iou": MulticlassJaccardIndex(average="none", **kw),
    }
    m = SegmentationMetrics(6, ignore_index=255)
    valid = 0
    for _ in range(3):
        target = torch.randint(0, 5, (2, 16, 20), generator=g)
        pred = torch.where(
            torch.rand(target.shape, generator=g) < 0.6, target, torch.randint(0, 4, target.shape, generator=g)
        )
        pred[target == 4] = 0  # class 4: target only, never predicted
        target[torch.rand(target.shape, generator=g) < 0.1] = 255
        valid += int((target != 255).sum())
        m.update(pred, target)
        for r in ref.values():
            r.update(pred, target)
    out = m.compute()
    for key, r in ref.items():
        if key == "iou":  # torchmetrics scores the absent class 5 as 0, seglight as NaN
            torch.testing.assert_close(out[key][:5], r.compute()[:5], atol=1e-6, rtol=0)
        else:
            torch.testing.assert_close(out[key], r.compute(), atol=1e-6, rtol=0)
    assert torch.isnan(out["iou"][5]) and out["iou"][4] == 0  # absent / never predicted
    assert int(m.last_confusion.sum()) == valid  # every non-void pixel once


def test_absent_class_scores_nan_and_is_left_out_of_the_means():
    # rows = target, columns = prediction; class 2 is in neither, class 1 only in the prediction
    confmat = torch.tensor([[3, 1, 0], [0, 0, 0], [0, 0, 0]])
    iou, dice, present = class_scores(confmat)
    assert present.tolist() == [True, True, False]
    assert iou[:2].tolist() == [0.75, 0.0] and torch.isnan(iou[2])
    assert abs(float(dice[0]) - 6 / 7) < 1e-6 and float(dice[1]) == 0.0 and torch.isnan(dice[2])
    out = confusion_scores(confmat)
    assert abs(float(out["mIoU"]) - 0.75 / 2) < 1e-6
    assert abs(float(out["dice"]) - 6 / 7 / 2) < 1e-6
    assert abs(float(out["acc"]) - 0.75) < 1e-6


def test_class_table_shows_a_dash_for_an_absent_class():
    metrics = {"val/iou/a": 0.5, "val/iou/b": float("nan"), "val/mIoU": 0.5}
    console = Console(record=True, width=80)
    console.print(class_table(metrics, "val", ["a", "b"]))
    rows = {
        line.split("│")[1].strip(): line.split("│")[2].strip()
        for line in console.export_text().splitlines()
        if line.count("│") == 3
    }
    assert rows["a"] == "0.5000" and rows["b"] == "-" and rows["mIoU"] == "0.5000"


def test_write_json_writes_nan_as_null(tmp_path):
    def refuse(name: str) -> None:
        raise ValueError(f"not JSON: {name}")

    write_json(tmp_path / "m.json", {"mIoU": 0.5, "iou/b": float("nan"), "best_ckpt": "x.ckpt"})
    data = json.loads((tmp_path / "m.json").read_text(), parse_constant=refuse)
    assert data == {"mIoU": 0.5, "iou/b": None, "best_ckpt": "x.ckpt"}


class FixedPredictor:
    """Predicts the stored masks (H,W) in turn."""

    def __init__(self, class_names: list[str], preds: list[np.ndarray]) -> None:
        self.class_names, self.preds = class_names, iter(preds)

    def predict_masks(self, images: list[np.ndarray]) -> list[np.ndarray]:
        return [next(self.preds) for _ in images]


class PairsDataset:
    """read_pair(i) -> (image (H,W,3) uint8, mask (H,W)) of given masks; pairs names their files."""

    def __init__(self, masks: list[np.ndarray], num_classes: int, ignore_index: int = 255) -> None:
        self.masks = masks
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.pairs = [(Path(f"img{i}.png"), Path(f"mask{i}.png")) for i in range(len(masks))]

    def __len__(self) -> int:
        return len(self.masks)

    def read_pair(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros((*self.masks[i].shape, 3), np.uint8), self.masks[i]


def test_evaluate_leaves_an_absent_class_empty_in_per_class_csv(tmp_path):
    target = np.array([[0, 0, 1, 255]])
    pred = np.array([[0, 1, 1, 2]])  # class 2 predicted on void only: absent; class 3 nowhere: absent
    result = evaluate(FixedPredictor(list("abcd"), [pred]), PairsDataset([target], 4), tmp_path, report=False)
    with (tmp_path / "per_class.csv").open(newline="") as f:
        rows = {r["class"]: r for r in csv.DictReader(f)}
    assert rows["a"]["IoU"] == "0.500000" and rows["a"]["Dice"] == "0.666667"
    assert rows["b"]["IoU"] == "0.500000" and rows["b"]["Dice"] == "0.666667"
    for name in "cd":
        assert rows[name]["IoU"] == "" and rows[name]["Dice"] == "" and rows[name]["pixel_share"] == "0.000000"
    assert math.isnan(result["iou/c"]) and abs(result["mIoU"] - 0.5) < 1e-6
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["iou/c"] is None and saved["iou/d"] is None and abs(saved["mIoU"] - 0.5) < 1e-6


def test_confusion_matrix_equals_torchmetrics_with_ignored_pixels():
    from torchmetrics.functional.classification import multiclass_confusion_matrix

    from seglight.model.metrics import confusion_matrix

    g = torch.Generator().manual_seed(0)
    for classes, shape in ((2, (1, 5, 7)), (11, (4, 33, 40)), (19, (2, 64, 64))):
        pred = torch.randint(0, classes, shape, generator=g)
        target = torch.randint(0, classes, shape, generator=g)
        target[torch.rand(shape, generator=g) < 0.2] = 255
        expected = multiclass_confusion_matrix(pred, target, classes, ignore_index=255)
        got = confusion_matrix(pred, target, classes, 255)
        assert torch.equal(got, expected) and got.dtype == torch.long
        assert got.sum() == (target != 255).sum()
