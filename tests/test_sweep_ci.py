"""The final validation's per-image confusion matrices (val_confusions.npz) and the sweep summary's val mIoU
interval made from them."""

import csv
import json

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import yaml
from PIL import Image

from seglight.data.datamodule import SegDataModule
from seglight.inference.predictor import TorchPredictor
from seglight.model.metrics import confusion_matrix
from seglight.model.module import SegmentationModule
from seglight.report.bootstrap import bootstrap, scores
from seglight.report.confusions import VAL_CONFUSIONS, load_confusions, save_confusions
from seglight.training.callbacks import ImageConfusions
from seglight.training.fit import train
from seglight.training.sweep import write_summary

SIZES = [(70, 150), (64, 64), (90, 40), (70, 150), (33, 97)]  # mixed sizes, padding, and windows of 64


@pytest.fixture
def mixed(tmp_path) -> SegDataModule:
    rng = np.random.default_rng(0)
    for d in ("img", "ann"):
        (tmp_path / d).mkdir()
    for i, (h, w) in enumerate(SIZES):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(tmp_path / "img" / f"{i}.png")
        Image.fromarray(rng.integers(0, 3, (h, w)).astype(np.uint8)).save(tmp_path / "ann" / f"{i}.png")
    return SegDataModule(
        str(tmp_path / "img"),
        str(tmp_path / "ann"),
        val_images=str(tmp_path / "img"),
        val_masks=str(tmp_path / "ann"),
        num_classes=3,
        eval_batch_size=2,
        num_workers=0,
    )


def _validate(module: SegmentationModule, dm: SegDataModule, path, **trainer) -> dict[str, float]:
    trainer = pl.Trainer(
        accelerator="cpu",
        precision="32-true",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[ImageConfusions(path)],
        **trainer,
    )
    return trainer.validate(module, datamodule=dm, verbose=False)[0]


def test_validation_writes_each_images_confusion_as_evaluate_scores_it(mixed, tmp_path):
    torch.manual_seed(0)
    module = SegmentationModule(["a", "b", "c"], tile_size=64, tile_overlap=0.25).eval()
    validated = _validate(module, mixed, tmp_path / VAL_CONFUSIONS)
    images, confusions, names = load_confusions(tmp_path / VAL_CONFUSIONS)
    dataset = mixed.raw_dataset("val")
    assert images == [str(p[0]) for p in dataset.pairs] and names == ["a", "b", "c"]
    assert confusions.shape == (len(SIZES), 3, 3) and confusions.dtype == np.int64
    predictor = TorchPredictor(module, precision="32")  # evaluate's way: the model's tiling (tile_size=auto)
    for i, (h, w) in enumerate(SIZES):
        image, mask = dataset.read_pair(i)
        pred = torch.from_numpy(predictor.predict_masks([image])[0].astype(np.int64))[None]
        expected = confusion_matrix(pred, torch.from_numpy(mask.astype(np.int64))[None], 3).numpy()
        np.testing.assert_array_equal(confusions[i], expected)
        assert confusions[i].sum() == h * w
    assert float(scores(confusions.sum(0))["mIoU"]) == pytest.approx(validated["val/mIoU"], abs=1e-6)
    assert module.image_confusions is None  # collected for that validation only


def test_two_processes_write_the_same_confusions_as_one(mixed, tmp_path):
    torch.manual_seed(0)
    module = SegmentationModule(["a", "b", "c"], tile_size=64, tile_overlap=0.25).eval()
    _validate(module, mixed, tmp_path / "one.npz")
    _validate(module, mixed, tmp_path / "two.npz", devices=2, strategy="ddp_spawn")  # 5 images: 3 + 2
    one, two = load_confusions(tmp_path / "one.npz"), load_confusions(tmp_path / "two.npz")
    assert one[0] == two[0] and one[2] == two[2]
    np.testing.assert_array_equal(one[1], two[1])


