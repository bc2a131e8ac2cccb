"""Property tests: every loss on random shapes and void fractions, SegmentationMetrics against torchmetrics.

torchmetrics (MulticlassJaccardIndex / MulticlassF1Score, zero_division=0) scores a class absent from both
prediction and target as 0 per class and leaves it out of the macro mean; seglight scores it NaN. With no
class present at all (every target pixel void) torchmetrics' macro IoU is 0/0 = NaN, seglight's mIoU 0.
"""

from __future__ import annotations

import math

import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score, MulticlassJaccardIndex

from seglight.model.losses import LOSSES, build_loss
from seglight.model.metrics import SegmentationMetrics, class_scores

IGNORE = 255
SETTINGS = settings(max_examples=25, deadline=None)

shapes = st.tuples(st.integers(1, 3), st.integers(2, 6), st.integers(1, 17), st.integers(1, 17))  # B,C,H,W
seeds = st.integers(0, 2**31 - 1)


@st.composite
def loss_cases(draw) -> tuple[str, list[float] | None, torch.dtype]:
    """(loss name, class weights (C,) or None, logits dtype); C is drawn separately and weights cut to it."""
    name = draw(st.sampled_from(sorted(LOSSES)))
    weighted = name != "lovasz" and draw(st.booleans())  # lovasz takes no class weights
    weights = draw(st.lists(st.floats(0.1, 10.0), min_size=6, max_size=6)) if weighted else None
    return name, weights, draw(st.sampled_from([torch.float32, torch.bfloat16]))


def random_logits(shape: tuple[int, int, int, int], dtype: torch.dtype, g: torch.Generator) -> torch.Tensor:
    """(B,C,H,W) logits of scale ~3, a leaf that records its gradient."""
    return (torch.randn(shape, generator=g) * 3).to(dtype).requires_grad_()


@SETTINGS
@given(shape=shapes, case=loss_cases(), seed=seeds)
def test_every_loss_is_zero_with_zero_gradient_on_all_void_targets(shape, case, seed):
    name, weights, dtype = case
    b, c, h, w = shape
    logits = random_logits(shape, dtype, torch.Generator().manual_seed(seed))
    target = torch.full((b, h, w), IGNORE)
    loss = build_loss(name, c, IGNORE, None if weights is None else weights[:c])(logits, target)
    assert loss.shape == () and float(loss.detach()) == 0.0, (name, loss)
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits)), name


@SETTINGS
@given(shape=shapes, case=loss_cases(), seed=seeds, void=st.floats(0.0, 1.0))
@example(shape=(1, 3, 2, 2), case=("ce", [1.0, 2.0, 3.0, 1.0, 1.0, 1.0], torch.float32), seed=0, void=1.0)
def test_every_loss_is_finite_on_random_targets_with_void(shape, case, seed, void):
    name, weights, dtype = case
    b, c, h, w = shape
    g = torch.Generator().manual_seed(seed)
    logits = random_logits(shape, dtype, g)
    target = torch.randint(0, c, (b, h, w), generator=g)
    target[torch.rand(b, h, w, generator=g) < void] = IGNORE
    loss = build_loss(name, c, IGNORE, None if weights is None else weights[:c])(logits, target)
    assert loss.shape == () and math.isfinite(float(loss.detach())) and float(loss.detach()) >= 0, (name, loss)
    loss.backward()
    assert torch.isfinite(logits.grad.float()).all(), name


@st.composite
def pixel_batches(draw) -> tuple[int, list[tuple[torch.Tensor, torch.Tensor]]]:
    """(C, [(pred (B,H,W), target (B,H,W)), ...]): 1-3 batches drawn from a random subset of the classes,
    so some classes are absent from both; a random share of target pixels is void."""
    c = draw(st.integers(2, 6))
    used = draw(st.lists(st.integers(0, c - 1), min_size=1, max_size=c, unique=True))
    void = draw(st.floats(0.0, 1.0))
    g = torch.Generator().manual_seed(draw(seeds))
    batches = []
    for _ in range(draw(st.integers(1, 3))):
        b, h, w = draw(st.integers(1, 3)), draw(st.integers(1, 17)), draw(st.integers(1, 17))
        pool = torch.tensor(used)
        target = pool[torch.randint(0, len(used), (b, h, w), generator=g)]
        pred = torch.where(
            torch.rand(b, h, w, generator=g) < 0.5, target, pool[torch.randint(0, len(used), (b, h, w), generator=g)]
        )
        target[torch.rand(b, h, w, generator=g) < void] = IGNORE
        batches.append((pred, target))
    return c, batches


@SETTINGS
@given(case=pixel_batches())
def test_metrics_equal_torchmetrics_on_random_pixels(case):
    c, batches = case
    kw = {"num_classes": c, "ignore_index": IGNORE}
    ref = {
        "mIoU": MulticlassJaccardIndex(average="macro", **kw),
        "iou": MulticlassJaccardIndex(average="none", **kw),
        "dice": MulticlassF1Score(average="macro", **kw),
        "f1": MulticlassF1Score(average="none", **kw),
        "acc": MulticlassAccuracy(average="micro", **kw),
    }
    ours = SegmentationMetrics(c, IGNORE)
    present = torch.zeros(c, dtype=torch.bool)
    for pred, target in batches:
        ours.update(pred, target)
        for r in ref.values():
            r.update(pred, target)
        valid = target != IGNORE
        present[target[valid]] = True
        present[pred[valid]] = True
    out = ours.compute()
    expected = {k: r.compute() for k, r in ref.items()}
    close = {"atol": 1e-6, "rtol": 0.0}
    assert torch.equal(torch.isnan(out["iou"]), ~present)
    torch.testing.assert_close(out["iou"][present], expected["iou"][present], **close)
    _, per_class_dice, scored = class_scores(ours.last_confusion)
    assert torch.equal(scored, present) and torch.equal(torch.isnan(per_class_dice), ~present)
    torch.testing.assert_close(per_class_dice[present], expected["f1"][present], **close)
    torch.testing.assert_close(out["dice"], expected["dice"], **close)
    torch.testing.assert_close(out["acc"], expected["acc"], **close)
    if present.any():
        torch.testing.assert_close(out["mIoU"], expected["mIoU"], **close)
    else:
        assert float(out["mIoU"]) == 0.0 and torch.isnan(expected["mIoU"])
