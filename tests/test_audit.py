"""The label audit: the confident-learning rule on hand-made probabilities, the ranking of images whose labels were
corrupted on purpose (a colour oracle standing in for a good model), and python -m seglight.audit end to end."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import NEEDS_CHROMIUM, TINY, screenshot
from PIL import Image

from seglight.data.dataset import SegmentationDataset
from seglight.data.palette import Palette
from seglight.inference.audit import SUSPECTS, audit, class_thresholds, disagreement, score_image
from seglight.inference.predictor import Predictor

PALETTE = Palette(["background", "red", "green", "blue"], [(0, 0, 0), (200, 40, 40), (40, 190, 40), (40, 60, 210)])
PAINT = np.array([(128, 128, 128), (200, 40, 40), (40, 190, 40), (40, 60, 210)], np.float32)  # what images show


class ColourOracle(Predictor):
    """A good model of the generated images: logits from each pixel's distance to the class colours, blurred 3x3
    like a decoder's output. It sees what the image shows, so it disputes a label that says otherwise."""

    def __init__(self) -> None:
        super().__init__(PALETTE.names, PALETTE, mean=(0, 0, 0), std=(1, 1, 1), divisor=1)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        colours = torch.from_numpy(PAINT / 255)[None, :, :, None, None]  # (1,C,3,1,1)
        logits = -30 * ((x[:, None] - colours) ** 2).sum(2)  # (B,C,H,W)
        return F.avg_pool2d(logits, 3, stride=1, padding=1, count_include_pad=False)


def generated_image(rng: np.random.Generator, busy: bool, size=(64, 80)) -> tuple[np.ndarray, np.ndarray, list]:
    """An image (H,W,3) uint8 of discs and squares on grey, its label (H,W) uint8 drawn as annotators draw, each
    object up to a pixel off, and its objects [(class, (H,W) bool)]. Busy images hold 12-18 small objects, the
    others 1-3 large ones: busy images have far more outline, where a good model disagrees with every label."""
    h, w = size
    image = np.full((h, w, 3), 128.0) + rng.normal(0, 6, 3)
    label = np.zeros((h, w), np.uint8)
    objects = []
    for _ in range(rng.integers(12, 19) if busy else rng.integers(1, 4)):
        cls, radius = int(rng.integers(1, 4)), int(rng.uniform(2.5, 5.5) if busy else rng.uniform(6, 13))
        centre = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
        shape = np.zeros((h, w), np.uint8)
        if rng.random() < 0.5:
            cv2.circle(shape, centre, radius, 1, -1)
        else:
            cv2.rectangle(shape, np.subtract(centre, radius).tolist(), np.add(centre, radius).tolist(), 1, -1)
        inside = shape.astype(bool)
        image[inside] = PAINT[cls] + rng.normal(0, 15, 3)
        label[np.roll(inside, tuple(rng.integers(-1, 2, 2)), axis=(0, 1))] = cls
        objects.append((cls, inside))
    image += rng.normal(0, 18, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), label, objects


def relabel_an_object(rng: np.random.Generator, label: np.ndarray, objects: list, min_pixels: int = 30) -> bool:
    """Gives one object still labelled with its class over at least ``min_pixels`` another class (background too,
    an object left out); False when there is none."""
    visible = [(cls, inside & (label == cls)) for cls, inside in objects]
    visible = [(cls, where) for cls, where in visible if where.sum() >= min_pixels]
    if not visible:
        return False
    cls, where = visible[int(rng.integers(len(visible)))]
    label[where] = rng.choice([c for c in range(len(PAINT)) if c != cls])
    return True


