"""seglight.compare: runs paired on the images they share, B - A with bootstrap intervals; known answers."""

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglight.inference.compare import Scored, compare, compare_runs, run_names, verdict
from seglight.report.bootstrap import bootstrap, paired_difference
from seglight.report.compare_figures import difference_figure
from seglight.report.confusions import CONFUSIONS, load_confusions, save_confusions

CLASSES = ["bg", "road", "car"]
VERDICT = re.compile(r"^(\S+) - (\S+) = ([+-]\d\.\d{3}) mIoU, 95% CI \[([+-]\d\.\d{3}), ([+-]\d\.\d{3})\] \((.+)\)$")


def confusions(seed: int, n: int = 40, wrong=(0.05, 0.1, 0.1), size: int = 24) -> np.ndarray:
    """n images' (C,C) counts: labels drawn from a fixed generator (the same images for every seed), each class's
    pixels mislabelled at its rate in ``wrong`` with the errors drawn from ``seed``."""
    labels, errors = np.random.default_rng(123), np.random.default_rng(seed)
    c = len(CLASSES)
    out = np.zeros((n, c, c), np.int64)
    for i in range(n):
        target = labels.integers(0, c, size * size)
        pred = target.copy()
        flip = errors.random(target.size) < np.asarray(wrong)[target]
        pred[flip] = (target[flip] + errors.integers(1, c, flip.sum())) % c
        np.add.at(out[i], (target, pred), 1)
    return out


def evaluate_folder(root: Path, conf: np.ndarray, images: list[str] | None = None, names=CLASSES) -> Path:
    """An evaluate output: confusions.npz and metrics.json."""
    root.mkdir(parents=True)
    images = images if images is not None else [f"/data/img_{i:03d}.png" for i in range(len(conf))]
    save_confusions(root / CONFUSIONS, images, list(conf), names)
    (root / "metrics.json").write_text(json.dumps({"mIoU": 0.0, "train_on_val": False}))
    return root


def test_a_run_against_itself_differs_by_zero(tmp_path):
    a = evaluate_folder(tmp_path / "eval", confusions(0))
    result = compare_runs([str(a), str(a)], data={}, split="val", output=tmp_path / "out", seed=3)
    [r] = result["runs"]
    assert result["images"] == 40 and result["baseline"] == str(a) and r["run"] == str(a)
    assert r["mIoU_diff"] == 0 and r["mIoU_diff_ci"] == [0.0, 0.0]
    assert all(v == 0 for v in r["iou_diff"].values())
    own = bootstrap(confusions(0), seed=3)
    assert r["mIoU"] == pytest.approx(float(own["mIoU"])) and r["mIoU_ci"] == pytest.approx(list(own["mIoU_ci"]))
    saved = json.loads((tmp_path / "out" / "compare.json").read_text())
    assert saved["runs"][0]["mIoU_diff"] == 0 and saved["class_names"] == CLASSES
    line = (tmp_path / "out" / "compare.md").read_text().splitlines()[2]
    assert line == "eval#2 - eval = +0.000 mIoU, 95% CI [+0.000, +0.000] (no clear difference: the interval holds 0)"
    assert (tmp_path / "out" / "compare.png").stat().st_size > 5000


def test_a_degraded_class_is_worse_and_the_verdict_says_so(tmp_path):
    a = evaluate_folder(tmp_path / "ce", confusions(1))
    b = evaluate_folder(tmp_path / "dice", confusions(2, wrong=(0.05, 0.1, 0.4)))  # car degraded
    result = compare_runs([str(a), str(b)], data={}, split="val", output=tmp_path / "out")
    r = result["runs"][0]
    assert r["iou_diff_ci"]["car"][1] < 0  # its whole interval below 0
    assert r["iou_diff"]["car"] < min(r["iou_diff"]["bg"], r["iou_diff"]["road"])  # theirs: only car's errors
    assert r["mIoU_diff_ci"][1] < 0 and r["mIoU_diff"] < 0
    expected = paired_difference(confusions(1), confusions(2, wrong=(0.05, 0.1, 0.4)), seed=0)
    assert r["mIoU_diff"] == pytest.approx(float(expected["mIoU_diff"]))
    assert r["iou_diff_ci"]["car"] == pytest.approx(list(expected["iou_diff_ci"][2]))
    md = (tmp_path / "out" / "compare.md").read_text()
    [line] = [x for x in md.splitlines() if VERDICT.match(x)]
    name_b, name_a, diff, low, high, word = VERDICT.match(line).groups()
    assert (name_b, name_a, word) == ("dice", "ce", "worse")
    assert float(diff) == pytest.approx(r["mIoU_diff"], abs=5e-4) and float(high) < 0
    car = next(x for x in md.splitlines() if x.startswith("| car |"))
    assert car.startswith(f"| car | {result['baseline_iou']['car']:.3f} | {r['iou']['car']:.3f} | -0.")
    assert "| class | ce IoU | dice IoU | diff | 95% CI |" in md
    # the other way round it is better
    back = compare_runs([str(b), str(a)], data={}, split="val", output=tmp_path / "back")
    assert back["runs"][0]["mIoU_diff_ci"][0] > 0
    assert "(better)" in (tmp_path / "back" / "compare.md").read_text()


