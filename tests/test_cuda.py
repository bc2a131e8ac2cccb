"""The CUDA paths: the deferred non-finite check, precision=auto and 16-mixed, DDP with NCCL and SyncBatchNorm,
predict on the GPU, EMA with resume on the GPU. Skipped where no CUDA GPU is visible (CI); run them on a GPU machine
with ``pytest tests/test_cuda.py`` (experiments/bench/README.md records when and where they ran)."""

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import resume_with_ema, train_command
from hydra.utils import instantiate
from omegaconf import OmegaConf

from seglight.inference.predictor import TorchPredictor
from seglight.model.checkpoint import load_checkpoint, load_module
from seglight.model.losses import LOSSES
from seglight.training.callbacks import EMA, RAW_KEY
from seglight.training.fit import build_module, build_trainer, train
from seglight.util.hardware import resolve_precision

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
GPU = ("trainer.accelerator=gpu", "trainer.devices=1")


def test_non_finite_loss_on_cuda_is_caught_at_the_next_logging_step(train_cfg):
    """On an accelerator the flag stays on the device and is read every log_every_n_steps steps: a NaN loss at
    global step 4 alone (its gradients finite, so step 5's loss is finite again) stops training at step 5
    (log_every_n_steps=3): only the flag kept since step 4 can say so. last.ckpt holds the finite weights."""
    calls = {"n": 0}

    class NanOnce(torch.nn.Module):
        def forward(self, logits, target):
            assert logits.is_cuda
            calls["n"] += torch.is_grad_enabled()
            loss = torch.nn.functional.cross_entropy(logits.float(), target, ignore_index=255)
            return loss + torch.tensor(float("nan"), device=loss.device) if calls["n"] == 5 else loss

    LOSSES["nan_once_cuda"] = lambda num_classes, ignore_index, weight=None, **kwargs: NanOnce()
    try:
        cfg = train_cfg(
            *GPU,
            "loss.name=nan_once_cuda",
            "trainer.max_epochs=4",
            "trainer.limit_val_batches=1",
            "trainer.log_every_n_steps=3",
        )
        with pytest.raises(FloatingPointError, match=r"non-finite training loss at global step 5 \(epoch 2"):
            train(cfg)
        last = Path(cfg.run_dir) / "checkpoints" / "last.ckpt"
        assert load_checkpoint(last)["global_step"] == 4
        params = load_module(last).state_dict()
        assert all(torch.isfinite(v).all() for v in params.values() if v.is_floating_point())
    finally:
        del LOSSES["nan_once_cuda"]


@pytest.mark.parametrize("precision", ["auto", "16-mixed", "32-true"])
def test_training_on_cuda_in_each_precision(train_cfg, precision):
    cfg = train_cfg(*GPU, f"trainer.precision={precision}", "trainer.max_epochs=2")
    result = train(cfg)
    metrics = json.loads((Path(cfg.run_dir) / "metrics.json").read_text())
    assert np.isfinite(metrics["val/mIoU"]) and 0 <= metrics["val/mIoU"] <= 1
    module = load_module(result["best_ckpt"])
    assert all(torch.isfinite(v).all() for v in module.state_dict().values() if v.is_floating_point())
    expected = ("bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed") if precision == "auto" else precision
    assert OmegaConf.load(Path(cfg.run_dir) / "config.yaml").trainer.precision == expected  # what the run used


def test_ddp_on_cuda_with_nccl_and_sync_batchnorm(tmp_path, data_cache):
    """DDP on every visible GPU (plain DDP relaunches the command per rank, so it runs as a command). One GPU runs
    the NCCL process group and the DistributedDataParallel wrapper; SyncBatchNorm is converted but, at world size 1,
    falls back to plain batch norm (its all-reduce needs two ranks)."""
    run = tmp_path / "run"
    done = subprocess.run(
        train_command(
            run, data_cache, *GPU[:1], "trainer.devices=-1", "trainer.strategy=ddp", "trainer.sync_batchnorm=true"
        ),
        capture_output=True,
        text=True,
        env={**os.environ, "WANDB_MODE": "offline"},
        timeout=600,
    )
    said = done.stdout + done.stderr
    assert done.returncode == 0, said[-3000:]
    assert "distributed_backend=nccl" in said
    assert "sync_batchnorm off" not in said
    metrics = json.loads((run / "metrics.json").read_text())
    assert np.isfinite(metrics["val/mIoU"])
    # 6 epochs of 2 steps (limit_train_batches=2 counts per rank)
    assert load_checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == 6 * 2


def test_predict_on_cuda_matches_cpu(trained_tiny):
    ckpt, data, _ = trained_tiny
    images = [np.asarray(np.random.default_rng(i).integers(0, 256, (64, 96, 3)), np.uint8) for i in range(3)]
    gpu = TorchPredictor(load_module(ckpt), device="cuda", precision="32-true").predict_masks(images)
    cpu = TorchPredictor(load_module(ckpt), device="cpu", precision="32-true").predict_masks(images)
    agree = np.mean([(a == b).mean() for a, b in zip(gpu, cpu)])
    assert agree > 0.99  # cuDNN's TF32 convolutions flip a few near-tie pixels; a wrong input would flip most
    auto = TorchPredictor(load_module(ckpt), device="cuda")
    assert auto.precision == resolve_precision("auto", "gpu")
    assert np.mean([(a == b).mean() for a, b in zip(auto.predict_masks(images), cpu)]) > 0.95


def test_training_metrics_update_without_a_host_sync():
    """The per-step metric update (a confusion matrix on the GPU) never waits for the GPU: no host sync."""
    from seglight.model.metrics import SegmentationMetrics

    metric = SegmentationMetrics(num_classes=11).cuda()
    pred = torch.randint(0, 11, (8, 64, 64), device="cuda")
    target = torch.randint(0, 11, (8, 64, 64), device="cuda")
    target[:, :4] = 255
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        metric.update(pred, target)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert int(metric.confmat.sum()) == 8 * 60 * 64


def test_ema_on_cuda_averages_on_the_device_and_resumes_the_raw_weights(train_cfg):
    """In bf16-mixed on the GPU the average lives beside the weights (no copy to the host per step), checkpoints
    hold it beside the raw weights, and a resumed run trains the raw weights on, its average back on the GPU."""
    cfg = train_cfg(*GPU, "trainer.precision=bf16-mixed", "trainer.max_epochs=1", "callbacks.ema.decay=0.5")
    dm = instantiate(cfg.data, _convert_="all")
    trainer = build_trainer(cfg)
    ema = next(cb for cb in trainer.callbacks if isinstance(cb, EMA))
    trainer.fit(build_module(cfg, dm), datamodule=dm)
    assert all(v.is_cuda for v in ema.shadow.values())
    last_path = Path(cfg.run_dir) / "checkpoints" / "last.ckpt"
    last = load_checkpoint(last_path)
    key = "model.decoder.blocks.0.conv1.0.weight"
    assert not torch.equal(last["state_dict"][key], last[RAW_KEY][key])
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point())

    cfg.trainer.max_epochs = 2
    trainer, ema, start = resume_with_ema(cfg, dm, last_path)
    assert all(v.is_cuda for v in [*start.weights.values(), *start.average.values()])
    start.assert_resumed_from(last, key)
    assert trainer.global_step > last["global_step"]
    assert all(v.is_cuda for v in ema.shadow.values())
    assert not torch.equal(ema.shadow[key].cpu(), last["state_dict"][key])  # the average moved on