def write_corrupted_set(root: Path, n: int = 40, n_corrupt: int = 6, seed: int = 0) -> tuple[set[str], set[str]]:
    """n image/label pairs, half busy, with one object relabelled in n_corrupt of them (half busy) and a void band
    at the top of every label -> (names of the corrupted images, names of the busy ones)."""
    rng = np.random.default_rng(seed)
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
    halves = [half * (n // 2) + rng.choice(n // 2, n_corrupt // 2, replace=False) for half in (0, 1)]
    corrupt = {int(i) for i in np.concatenate(halves)}
    corrupted, busy = set(), set()
    for i in range(n):
        name, is_busy = f"{i:03d}.png", i < n // 2
        image, label, objects = generated_image(rng, is_busy)
        while i in corrupt and not relabel_an_object(rng, label, objects):
            image, label, objects = generated_image(rng, is_busy)
        label[:2] = 255
        Image.fromarray(image).save(root / "images" / name)
        Image.fromarray(label).save(root / "masks" / name)
        corrupted |= {name} if i in corrupt else set()
        busy |= {name} if is_busy else set()
    return corrupted, busy


def recall_at_k(ranked: list[str], relevant: set[str]) -> float:
    """Share of ``relevant`` among the first len(relevant) of ``ranked``."""
    return len(set(ranked[: len(relevant)]) & relevant) / len(relevant)


def test_thresholds_are_the_mean_self_confidence_and_void_is_never_disputed():
    probs = np.array([[[0.9, 0.7, 0.2, 0.1]], [[0.1, 0.3, 0.8, 0.9]]], np.float32)  # (C=2, H=1, W=4)
    mask = np.array([[0, 0, 0, 255]], np.uint8)  # pixel 2: labelled 0, predicted 1; pixel 3: void, predicted 1
    kept, stats = disagreement(probs, mask, 255)
    thresholds = class_thresholds(stats)
    np.testing.assert_allclose(thresholds, [(0.9 + 0.7 + 0.2) / 3, np.inf])  # class 1 is labelled nowhere
    assert not kept.disputed(thresholds).any()  # nothing is disputed in favour of a class no pixel is labelled with
    np.testing.assert_array_equal(kept.prediction(mask), probs.argmax(0))  # void pixels included
    thresholds = np.array([0.6, 0.85])
    np.testing.assert_array_equal(kept.spread(kept.disputed(thresholds), fill=False), [[False, False, False, False]])
    thresholds = np.array([0.6, 0.75])  # p_1 = 0.8 at pixel 2 now reaches class 1's threshold; void still not
    np.testing.assert_array_equal(kept.spread(kept.disputed(thresholds), fill=False), [[False, False, True, False]])


def test_a_disputed_region_scores_and_a_sliver_along_an_outline_does_not():
    mask = np.zeros((20, 20), np.uint8)
    mask[5:15, 5:15] = 1  # a square labelled 1 on background 0
    background, square, sure_square = (
        np.array(p, np.float32)[:, None, None] for p in ([0.95, 0.05], [0.1, 0.9], [0.05, 0.95])
    )
    probs = np.where(mask == 0, background, square)  # (2,H,W): the model agrees with the label everywhere
    sliver, region = probs.copy(), probs.copy()
    sliver[:, 5:15, 15:17] = sure_square  # 2 columns past the square's edge: square
    region[:, 15:20, 0:5] = sure_square  # a 5x5 patch of background: square
    rows = {}
    for name, p in (("sliver", sliver), ("region", region)):
        kept, stats = disagreement(p, mask, 255)
        thresholds = class_thresholds(stats)
        assert thresholds[1] == pytest.approx(0.9)  # square's self-confidence: what p_1 = 0.95 has to reach
        rows[name] = score_image(kept, thresholds, ["background", "square"])
    assert rows["sliver"]["disputed_pixels"] == 20 and rows["sliver"]["score"] == 0
    assert rows["region"]["disputed_pixels"] == rows["region"]["region_pixels"] == 25
    assert rows["region"]["score"] == pytest.approx(25 * 0.9 / 400, rel=1e-3)  # margin 0.95 - 0.05 on 25 of 400
    assert rows["region"]["main_confusion"] == rows["sliver"]["main_confusion"] == "square labelled as background"


def test_corrupted_labels_rank_first_not_busy_images(tmp_path):
    corrupted, busy = write_corrupted_set(tmp_path)
    dataset = SegmentationDataset(tmp_path / "images", tmp_path / "masks", len(PALETTE.names))
    rows = audit(ColourOracle(), dataset, tmp_path / "audit", top_k=6)
    ranked = [Path(r["image"]).name for r in rows]
    by_plain_share = [Path(r["image"]).name for r in sorted(rows, key=lambda r: -r["disputed_fraction"])]
    found, plain = recall_at_k(ranked, corrupted), recall_at_k(by_plain_share, corrupted)
    print(f"recall@{len(corrupted)}: score {found:.2f}, plain disputed share {plain:.2f}")
    assert found >= 0.8
    assert plain < found  # the trap is there: by the plain share, clean busy images crowd corrupted ones out
    assert not set(ranked[: len(corrupted)]) & (busy - corrupted)  # no clean busy image among the suspects
    assert {r["main_confusion"] for r in rows[:3]} != {""}


@pytest.fixture(scope="module")
def tiny_run(trained_tiny) -> tuple[Path, Path]:
    """A shapes model trained for a few steps: (checkpoint, the data root it was trained from)."""
    return trained_tiny[0], trained_tiny[1]


def test_audit_command_writes_every_image_ranked_and_a_self_contained_page(tiny_run, tmp_path):
    ckpt, data = tiny_run
    out = tmp_path / "audit"
    data_args = [a for a in TINY if a.startswith("data.")]
    res = subprocess.run(
        [sys.executable, "-m", "seglight.audit", f"ckpt={ckpt}", f"data.root={data}", *data_args, f"output={out}"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert res.returncode == 0, res.stderr[-3000:]
    with (out / SUSPECTS).open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][:2] == ["image", "score"] and "main_confusion" in rows[0]
    images = sorted(Path(r[0]).name for r in rows[1:])
    assert images == sorted(p.name for p in next(data.glob("shapes-*/train/images")).glob("*.png"))  # 8, each once
    scores = [float(r[1]) for r in rows[1:]]
    assert scores == sorted(scores, reverse=True)
    page = (out / "audit.html").read_text()
    assert page.count('src="data:image/png;base64,') == 3 * len(images)  # top_k 24 > 8: every image pictured
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page)
    assert "Thresholds per class" in page and "triangle" in page
    if NEEDS_CHROMIUM.args[0]:  # no browser here: the page's text was checked above
        pytest.skip(NEEDS_CHROMIUM.kwargs["reason"])
    shot = screenshot(out / "audit.html", tmp_path / "audit.png", height=1600)
    rows_drawn = (shot.reshape(shot.shape[0], -1).std(axis=1) > 1).mean()
    assert rows_drawn > 0.4, f"only {rows_drawn:.0%} of the page has content"
    assert ((shot.max(axis=2).astype(int) - shot.min(axis=2)) > 60).mean() > 0.01  # colour pictures drawn
