"""``init_from``: a run starts from a checkpoint's model weights, refuses one that does not fit, and records
the images those weights were trained on, so that neither training nor evaluate calls them held-out."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from conftest import compose_config
from helpers import TOY, make_pairs
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict

from seglight.inference.evaluation import evaluate_checkpoint
from seglight.model.checkpoint import inherited, init_weights, load_checkpoint, trained_on
from seglight.model.module import SegmentationModule
from seglight.training.fit import train


def model_params(ckpt: dict) -> dict[str, torch.Tensor]:
    """The model's trainable tensors (BatchNorm's running statistics move in any training step: left out)."""
    return {
        k: v
        for k, v in ckpt["state_dict"].items()
        if k.startswith("model.") and not k.endswith(("running_mean", "running_var", "num_batches_tracked"))
    }


def test_a_run_starts_from_the_checkpoint_weights(trained_tiny, train_cfg, monkeypatch):
    best, data_root, _ = trained_tiny
    monkeypatch.chdir(best.parent)  # init_from given relative to the cwd is recorded as an absolute path
    start = load_checkpoint(best)
    frozen = ("optimizer.lr=0", f"data.root={data_root}", "trainer.max_epochs=1", "trainer.limit_train_batches=2")

    fresh = load_checkpoint(train(train_cfg(*frozen))["best_ckpt"])
    assert any(not torch.equal(v, model_params(start)[k]) for k, v in model_params(fresh).items())

    tuned = load_checkpoint(train(train_cfg(*frozen, f"init_from={best.name}"))["best_ckpt"])
    assert model_params(tuned).keys() == model_params(start).keys()
    assert all(torch.equal(v, model_params(start)[k]) for k, v in model_params(tuned).items())
    assert tuned["hyper_parameters"]["mean"] == start["hyper_parameters"]["mean"]  # normalised as it was trained
    recorded = tuned["data_split"]["init_from"]
    assert recorded["ckpt"] == str(best.resolve())
    assert {Path(f).name for f in recorded["trained_on"]} == set(start["data_split"]["files"]["train"])
    assert all(Path(f).parent.parent.name == "train" for f in recorded["trained_on"])  # train/, not val/, files


@pytest.mark.parametrize(
    ("override", "message"),
    [("model=fpn", "its arch is 'Unet'"), ("model.model_kwargs.decoder_channels=[64,32,16,16,8]", "do not fit")],
)
def test_a_checkpoint_that_does_not_fit_is_refused_naming_the_file(trained_tiny, train_cfg, override, message):
    best, data_root, _ = trained_tiny
    cfg = train_cfg(f"data.root={data_root}", f"init_from={best}", override)
    with pytest.raises(ValueError, match=f"init_from={best}.*{message}"):
        train(cfg)
    assert not (Path(cfg.run_dir) / "checkpoints").exists()  # refused before any training


def folder_cfg(tmp_path: Path, images: Path, masks: Path, run: str, *overrides: str):
    cfg = compose_config(
        [
            "data=folder", f"data.images={images}", f"data.masks={masks}", f"data.palette={tmp_path / 'palette.csv'}",
            "data.val_fraction=0.25", "data.crop_size=32", "data.batch_size=4", "data.eval_batch_size=4",
            "data.num_workers=0", "trainer=debug", "logger=csv", "trainer.max_epochs=1", *overrides,
        ]
    )  # fmt: skip
    with open_dict(cfg):
        cfg.run_dir = str(tmp_path / run)
    return cfg


def test_images_the_start_was_trained_on_are_flagged_in_training_and_evaluate(tmp_path, caplog):
    images, masks = make_pairs(tmp_path / "data", n=12, size=(32, 48))
    TOY.to_csv(tmp_path / "palette.csv")
    start = train(folder_cfg(tmp_path, images, masks, "start"))["best_ckpt"]
    start_train = set(json.loads((tmp_path / "start" / "splits.json").read_text())["train"])

    # another hold-out of the same folder: some of its val images are images the start trained on
    cfg = folder_cfg(tmp_path, images, masks, "tuned", "data.split_seed=1", f"init_from={start}")
    with caplog.at_level(logging.WARNING):
        tuned = train(cfg)["best_ckpt"]
    val = json.loads((tmp_path / "tuned" / "splits.json").read_text())["val"]
    seen = start_train & set(val)
    assert seen  # split_seed 1 holds out images that split_seed 0 trained on
    assert f"init_from={start} was trained on {len(seen)} of this run's {len(val)} val images" in caplog.text
    assert json.loads((tmp_path / "tuned" / "metrics.json").read_text())["init_from_seen_val"] == len(seen)
    recorded = trained_on(load_checkpoint(tuned)["data_split"])
    assert {Path(f).name for f in recorded} == start_train and all(Path(f).is_absolute() for f in recorded)

    data = load_checkpoint(tuned)["data_split"]["data"]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        metrics = evaluate_checkpoint(tuned, data, "val", tmp_path / "eval", report=False)
    assert f"was trained on {len(seen)} of these {len(val)} images" in caplog.text
    assert metrics["trained_on_images"] == len(seen)
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["trained_on_images"] == len(seen)
    with pytest.raises(ValueError, match="calibrate on held-out images"):
        evaluate_checkpoint(tuned, data, "val", tmp_path / "eval2", report=False, calibrate=True)

    # the start's own hold-out again: nothing it trained on is scored, so nothing is flagged
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        again = train(folder_cfg(tmp_path, images, masks, "again", f"init_from={start}"))["best_ckpt"]
        evaluate_checkpoint(again, data | {"split_seed": 0}, "val", tmp_path / "eval3", report=False)
    assert "was trained on" not in caplog.text


def test_trained_on_reads_what_the_start_had_seen():
    assert trained_on(None) == set()
    assert trained_on({"files": {"train": ["a.png"]}}) == set()  # a run's own training images are not inherited
    assert trained_on({"files": {}, "init_from": {"ckpt": "x", "trained_on": ["/d/c.png"]}}) == {"/d/c.png"}
    assert trained_on({"files": {}, "init_from": {"ckpt": "x", "trained_on": None}}) is None  # not known


def test_every_model_tensor_is_loaded_batchnorm_statistics_too(trained_tiny):
    best, _, _ = trained_tiny
    start = load_checkpoint(best)
    module = SegmentationModule(**{**start["hyper_parameters"], "encoder_weights": None})
    init_weights(module, start, best)
    mine = module.state_dict()
    model_keys = [k for k in start["state_dict"] if k.startswith("model.")]
    assert any(k.endswith("running_var") for k in model_keys)
    assert all(torch.equal(mine[k], start["state_dict"][k]) for k in model_keys)


def fold_data(tmp_path: Path, fold: int) -> tuple[object, dict]:
    """A DataModule over 12 pairs in 3 cross-validation folds (one image per group), and its data config."""
    if not (tmp_path / "data").exists():
        make_pairs(tmp_path / "data", n=12, size=(32, 48))
    cfg = compose_config(
        ["data=folder", f"data.images={tmp_path / 'data' / 'images'}", f"data.masks={tmp_path / 'data' / 'masks'}",
         "data.num_classes=3", "data.folds=3", f"data.fold={fold}"]
    )  # fmt: skip
    data = OmegaConf.to_container(cfg.data, resolve=True)
    return instantiate(cfg.data, _convert_="all"), data


def test_a_start_from_another_fold_is_checked_under_its_own_split_options(tmp_path, caplog):
    dm0, data0 = fold_data(tmp_path, 0)
    dm1, data1 = fold_data(tmp_path, 1)
    start = {"data_split": {"data": data0, "files": dm0.split_files()}}  # as a fold-0 run's checkpoint records it
    files = dm1.split_files()
    with caplog.at_level(logging.WARNING):
        record = inherited("fold0.ckpt", start, dm1.splits, data1, files)
    # fold 0 trained on folds 1 and 2: every val image of fold 1; none of fold 0's own val images
    assert record["seen"]["val"] == len(files["val"]) == 4
    assert {Path(f).name for f in record["trained_on"]} == set(dm0.split_files()["train"])
    assert "was trained on 4 of this run's 4 val images" in caplog.text

    dm0b, data0b = fold_data(tmp_path, 0)
    assert inherited("fold0.ckpt", start, dm0b.splits, data0b, dm0b.split_files())["seen"]["val"] == 0

    # a chain: what the start had inherited is kept
    chained = {"data_split": {**start["data_split"], "init_from": record}}
    assert set(inherited("b.ckpt", chained, dm0b.splits, data0b, dm0b.split_files())["trained_on"]) >= set(
        record["trained_on"]
    )


def test_a_start_on_other_data_is_recorded_as_unknown_not_as_unseen(tmp_path, caplog):
    dm1, data1 = fold_data(tmp_path, 1)
    other, _ = make_pairs(tmp_path / "other", n=4, size=(32, 48))
    start = {"data_split": {"data": {**data1, "images": str(other)}, "files": {"train": ["img_000.png"]}}}
    with caplog.at_level(logging.WARNING):
        record = inherited("other.ckpt", start, dm1.splits, data1, dm1.split_files())
    assert record["trained_on"] is None and record["seen"] == {"val": None, "test": None}
    assert "held-out is not checked" in caplog.text


def test_a_start_cross_validated_over_train_and_val_folders_is_found_in_the_val_folder(tmp_path, caplog):
    train_dir, val_dir = make_pairs(tmp_path / "train", n=8, size=(32, 48)), make_pairs(tmp_path / "val", n=4, seed=1)
    for folder in val_dir:  # pooling needs each file name once
        for f in folder.iterdir():
            f.rename(folder / f.name.replace("img_", "val_"))
    common = [f"data.images={train_dir[0]}", f"data.masks={train_dir[1]}", f"data.val_images={val_dir[0]}",
              f"data.val_masks={val_dir[1]}", "data.num_classes=3"]  # fmt: skip

    def data(*overrides: str) -> tuple[object, dict]:
        cfg = compose_config(["data=folder", *common, *overrides]).data
        return instantiate(cfg, _convert_="all"), OmegaConf.to_container(cfg, resolve=True)

    dm0, data0 = data("data.folds=3", "data.fold=0")  # the start: folds over train and val folders together
    dm, plain_data = data()  # the fine-tune: the val folder as val
    start = {"data_split": {"data": data0, "files": dm0.split_files()}}
    with caplog.at_level(logging.WARNING):
        record = inherited("cv.ckpt", start, dm.splits, plain_data, dm.split_files())
    val_names = {p.name for p in val_dir[0].iterdir()}
    expected = len(set(dm0.split_files()["train"]) & val_names)
    assert expected > 0 and record["seen"]["val"] == expected
    assert "held-out is not checked" not in caplog.text