def test_a_run_scored_on_images_it_trained_on_is_flagged(tmp_path):
    """An evaluate output whose model trained on the scored images (data.train_on_val, or a start that did) could
    be called better on them: compare says it is not a held-out comparison."""
    a = evaluate_folder(tmp_path / "ce", confusions(1))
    b = evaluate_folder(tmp_path / "trainval", confusions(2))
    (b / "metrics.json").write_text(json.dumps({"mIoU": 0.0, "train_on_val": True}))
    c = evaluate_folder(tmp_path / "tuned", confusions(3))
    (c / "metrics.json").write_text(json.dumps({"mIoU": 0.0, "trained_on_images": 12}))
    result = compare_runs([str(a), str(b), str(c)], data={}, split="val", output=tmp_path / "out")
    assert result["baseline_caveat"] is None
    assert [r["caveat"] for r in result["runs"]] == ["trained on val", "init_from trained on 12 of these images"]
    md = (tmp_path / "out" / "compare.md").read_text()
    assert "trainval: not held out: trained on val" in md and "tuned: not held out: init_from trained on 12" in md
    (a / "metrics.json").write_text(json.dumps({"mIoU": 0.0, "train_on_val": False}))  # as evaluate writes now
    (c / "metrics.json").write_text(json.dumps({"mIoU": 0.0}))  # evaluated before the key was recorded
    again = compare_runs([str(a), str(c)], data={}, split="val", output=tmp_path / "again")
    assert again["baseline_caveat"] is None and again["runs"][0]["caveat"].startswith("held-out unchecked")


def test_a_training_runs_val_confusions_are_flagged_as_chosen_on_those_images(tmp_path):
    """A training run's val_confusions.npz scores its best.ckpt on the val images that chose it."""
    from seglight.inference.compare import run_caveat
    from seglight.report.confusions import VAL_CONFUSIONS

    run = tmp_path / "run"
    run.mkdir()
    conf = confusions(1)
    save_confusions(run / VAL_CONFUSIONS, [f"/data/img_{i:03d}.png" for i in range(len(conf))], list(conf), CLASSES)
    (run / "metrics.json").write_text(json.dumps({"val/mIoU": 0.5, "best_ckpt": "/r/checkpoints/best.ckpt"}))
    assert run_caveat(run / VAL_CONFUSIONS) == "checkpoint chosen on these images (best val/mIoU)"
    (run / "metrics.json").write_text(json.dumps({"val/mIoU": 0.5, "best_ckpt": "", "train_on_val": True}))
    assert run_caveat(run / VAL_CONFUSIONS) == "trained on val"  # no best.ckpt: the weights it ended with


def test_verdict_words_and_signs():
    assert verdict("B", "A", 0.021, [0.008, 0.034]) == "B - A = +0.021 mIoU, 95% CI [+0.008, +0.034] (better)"
    assert verdict("B", "A", -0.02, [-0.03, -0.01]).endswith("[-0.030, -0.010] (worse)")
    assert verdict("B", "A", 0.01, [-0.01, 0.03]).endswith("(no clear difference: the interval holds 0)")


def test_runs_are_paired_on_the_images_they_share(tmp_path, caplog):
    conf = confusions(4)
    names = [f"/data/img_{i:03d}.png" for i in range(40)]
    a = Scored("a", "a", names, conf, CLASSES)
    order = np.random.default_rng(0).permutation(40)[:30]  # B scored 30 of them, in another order
    b = Scored("b", "b", [names[i] for i in order], conf[order], CLASSES)
    with caplog.at_level(logging.WARNING):
        result = compare([a, b])
    assert result["images"] == 30
    assert "a 40, b 30" in caplog.text and "the 30 they all share" in caplog.text
    assert result["runs"][0]["mIoU_diff"] == 0  # the same counts per image, matched by path, not position
    with pytest.raises(ValueError, match="share no image.*/elsewhere/x.png"):
        compare([a, Scored("c", "c", ["/elsewhere/x.png"], conf[:1], CLASSES)])
    with pytest.raises(ValueError, match="a and d have different classes"):
        compare([a, Scored("d", "d", names, conf, ["bg", "road", "truck"])])
    with pytest.raises(ValueError, match="two runs or more"):
        compare([a])


def test_the_same_file_spelled_through_another_folder_is_the_same_image():
    conf = confusions(5, n=6)
    a = Scored("a", "a", [f"/work/wt_a/../shared/img_{i}.png" for i in range(6)], conf, CLASSES)
    b = Scored("b", "b", [f"/work/wt_b/../shared/img_{i}.png" for i in range(6)][::-1], conf[::-1], CLASSES)
    result = compare([a, b])  # two worktrees beside one data folder: the same images
    assert result["images"] == 6 and result["runs"][0]["mIoU_diff"] == 0


