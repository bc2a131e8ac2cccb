"""Bootstrap intervals over images: known answers on synthetic predictions."""

import numpy as np
import torch

from seglight.model.metrics import confusion_matrix, confusion_scores
from seglight.report.bootstrap import bootstrap, paired_difference, scores


def synthetic_confusions(rng, n=40, c=4, size=32, wrong=(0.1, 0.1, 0.1, 0.1), targets_seed=None):
    """n images (size x size) with random labels (drawn from ``targets_seed`` where given, so two calls
    score the same images); each class's pixels are mislabelled at its own rate."""
    targets = np.random.default_rng(targets_seed) if targets_seed is not None else rng
    out = []
    for _ in range(n):
        target = targets.integers(0, c, (size, size))
        pred = target.copy()
        flip = rng.random((size, size)) < np.asarray(wrong)[target]
        pred[flip] = (target[flip] + rng.integers(1, c, flip.sum())) % c
        out.append(confusion_matrix(torch.from_numpy(pred)[None], torch.from_numpy(target)[None], c).numpy())
    return np.stack(out)


def test_scores_equal_the_metrics_module():
    rng = np.random.default_rng(0)
    conf = synthetic_confusions(rng, n=5, wrong=(0.0, 0.2, 0.5, 0.9))
    conf[:, 3, :] = 0  # class 3 never in the target ...
    conf[:, :, 3] = 0  # ... nor predicted: absent, NaN, out of the mean
    ours = scores(conf.sum(0))
    ref = confusion_scores(torch.from_numpy(conf.sum(0)))
    np.testing.assert_allclose(ours["mIoU"], float(ref["mIoU"]), rtol=1e-6)
    np.testing.assert_allclose(ours["iou"], ref["iou"].numpy(), rtol=1e-6)
    np.testing.assert_allclose(ours["acc"], float(ref["acc"]), rtol=1e-6)
    assert np.isnan(ours["iou"][3])


def test_interval_holds_the_point_and_narrows_with_more_images():
    rng = np.random.default_rng(1)
    few, many = synthetic_confusions(rng, n=10), synthetic_confusions(rng, n=160)
    a, b = bootstrap(few), bootstrap(many)
    for r in (a, b):
        low, high = r["mIoU_ci"]
        assert low <= r["mIoU"] <= high and low < high
        assert (r["iou_ci"][:, 0] <= r["iou"]).all() and (r["iou"] <= r["iou_ci"][:, 1]).all()
    width = lambda r: r["mIoU_ci"][1] - r["mIoU_ci"][0]  # noqa: E731
    assert width(b) < width(a) / 2  # ~1/sqrt(16) of it in theory


def test_identical_runs_differ_by_an_interval_around_zero():
    conf = synthetic_confusions(np.random.default_rng(2))
    diff = paired_difference(conf, conf.copy())
    assert diff["mIoU_diff"] == 0 and diff["mIoU_diff_ci"][0] <= 0 <= diff["mIoU_diff_ci"][1]
    # two equally good models, different errors on the same images: the interval still holds 0
    a = synthetic_confusions(np.random.default_rng(8), targets_seed=9)
    b = synthetic_confusions(np.random.default_rng(10), targets_seed=9)
    diff = paired_difference(a, b)
    assert diff["mIoU_diff_ci"][0] <= 0 <= diff["mIoU_diff_ci"][1]
    assert (diff["iou_diff_ci"][:, 0] <= 0).all() and (diff["iou_diff_ci"][:, 1] >= 0).all()


def test_a_degraded_class_has_its_interval_below_zero_and_the_others_contain_zero():
    a = synthetic_confusions(np.random.default_rng(4), wrong=(0.1, 0.1, 0.1, 0.1), targets_seed=7)
    b = synthetic_confusions(np.random.default_rng(5), wrong=(0.1, 0.1, 0.4, 0.1), targets_seed=7)  # class 2 worse
    assert (a.sum(-1) == b.sum(-1)).all()  # the same images: the same target pixels per class
    diff = paired_difference(a, b)
    assert diff["mIoU_diff_ci"][1] < 0
    assert diff["iou_diff_ci"][2, 1] < 0
    # the other classes only lose the pixels class 2 now gives them: small, but they are not degraded alike
    assert (diff["iou_diff"][[0, 1, 3]] > diff["iou_diff"][2] / 3).all()