def test_training_run_writes_val_confusions_and_the_summary_shows_the_interval(train_cfg, tmp_path):
    cfg = train_cfg()
    run = tmp_path / "run"
    metrics = train(cfg)
    images, confusions, names = load_confusions(run / VAL_CONFUSIONS)
    splits = json.loads((run / "splits.json").read_text())
    assert [p.split("/")[-1] for p in images] == [f.split("/")[-1] for f in splits["val"]]
    assert names == ["background", "circle", "square", "triangle"]
    assert float(scores(confusions.sum(0))["mIoU"]) == pytest.approx(metrics["val/mIoU"], abs=1e-6)
    assert metrics["val_images"] == len(splits["val"]) == 4
    (run / ".hydra").mkdir(exist_ok=True)
    (run / ".hydra" / "overrides.yaml").write_text("- loss=ce\n")
    [row] = write_summary(tmp_path)
    low, high = bootstrap(confusions)["mIoU_ci"]
    assert row["val/mIoU_ci"] == f"[{low:.3f}, {high:.3f}]"


def _job(root, name, overrides, confusions=None, miou=None):
    job = root / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if confusions is not None:
        save_confusions(job / VAL_CONFUSIONS, [f"{i}.png" for i in range(len(confusions))], confusions, ["a", "b"])
        miou = float(scores(confusions.sum(0))["mIoU"]) if miou is None else miou
    if miou is not None:
        (job / "metrics.json").write_text(json.dumps({"val/mIoU": miou, "val/dice": 0.5, "val/acc": 0.9}))


def test_a_final_validation_of_fewer_images_says_how_many(train_cfg, tmp_path, caplog):
    """trainer.limit_val_batches limits the final validation too: metrics.json's val scores are then of fewer
    images than the split, and say how many."""
    import logging

    with caplog.at_level(logging.WARNING):
        metrics = train(train_cfg("trainer.limit_val_batches=1", "data.eval_batch_size=2"))
    images, _, _ = load_confusions(tmp_path / "run" / VAL_CONFUSIONS)
    assert metrics["val_images"] == len(images) == 2
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["val_images"] == 2
    assert "the val scores are of 2 of the 4 val images" in caplog.text


def test_summary_gives_each_jobs_interval_and_none_without_or_with_a_stale_file(tmp_path, caplog):
    rng = np.random.default_rng(0)
    good = rng.integers(0, 50, (30, 2, 2)) + np.eye(2, dtype=np.int64) * 400  # (N,C,C), mostly right
    poor = rng.integers(0, 50, (30, 2, 2)) + np.eye(2, dtype=np.int64) * 60
    _job(tmp_path, "0", ["loss=ce"], poor)
    _job(tmp_path, "1", ["loss=dice"], good)
    _job(tmp_path, "2", ["loss=focal"], miou=0.3)  # trained before val_confusions.npz existed
    _job(tmp_path, "3", ["loss=jaccard"], good, miou=0.2)  # a file that does not give its val/mIoU
    _job(tmp_path, "4", ["loss=tversky"])  # failed
    rows = write_summary(tmp_path)
    assert [r["job"] for r in rows] == ["1", "0", "2", "3", "4"]
    expected = {}
    for job, conf in (("1", good), ("0", poor)):
        low, high = bootstrap(conf)["mIoU_ci"]
        expected[job] = f"[{low:.3f}, {high:.3f}]"
    assert {r["job"]: r["val/mIoU_ci"] for r in rows} == {**expected, "2": None, "3": None, "4": None}
    assert "gives val/mIoU" in caplog.text  # the stale file is named, not shown
    good_low, _ = bootstrap(good)["mIoU_ci"]
    _, poor_high = bootstrap(poor)["mIoU_ci"]
    assert good_low > poor_high  # the two jobs' intervals do not overlap
    table = list(csv.DictReader((tmp_path / "summary.csv").open()))
    assert [r["val/mIoU_ci"] for r in table] == [expected["1"], expected["0"], "", "", ""]
    md = (tmp_path / "summary.md").read_text().splitlines()
    columns = "val/mIoU | val/mIoU_ci | final_weights_val/mIoU | val/dice | val/acc | fit_minutes | val_img_per_s"
    assert md[0] == f"| rank | overrides | {columns} |"
    assert md[1] == "|---|---|---|---|---|---|---|---|---|"
    assert not (tmp_path / "summary.png").exists()  # no job recorded its cost
    good_miou = float(scores(good.sum(0))["mIoU"])
    assert md[2].startswith(f"| 1 | loss=dice | {good_miou:.4f} | {expected['1']} | - | 0.5000 |")
    assert md[4] == "| 3 | loss=focal | 0.3000 | - | - | 0.5000 | 0.9000 | - | - |"


