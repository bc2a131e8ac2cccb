"""Training through the real Hydra config on tiny generated shapes."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY
from hydra.utils import instantiate

from seglight.model.metrics import MONITOR
from seglight.model.module import SegmentationModule
from seglight.training.fit import build_module, train


@pytest.mark.parametrize("loss", ["ce", "dice", "focal", "dice_ce", "jaccard", "tversky", "lovasz"])
def test_fast_dev_run_each_loss(train_cfg, loss):
    cfg = train_cfg(f"loss={loss}", "trainer.fast_dev_run=true", "logger=none")
    metrics = train(cfg)
    assert 0.0 <= metrics[MONITOR] <= 1.0
    assert metrics["best_ckpt"] == ""  # fast_dev_run writes no checkpoint


def test_a_run_without_validation_ends_and_keeps_its_weights(train_cfg):
    """trainer.limit_val_batches=0 (no validation at all) trained, then crashed on the final validation's empty
    result: no metrics.json, an IndexError. It now ends with last.ckpt, no best.ckpt and no val scores."""
    cfg = train_cfg("trainer.max_epochs=1", "trainer.limit_val_batches=0")
    metrics = train(cfg)
    run = Path(cfg.run_dir)
    assert (run / "checkpoints" / "last.ckpt").is_file() and not (run / "checkpoints" / "best.ckpt").exists()
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["best_ckpt"] == "" and "val/mIoU" not in saved and saved["val_images"] == 0
    assert metrics["fit_minutes"] > 0


def test_debug_run_writes_checkpoints_metrics_and_config(train_cfg):
    cfg = train_cfg("loss=dice_ce", "loss.dice_weight=0.5", "trainer.max_epochs=2")
    metrics = train(cfg)
    run = Path(cfg.run_dir)
    assert (run / "checkpoints" / "best.ckpt").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    saved = json.loads((run / "metrics.json").read_text())
    for key in (
        "val/mIoU",
        "val/dice",
        "val/acc",
        "val/loss",
        "best_ckpt",
        "val/iou/background",
        "val/iou/circle",
        "val/iou/square",
        "val/iou/triangle",
    ):
        assert key in saved, key
    assert saved["best_ckpt"] == str(run / "checkpoints" / "best.ckpt")
    assert saved["val/mIoU"] == pytest.approx(metrics["val/mIoU"])
    assert "dice_weight: 0.5" in (run / "config.yaml").read_text()
    assert (run / "csv" / "metrics.csv").is_file()
    # best.ckpt is chosen on val: the score of the weights the run ended with is kept beside it (the last epoch's
    # validation, the row before the best checkpoint's final validation)
    logged = [float(r["val/mIoU"]) for r in csv.DictReader(open(run / "csv" / "metrics.csv")) if r.get("val/mIoU")]
    assert len(logged) == 3 and saved["final_weights_val/mIoU"] == pytest.approx(logged[-2])
    assert "purge_frames" in saved and saved["purge_frames"] is None  # the fold table's grouping; shapes: none
    assert saved["val/mIoU"] == pytest.approx(max(logged[:2]))


def test_checkpoint_is_self_describing(train_cfg):
    cfg = train_cfg()
    train(cfg)
    ckpt = Path(cfg.run_dir) / "checkpoints" / "best.ckpt"
    hp = torch.load(ckpt, map_location="cpu", weights_only=True)["hyper_parameters"]
    assert hp["class_names"] == ["background", "circle", "square", "triangle"]
    assert hp["colors"][1] == [230, 25, 75] and hp["ignore_index"] == 255
    assert hp["arch"] == "Unet" and hp["encoder_name"] == "resnet18" and hp["in_channels"] == 3
    assert len(hp["mean"]) == 3 and len(hp["std"]) == 3
    model = SegmentationModule.load_from_checkpoint(ckpt, map_location="cpu").eval()
    x = torch.randn(2, 3, 64, 96)  # image (B,3,H,W)
    with torch.no_grad():
        logits = model(x)
    assert logits.shape == (2, 4, 64, 96)  # logits (B,C,H,W)
    pred = logits.softmax(dim=1).argmax(dim=1)
    assert pred.shape == (2, 64, 96) and pred.dtype == torch.int64  # prediction (B,H,W)


def test_unetplusplus_mobilenet(train_cfg):
    metrics = train(train_cfg("model=unetplusplus", "encoder=mobilenet_v2", "logger=none"))
    assert 0.0 <= metrics[MONITOR] <= 1.0


@pytest.mark.parametrize("model", ["fpn", "deeplabv3plus"])
def test_other_archs_fast_dev_run(train_cfg, model):
    metrics = train(train_cfg(f"model={model}", "trainer.fast_dev_run=true", "logger=none"))
    assert 0.0 <= metrics[MONITOR] <= 1.0


@pytest.mark.parametrize("name, power", [("auto", 1.0), ("auto_sqrt", 0.5)])
def test_class_weights_auto_reach_the_loss(train_cfg, name, power):
    cfg = train_cfg("loss=dice_ce", f"loss.class_weights={name}")
    dm = instantiate(cfg.data, _convert_="all")
    module = build_module(cfg, dm)
    expected = torch.tensor(dm.class_weights(power=power))
    assert expected[0] < expected[1:].min()  # background, the most frequent class, weighs least
    torch.testing.assert_close(module.loss_fn.terms["ce"].weight, expected)
    torch.testing.assert_close(module.loss_fn.terms["dice"].weight, expected)


def test_unknown_class_weights_name_is_refused(train_cfg):
    cfg = train_cfg("loss.class_weights=median")
    with pytest.raises(ValueError, match="auto or auto_sqrt"):
        build_module(cfg, instantiate(cfg.data, _convert_="all"))


def _run_cli(args: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "seglight.train", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_ddp_two_cpu_processes(tmp_path, data_cache):
    """trainer=ddp trainer.devices=2 on CPU (gloo), as a user runs it: a real launch of 2 processes."""
    run = tmp_path / "ddp"
    out = _run_cli(
        [
            *TINY,
            f"data.root={data_cache}",
            "trainer=ddp",
            "trainer.devices=2",
            "trainer.accelerator=cpu",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=2",
            "trainer.limit_val_batches=1.0",
            f"hydra.run.dir={run}",
        ],
        tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "distributed_backend=gloo" in out.stderr + out.stdout
    assert "All distributed processes registered. Starting with 2 processes" in out.stderr + out.stdout
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0.0 <= metrics[MONITOR] <= 1.0 and Path(metrics["best_ckpt"]).is_file()


def test_typo_in_override_names_valid_keys(tmp_path):
    out = _run_cli(["trainer.max_epoch=3"], tmp_path, timeout=120)
    assert out.returncode == 2
    assert "Unknown config key 'trainer.max_epoch'" in out.stderr
    assert "Did you mean trainer.max_epochs?" in out.stderr
    assert "limit_train_batches" in out.stderr  # lists the valid keys


def test_typo_lists_the_keys_of_the_chosen_option(tmp_path):
    out = _run_cli(["loss=focal", "loss.gama=3"], tmp_path, timeout=120)
    assert out.returncode == 2
    assert "Did you mean loss.gamma?" in out.stderr and "alpha" in out.stderr


def test_typo_in_group_option_lists_options(tmp_path):
    out = _run_cli(["loss=dcie"], tmp_path, timeout=120)
    assert out.returncode != 0
    assert "dice_ce" in out.stderr and "focal" in out.stderr


@pytest.mark.parametrize("every, counted", [(1, [0, 1, 2, 3, 4, 5]), (3, [0, 3]), (0, [])])
def test_train_metrics_count_every_nth_batch(every, counted):
    module = SegmentationModule(
        arch="fpn",
        encoder_name="resnet18",
        encoder_weights=None,
        class_names=["a", "b", "c"],
        train_metrics_every_n_steps=every,
    )
    module.log = lambda *args, **kwargs: None  # no trainer here
    batch = {"image": torch.randn(2, 3, 32, 32), "mask": torch.randint(0, 3, (2, 32, 32))}
    for i in range(6):
        module.training_step(batch, i)
    assert int(module.train_metrics.confmat.sum()) == len(counted) * 2 * 32 * 32  # pixels of the counted batches
    with pytest.raises(ValueError, match="train_metrics_every_n_steps"):
        SegmentationModule(arch="fpn", encoder_name="resnet18", class_names=["a", "b"], train_metrics_every_n_steps=-1)