def test_a_class_in_too_few_images_gets_no_interval():
    """A class in one image of 50: every replicate holding it gives that image's IoU, so the percentile interval
    collapsed to a point (false certainty); a class in fewer than MIN_IMAGES images now has none."""
    from seglight.report.bootstrap import MIN_IMAGES

    rng = np.random.default_rng(0)
    conf = np.zeros((50, 3, 3), np.int64)
    for i in range(50):
        conf[i, :2, :2] = rng.integers(1, 100, (2, 2)) + np.eye(2, dtype=np.int64) * 500
    conf[7, 2, 2], conf[7, 2, 0] = 20, 80  # class 2 in image 7 only: IoU 0.2
    out = bootstrap(conf)
    assert np.isnan(out["iou_ci"][2]).all() and np.isnan(out["recall_ci"][2]).all()
    assert np.isfinite(out["iou_ci"][:2]).all() and out["iou"][2] == 0.2  # the point is still given
    assert np.isfinite(out["mIoU_ci"]).all()
    diff = paired_difference(conf, conf)
    assert np.isnan(diff["iou_diff_ci"][2]).all() and np.isfinite(diff["iou_diff_ci"][:2]).all()
    for i in range(1, MIN_IMAGES):  # in MIN_IMAGES images: an interval again
        conf[7 + i, 2, 2], conf[7 + i, 2, 0] = 20 + i, 80
    assert np.isfinite(bootstrap(conf)["iou_ci"][2]).all()


def test_recall_and_precision_need_the_class_in_enough_images_on_their_own_side():
    """A class in the ground truth of one image but predicted (wrongly) in 20: IoU and precision have 21 and 20
    images behind them, recall only one, and its interval collapsed to that image's recall. Recall now needs the
    class in MIN_IMAGES ground truths, precision in MIN_IMAGES predictions."""
    rng = np.random.default_rng(0)
    conf = np.zeros((50, 3, 3), np.int64)
    for i in range(50):
        conf[i, :2, :2] = rng.integers(1, 100, (2, 2)) + np.eye(2, dtype=np.int64) * 500
    conf[7, 2, 2], conf[7, 2, 0] = 30, 70  # class 2 in the ground truth of image 7 only: recall 0.3
    for i in range(20, 40):
        conf[i, 0, 2] = rng.integers(5, 50)  # background predicted as class 2
    out = bootstrap(conf)
    assert np.isnan(out["recall_ci"][2]).all() and out["recall"][2] == 0.3
    assert np.isfinite(out["precision_ci"][2]).all() and np.isfinite(out["iou_ci"][2]).all()
    conf[:, :, 2] = 0  # the other way round: in the ground truth of images 0-9, predicted (right) in 0 and 1 only
    conf[:10, 2, 0] = 40
    conf[:2, 2, 2] = 10
    out = bootstrap(conf)
    assert np.isnan(out["precision_ci"][2]).all() and np.isfinite(out["recall_ci"][2]).all()


def test_a_replicate_without_a_scored_pixel_is_left_out_not_scored_zero():
    """Mostly void images: a replicate that draws only all-void images has no score. ``scores`` gives such an
    empty matrix mIoU 0, which dragged the interval's low end to 0 for a model that is right on every pixel."""
    conf = np.zeros((6, 3, 3), np.int64)
    conf[0] = np.diag([50, 30, 20])  # the one scored image, every pixel right
    out = bootstrap(conf)
    assert out["mIoU"] == 1.0
    np.testing.assert_allclose(out["mIoU_ci"], [1.0, 1.0])
    np.testing.assert_allclose(out["dice_ci"], [1.0, 1.0])
    diff = paired_difference(conf, conf)
    np.testing.assert_allclose(diff["mIoU_diff_ci"], [0.0, 0.0])


def test_blocks_of_near_duplicate_frames_are_drawn_whole():
    """Frames a moment apart are nearly the same picture: drawn one by one, 12 copies of each of 12 images look like
    144 independent images and give an interval about sqrt(12) too narrow. Drawn by block, the interval is that
    of the 12 distinct images."""
    import pytest

    from seglight.report.bootstrap import replicate_weights

    distinct = synthetic_confusions(np.random.default_rng(3), n=12, wrong=(0.05, 0.3, 0.1, 0.2))
    copies = np.repeat(distinct, 12, axis=0)  # (144,C,C): image i's 12 frames, one after another
    blocks = [f"seq_{i // 12}" for i in range(len(copies))]
    weights = replicate_weights(len(copies), 50, seed=0, blocks=blocks)
    assert (weights.reshape(50, 12, 12) == weights[:, ::12, None]).all()  # a block's frames drawn together
    assert (weights[:, ::12].sum(1) == 12).all()  # as many blocks as there are
    width = lambda r: r["mIoU_ci"][1] - r["mIoU_ci"][0]  # noqa: E731
    alone, by_image, by_block = bootstrap(distinct), bootstrap(copies), bootstrap(copies, blocks=blocks)
    assert width(by_block) == pytest.approx(width(alone), rel=0.25)
    assert width(by_image) < width(by_block) / 2
    diff = paired_difference(copies, np.roll(copies, 12, axis=0), blocks=blocks)  # other errors, same frames
    assert diff["mIoU_diff_ci"][1] - diff["mIoU_diff_ci"][0] > 2 * np.ptp(
        paired_difference(copies, np.roll(copies, 12, axis=0))["mIoU_diff_ci"]
    )


