"""Crashes lose nothing, bad checkpoints are refused, runs are reproducible, DDP counts every sample once."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from helpers import train_command
from hydra.utils import instantiate

from seglight.model.checkpoint import UnsafeCheckpointError, load_checkpoint, load_module
from seglight.model.finite import NonFiniteCheck
from seglight.model.losses import LOSSES
from seglight.training.fit import train


def test_sigkill_then_resume_finishes_like_an_uninterrupted_run(tmp_path, data_cache):
    run = tmp_path / "run"
    last = run / "checkpoints" / "last.ckpt"
    env = {**os.environ, "WANDB_MODE": "offline"}
    proc = subprocess.Popen(
        train_command(run, data_cache), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    deadline = time.time() + 300
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "training ended before it could be killed"
    killed_at = torch.load(last, map_location="cpu", weights_only=True)["epoch"]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert killed_at < 5
    resumed = subprocess.run(
        train_command(run, data_cache, "resume=true"), capture_output=True, text=True, env=env, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    said = resumed.stdout + resumed.stderr
    assert f"resuming from {last}" in said
    assert f"Restoring states from the checkpoint path at {last}" in said
    final = torch.load(last, map_location="cpu", weights_only=True)
    assert final["epoch"] == 5 and final["global_step"] == 6 * 2  # what 6 uninterrupted epochs of 2 steps give
    assert (run / "metrics.json").exists()


def test_non_finite_loss_stops_with_step_and_keeps_last_good_checkpoint(train_cfg):
    calls = {"n": 0}

    class NanAfter(torch.nn.Module):
        def forward(self, logits, target):
            calls["n"] += torch.is_grad_enabled()  # count training steps only, not validation
            loss = torch.nn.functional.cross_entropy(logits.float(), target, ignore_index=255)
            return loss * float("nan") if calls["n"] > 4 else loss  # the 5th step: epoch 2, global step 4

    LOSSES["nan_after_4"] = lambda num_classes, ignore_index, weight=None, **kwargs: NanAfter()
    try:
        cfg = train_cfg("loss.name=nan_after_4", "trainer.max_epochs=4", "trainer.limit_val_batches=1")
        Path(cfg.run_dir).mkdir(parents=True)
        (Path(cfg.run_dir) / "metrics.json").write_text('{"val/mIoU": 0.9}')  # an earlier run's, in the same dir
        with pytest.raises(FloatingPointError, match=r"non-finite training loss at global step 4 \(epoch 2"):
            train(cfg)
        assert not (Path(cfg.run_dir) / "metrics.json").exists()  # a sweep summary must not take it for this run's
        assert (Path(cfg.run_dir) / "metrics.previous.json").read_text() == '{"val/mIoU": 0.9}'
        last = Path(cfg.run_dir) / "checkpoints" / "last.ckpt"
        assert load_checkpoint(last)["global_step"] == 4  # epochs 0 and 1 (2 steps each) finished and were saved
        params = load_module(last).state_dict()
        assert all(torch.isfinite(v).all() for v in params.values() if v.is_floating_point())
    finally:
        del LOSSES["nan_after_4"]


@pytest.mark.parametrize(
    "nan_at, extra, raised",
    [
        (4, [], r"at global step 3 \(epoch 1, batch 1;"),  # an epoch's last step
        (3, ["trainer.max_steps=3"], r"by global step 2 \(epoch 1;"),  # the step max_steps cuts the epoch short at
        (3, ["+trainer.val_check_interval=1"], r"by global step 2 \(epoch 1;"),  # a validation inside the epoch
    ],
)
def test_deferred_non_finite_check_reads_the_flag_before_the_epoch_ends(train_cfg, monkeypatch, nan_at, extra, raised):
    """The accelerator path (a flag read every log_every_n_steps), run on CPU: a NaN in an epoch's last step, in an
    epoch cut short, or before a validation inside the epoch stops training before a checkpoint or a validation
    sees the weights, though the next scheduled read is 50 steps away."""
    calls = {"n": 0}

    class NanAt(torch.nn.Module):
        def forward(self, logits, target):
            calls["n"] += torch.is_grad_enabled()
            loss = torch.nn.functional.cross_entropy(logits.float(), target, ignore_index=255)
            return loss * float("nan") if calls["n"] == nan_at else loss

    monkeypatch.setattr(NonFiniteCheck, "defers", staticmethod(lambda loss: True))
    monkeypatch.setitem(LOSSES, "nan_at", lambda num_classes, ignore_index, weight=None, **kwargs: NanAt())
    cfg = train_cfg("loss.name=nan_at", "trainer.max_epochs=4", "trainer.log_every_n_steps=50", *extra)
    with pytest.raises(FloatingPointError, match=f"non-finite training loss {raised}"):
        train(cfg)
    checkpoints = Path(cfg.run_dir) / "checkpoints"
    assert load_checkpoint(checkpoints / "last.ckpt")["global_step"] == 2
    for path in (checkpoints / "last.ckpt", checkpoints / "best.ckpt"):  # validation never saw the NaN weights
        params = load_module(path).state_dict()
        assert all(torch.isfinite(v).all() for v in params.values() if v.is_floating_point()), path


def test_crafted_checkpoint_is_refused_and_its_code_never_runs(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"class_names": ["a"], "x": Payload()}}, evil)
    with pytest.raises(UnsafeCheckpointError, match="refused to load"):
        load_module(evil)
    out = subprocess.run(
        [sys.executable, "-m", "seglight.predict", f"ckpt={evil}", f"input={tmp_path}", f"output={tmp_path / 'out'}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0 and "refused to load" in out.stderr
    assert not marker.exists()


def test_seed_and_deterministic_give_identical_metrics(tmp_path, data_cache, train_cfg):
    results = []
    for i in range(2):
        cfg = train_cfg("trainer.deterministic=true", "trainer.max_epochs=2", "data.num_workers=1", "seed=7")
        cfg.run_dir = str(tmp_path / f"run{i}")
        results.append(train(cfg))
    for key in ("val/mIoU", "val/loss", "val/iou/circle"):
        assert results[0][key] == results[1][key], key


def test_ddp_two_processes_give_the_same_val_metrics_as_one(train_cfg):
    cfg = train_cfg("data.num_val=5", "data.eval_batch_size=2")  # 5 images: uneven over 2 ranks
    ckpt = train(cfg)["best_ckpt"]
    results = {}
    for devices, strategy in ((1, "auto"), (2, "ddp_spawn")):
        module = load_module(ckpt)
        dm = instantiate(cfg.data, _convert_="all")
        trainer = pl.Trainer(
            accelerator="cpu",
            devices=devices,
            strategy=strategy,
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        results[devices] = trainer.validate(module, datamodule=dm, verbose=False)[0]
    for key in ("val/mIoU", "val/dice", "val/acc", "val/iou/background"):
        assert results[2][key] == pytest.approx(results[1][key], abs=1e-6), key


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    """A save that dies half-way leaves the previous checkpoint whole and no temporary file."""
    from seglight.model.checkpoint import AtomicCheckpointIO

    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"epoch": 1, "w": torch.ones(1000)}, path)

    def dies_half_way(obj, f):
        f.write(b"\x80\x02 partial bytes of a checkpoint")
        raise KeyboardInterrupt("killed while saving")

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"epoch": 2, "w": torch.zeros(1000)}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["epoch"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]