def test_summary_plots_accuracy_against_cost(tmp_path):
    """summary.png: one point per finished job at (fit minutes, val mIoU) and (val images/s, val mIoU)."""
    from seglight.report.figures import cost_figure

    rng = np.random.default_rng(1)
    for job, minutes, speed in (("0", 3.0, 40.0), ("1", 9.0, 12.0), ("2", 5.0, 25.0)):
        conf = rng.integers(0, 50, (20, 2, 2)) + np.eye(2, dtype=np.int64) * (100 + 100 * int(job))
        _job(tmp_path, job, [f"model={job}"], conf)
        metrics = json.loads((tmp_path / job / "metrics.json").read_text())
        metrics.update(fit_minutes=minutes, val_img_per_s=speed)
        (tmp_path / job / "metrics.json").write_text(json.dumps(metrics))
    _job(tmp_path, "3", ["model=failed"])
    rows = write_summary(tmp_path)
    assert (tmp_path / "summary.png").stat().st_size > 10_000
    assert "summary.png" in (tmp_path / "summary.md").read_text()
    fig = cost_figure(rows)
    for ax, key in zip(fig.axes, ("fit_minutes", "val_img_per_s")):
        markers = [c.lines[0] for c in ax.containers]  # one errorbar per job: its data line
        points = sorted((float(m.get_xdata()[0]), float(m.get_ydata()[0])) for m in markers)
        expected = sorted((r[key], r["val/mIoU"]) for r in rows if r["val/mIoU"] is not None)
        assert np.allclose(points, expected)
    rows[0]["val_caveat"] = "trained on val"  # a score that is not held out: hollow, and its label says so
    fig = cost_figure(rows)
    for ax in fig.axes:
        hollow = {c.lines[0].get_markerfacecolor() == "none" for c in ax.containers}
        assert sum(c.lines[0].get_markerfacecolor() == "none" for c in ax.containers) == 1, hollow
        assert ax.get_xlabel().startswith(("training time", "prediction speed"))
        labels = [t.get_text() for t in ax.texts]
        assert f"{rows[0]['job']} (trained on val)" in labels and sum("(" in t for t in labels) == 1


def test_summary_marks_scores_on_images_the_model_or_its_start_trained_on(tmp_path):
    """A job trained on its val images (data.train_on_val), or fine-tuned from a checkpoint that trained on some
    of them (init_from_seen_val; None: the start's images were not found), ranks beside held-out jobs: the
    summary says so in val_caveat, beside its val/mIoU, and in the fold table's count of such folds."""
    extra = {
        "0": {"train_on_val": True},
        "1": {"init_from_seen_val": 3},
        "2": {"init_from_seen_val": None},
        "3": {"init_from_seen_val": 0},  # a start that saw none of them: held out
        "4": {},
    }
    for job, more in extra.items():
        _job(tmp_path, job, [f"data.fold={job}", "data.folds=5", "loss=ce"], miou=0.9 - 0.1 * int(job))
        metrics = json.loads((tmp_path / job / "metrics.json").read_text())
        (tmp_path / job / "metrics.json").write_text(json.dumps({**metrics, **more}))
    rows = write_summary(tmp_path)
    caveats = {r["job"]: r["val_caveat"] for r in rows}
    assert caveats == {
        "0": "trained on val",
        "1": "init_from trained on 3 val images",
        "2": "init_from: start's images unknown",
        "3": None,
        "4": None,
    }
    table = {r["job"]: r["val_caveat"] for r in csv.DictReader((tmp_path / "summary.csv").open())}
    assert table == {k: v or "" for k, v in caveats.items()}
    md = (tmp_path / "summary.md").read_text()
    assert "| 1 | data.fold=0 data.folds=5 loss=ce | 0.9000 (trained on val) | - |" in md
    assert "| 3 | data.fold=2 data.folds=5 loss=ce | 0.7000 (init_from: start's images unknown) | - |" in md
    assert "| 4 | data.fold=3 data.folds=5 loss=ce | 0.6000 | - |" in md
    notes = "3 not held out or unchecked: see val_caveat; 5 scored by best.ckpt, chosen on the fold"
    assert f"| data.folds=5 loss=ce | - | 5 ({notes}) | 0.7000 +- 0.1581 |" in md