def test_resampling_blocks_come_from_the_frame_pattern():
    import pytest

    from seglight.report.bootstrap import resampling_blocks

    camvid = r"^([^_]+)_f?(\d+)$"  # conf/data/camvid.yaml's frame_pattern
    images = ["/d/0016E5_07959.png", "/d/0016E5_07961.png", "/d/0016E5_08001.png", "/d/Seq05VD_f00030.png"]
    assert resampling_blocks(images, camvid, "auto") == ["0016E5_26", "0016E5_26", "0016E5_26", "Seq05VD_0"]
    assert resampling_blocks(images, camvid, 30) == ["0016E5_265", "0016E5_265", "0016E5_266", "Seq05VD_1"]
    assert resampling_blocks(images, camvid, None) is None and resampling_blocks(images, None, "auto") is None
    with pytest.raises(ValueError, match="data.frame_pattern"):
        resampling_blocks(images, None, 30)


def test_fewer_than_ten_blocks_give_no_interval():
    """A percentile bootstrap of a handful of blocks is far too narrow (one block: every replicate the same, a
    zero-width interval that would read as certainty)."""
    from seglight.inference.compare import verdict
    from seglight.report.bootstrap import MIN_BLOCKS

    conf = synthetic_confusions(np.random.default_rng(4), n=30)
    few, enough = [f"b{i % (MIN_BLOCKS - 1)}" for i in range(30)], [f"b{i % MIN_BLOCKS}" for i in range(30)]
    assert np.isnan(bootstrap(conf, blocks=few)["mIoU_ci"]).all()
    assert np.isnan(bootstrap(conf, blocks=few)["iou_ci"]).all()
    assert not np.isnan(bootstrap(conf, blocks=enough)["mIoU_ci"]).any()
    other = synthetic_confusions(np.random.default_rng(5), n=30)
    diff = paired_difference(conf, other, blocks=few)
    assert np.isnan(diff["mIoU_diff_ci"]).all() and np.isnan(diff["iou_diff_ci"]).all()
    assert verdict("B", "A", float(diff["mIoU_diff"]), diff["mIoU_diff_ci"]).endswith(
        "no interval (too few blocks of frames to draw from)"
    )


def common_classes(rng, n: int) -> np.ndarray:
    """``synthetic_confusions`` of n images with classes 0-2 in every one (about 0.9 IoU) and class 3 in none."""
    conf = synthetic_confusions(rng, n=n, c=4, size=16, wrong=(0.05, 0.05, 0.05, 0.0))
    conf[:, 3, :] = conf[:, :, 3] = 0
    return conf


def centred(value: float, ci: np.ndarray) -> bool:
    """Whether ``value`` lies inside ``ci`` at least a fifth of its width from either end."""
    low, high = ci
    return low + (high - low) / 5 < value < high - (high - low) / 5


def test_mIoU_interval_keeps_a_rare_class_in_every_replicate_mean():
    """A replicate that misses the few images of a class must not average the other classes alone: that jumps the
    mean by the class's share and drags the interval away from the figure. Nor may it be left out: the class's
    images would then be in every replicate."""
    rare = common_classes(np.random.default_rng(0), 100)
    rare[:3, 3, 3], rare[:3, 3, 0] = 20, 80  # a class in 3 images, IoU about 0.2
    out = bootstrap(rare)
    assert centred(out["mIoU"], out["mIoU_ci"])  # skewed, it was 0.190 above the figure and 0.009 below
    assert np.isnan(out["iou_ci"][3]).all()  # the rare class's own interval: too few images for one
    same = paired_difference(rare, rare)
    assert same["mIoU_diff"] == 0 and np.allclose(same["mIoU_diff_ci"], 0)
    a = common_classes(np.random.default_rng(1), 40)
    b = a.copy()  # B gets most of image 0 wrong and predicts 2 pixels of a class no image has: IoU 0 for it
    for k in range(3):
        b[0, k, (k + 2) % 3] += b[0, k, k] - 5
        b[0, k, k] = 5
    b[0, 0, 3] += 2
    out, diff = bootstrap(b), paired_difference(a, b)
    assert centred(out["mIoU"], out["mIoU_ci"]) and centred(diff["mIoU_diff"], diff["mIoU_diff_ci"])