def test_a_run_that_is_no_run_is_refused(tmp_path):
    a = evaluate_folder(tmp_path / "eval", confusions(0))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty: not an evaluate output"):
        compare_runs([str(a), str(tmp_path / "empty")], data={}, split="val", output=tmp_path / "out")


def test_run_names_are_the_shortest_telling_tails():
    assert run_names(["/x/sweep/0", "/x/sweep/1"]) == ["0", "1"]
    assert run_names(["/a/run/checkpoints/best.ckpt", "/b/run/checkpoints/best.ckpt"]) == ["a/run", "b/run"]
    assert run_names(["/e/eval", "/e/eval"]) == ["eval", "eval#2"]


def test_difference_figure_draws_each_run_at_its_values():
    diffs = np.array([[0.01, -0.2, np.nan], [0.03, 0.1, 0.0]])  # (R,K)
    intervals = np.stack([diffs - 0.01, diffs + 0.02], axis=-1)  # (R,K,2)
    fig = difference_figure(["mIoU", "car", "bus"], ["b - a", "c - a"], diffs, intervals)
    points = [line for line in fig.axes[0].get_lines() if line.get_marker() == "o"]
    assert [p.get_label() for p in points] == ["b - a", "c - a"]
    for p, d in zip(points, diffs):
        np.testing.assert_array_equal(p.get_xdata(), d)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["mIoU", "car", "bus"]


@pytest.fixture(scope="module")
def run_dir(trained_tiny) -> Path:
    """The folder holding the shared tiny run (run/) and its data (data/)."""
    return trained_tiny[2].parent


def test_compare_cli_evaluates_a_run_dir_and_a_checkpoint(run_dir, tmp_path):
    run, ckpt = run_dir / "run", run_dir / "run" / "checkpoints" / "best.ckpt"
    out = tmp_path / "cmp"
    res = subprocess.run(
        [sys.executable, "-m", "seglight.compare", f"runs=[{run},{ckpt}]", f"data.root={run_dir / 'data'}"]
        + ["data.num_train=8", "data.num_val=4", "data.image_size=64", f"output={out}"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert res.returncode == 0, res.stderr[-3000:]
    result = json.loads((out / "compare.json").read_text())
    assert result["images"] == 4 and result["runs"][0]["run"] == str(ckpt)
    assert result["runs"][0]["mIoU_diff"] == 0  # the same model twice
    for name in ("run", "run#2"):  # each evaluated into runs/<name>
        images, _, classes = load_confusions(out / "runs" / name / CONFUSIONS)
        assert len(images) == 4 and classes == ["background", "circle", "square", "triangle"]
    assert "run#2 - run = +0.000 mIoU" in res.stdout
    assert Image.open(out / "compare.png").size[0] > 300


def test_compare_draws_blocks_of_frames_where_the_data_names_its_frames(tmp_path):
    conf = confusions(5)
    images = [f"/data/seq_{2 * i:05d}.png" for i in range(len(conf))]  # every second frame of one sequence
    a = evaluate_folder(tmp_path / "a", conf, images)
    b = evaluate_folder(tmp_path / "b", confusions(6), images)
    plain = compare_runs([str(a), str(b)], data={}, split="val", output=tmp_path / "plain")
    data = {"frame_pattern": r"^([^_]+)_(\d+)$"}
    blocked = compare_runs([str(a), str(b)], data=data, split="val", output=tmp_path / "blocked", block_frames=4)
    assert plain["blocks"] is None and blocked["blocks"] == len({2 * i // 4 for i in range(len(conf))}) == 20
    assert "paired bootstrap over" in (tmp_path / "blocked" / "compare.md").read_text()
    width = lambda r: r["runs"][0]["mIoU_diff_ci"][1] - r["runs"][0]["mIoU_diff_ci"][0]  # noqa: E731
    assert width(blocked) != width(plain)


def test_compare_of_training_runs_val_confusions_draws_the_blocks_their_config_names(tmp_path):
    """Two training runs' val_confusions.npz given without a data config: the frames are named in the runs'
    config.yaml (metrics.json does not record the pattern), so the interval draws blocks, as the sweep summary and
    the model card do for the same files."""
    from seglight.report.confusions import VAL_CONFUSIONS

    images = [f"/data/seq_{2 * i:05d}.png" for i in range(40)]
    files = []
    for name, seed in (("a", 5), ("b", 6)):
        run = tmp_path / name
        run.mkdir()
        save_confusions(run / VAL_CONFUSIONS, images, list(confusions(seed)), CLASSES)
        (run / "metrics.json").write_text(json.dumps({"val/mIoU": 0.5, "best_ckpt": ""}))
        (run / "config.yaml").write_text('data:\n  frame_pattern: "^([^_]+)_(\\\\d+)$"\n')
        files.append(str(run / VAL_CONFUSIONS))
    result = compare_runs(files, data={}, split="val", output=tmp_path / "cmp")
    assert result["blocks"] == len({2 * i // 300 for i in range(40)}) == 1  # one block of 300 frames: too few
    assert np.isnan(result["runs"][0]["mIoU_diff_ci"]).all()  # not an interval over 40 "independent" frames
