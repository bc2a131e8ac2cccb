import torch

from seglight.metrics import build_metrics, flatten


def test_metrics_equal_hand_computed_values():
    # 3 classes; the last target pixel is void (255) and must not count.
    target = torch.tensor([[0, 0, 1, 1, 2, 2, 255]])
    pred = torch.tensor([[0, 1, 1, 1, 2, 0, 2]])
    m = build_metrics(3, ignore_index=255)
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
    m = build_metrics(2)
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
    ref = {"mIoU": MulticlassJaccardIndex(average="macro", **kw), "dice": MulticlassF1Score(average="macro", **kw),
           "acc": MulticlassAccuracy(average="micro", **kw), "iou": MulticlassJaccardIndex(average="none", **kw)}
    m = build_metrics(6, ignore_index=255)
    valid = 0
    for _ in range(3):
        target = torch.randint(0, 5, (2, 16, 20), generator=g)
        pred = torch.where(torch.rand(target.shape, generator=g) < 0.6, target,
                           torch.randint(0, 4, target.shape, generator=g))
        pred[target == 4] = 0  # class 4: target only, never predicted
        target[torch.rand(target.shape, generator=g) < 0.1] = 255
        valid += int((target != 255).sum())
        m.update(pred, target)
        for r in ref.values():
            r.update(pred, target)
    out = m.compute()
    for key, r in ref.items():
        torch.testing.assert_close(out[key], r.compute(), atol=1e-6, rtol=0)
    assert out["iou"][5] == 0 and out["iou"][4] == 0  # absent / never predicted
    assert int(m.last_confusion.sum()) == valid  # every non-void pixel once
