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
from omegaconf import open_dict

from seglight.inference.evaluation import evaluate_checkpoint
from seglight.model.checkpoint import load_checkpoint, trained_on
from seglight.training.fit import train


def model_params(ckpt: dict) -> dict[str, torch.Tensor]:
    """The model's trainable tensors (BatchNorm's running statistics move in any training step: left out)."""
    return {
        k: v
        for k, v in ckpt["state_dict"].items()
        if k.startswith("model.") and not k.endswith(("running_mean", "running_var", "num_batches_tracked"))
    }


def test_a_run_starts_from_the_checkpoint_weights(trained_tiny, train_cfg):
    best, data_root, _ = trained_tiny
    start = load_checkpoint(best)
    frozen = ("optimizer.lr=0", f"data.root={data_root}", "trainer.max_epochs=1", "trainer.limit_train_batches=2")

    fresh = load_checkpoint(train(train_cfg(*frozen))["best_ckpt"])
    assert any(not torch.equal(v, model_params(start)[k]) for k, v in model_params(fresh).items())

    tuned = load_checkpoint(train(train_cfg(*frozen, f"init_from={best}"))["best_ckpt"])
    assert model_params(tuned).keys() == model_params(start).keys()
    assert all(torch.equal(v, model_params(start)[k]) for k, v in model_params(tuned).items())
    assert tuned["hyper_parameters"]["mean"] == start["hyper_parameters"]["mean"]  # normalised as it was trained
    recorded = tuned["data_split"]["init_from"]
    assert recorded["ckpt"] == str(best)
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
    recorded = trained_on(load_checkpoint(tuned)["data_split"])
    assert {Path(f).name for f in recorded} == start_train and all(Path(f).is_absolute() for f in recorded)

    data = load_checkpoint(tuned)["data_split"]["data"]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        metrics = evaluate_checkpoint(tuned, data, "val", tmp_path / "eval", report=False)
    assert f"was trained on {len(seen)} of these {len(val)} images" in caplog.text
    assert "mIoU" in metrics
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
