"""train(cfg): compose objects from a config, fit, validate the best checkpoint, write metrics.json."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint

from seglight.checkpoint import AtomicCheckpointIO
from seglight.data.datamodule import SegDataModule
from seglight.hardware import resolve_precision
from seglight.metrics import MONITOR
from seglight.report import print_class_table, write_json

log = logging.getLogger(__name__)

AUTO_WEIGHTS = {"auto": 1.0, "auto_sqrt": 0.5}  # loss.class_weights=<name>: power of the median-frequency weights
GROUP_NAME_KEYS = {"loss": ("name", "class_weights"), "optimizer": ("name", "lr", "weight_decay"),
                   "scheduler": ("name", "warmup_steps")}


def _extra(node: DictConfig, group: str) -> dict[str, Any]:
    """The group's options other than its named ones, as plain values (loss.gamma -> loss_kwargs)."""
    return {k: v for k, v in OmegaConf.to_container(node, resolve=True).items() if k not in GROUP_NAME_KEYS[group]}


def build_module(cfg: DictConfig, dm: SegDataModule) -> pl.LightningModule:
    """The SegmentationModule from cfg.model + loss/optimizer/scheduler groups + what the data says."""
    weights = cfg.loss.class_weights
    if isinstance(weights, str):
        if weights not in AUTO_WEIGHTS:
            raise ValueError(f"loss.class_weights={weights!r}: use {' or '.join(AUTO_WEIGHTS)}, null or a list")
        log.info("class weights (%s: median frequency to the power %s)", weights, AUTO_WEIGHTS[weights])
        weights = dm.class_weights(power=AUTO_WEIGHTS[weights])
        log.info("class weights: %s", dict(zip(dm.class_names, weights)))
    return instantiate(
        cfg.model, _convert_="all",
        class_names=dm.class_names, colors=[list(c) for c in dm.palette.colors], ignore_index=dm.ignore_index,
        mean=list(dm.mean), std=list(dm.std),
        loss=cfg.loss.name, loss_kwargs=_extra(cfg.loss, "loss"),
        class_weights=list(weights) if weights is not None else None,
        optimizer=cfg.optimizer.name, lr=cfg.optimizer.lr, weight_decay=cfg.optimizer.weight_decay,
        optimizer_kwargs=_extra(cfg.optimizer, "optimizer"),
        scheduler=cfg.scheduler.name, warmup_steps=cfg.scheduler.warmup_steps,
        scheduler_kwargs=_extra(cfg.scheduler, "scheduler"),
    )


def build_trainer(cfg: DictConfig, **kwargs) -> pl.Trainer:
    """Trainer from cfg.trainer with cfg.callbacks and cfg.logger, adapted to this machine:
    precision 'auto' resolved, SyncBatchNorm only with CUDA (it has no CPU kernels), no
    LearningRateMonitor without a logger (Lightning refuses that combination), atomic checkpoint writes."""
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c]
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    if not loggers:
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    precision = resolve_precision(cfg.trainer.precision, cfg.trainer.accelerator)
    sync_bn = bool(cfg.trainer.sync_batchnorm) and torch.cuda.is_available()
    if cfg.trainer.sync_batchnorm and not sync_bn:
        log.info("sync_batchnorm off: SyncBatchNorm needs CUDA")
    return instantiate(cfg.trainer, precision=precision, sync_batchnorm=sync_bn, callbacks=callbacks,
                       logger=loggers or False, plugins=[AtomicCheckpointIO()], **kwargs)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fits the configured model and returns the best checkpoint's val metrics (also in run_dir/metrics.json).

    Keys: ``val/mIoU``, ``val/dice``, ``val/acc``, ``val/loss``, ``val/iou/<class>``, ``best_ckpt``, and
    ``test/...`` when the data has a test split.
    """
    pl.seed_everything(cfg.seed, workers=True)
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    dm: SegDataModule = instantiate(cfg.data, _convert_="all")
    module = build_module(cfg, dm)
    trainer = build_trainer(cfg)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    resolved["trainer"]["precision"] = str(trainer.precision)
    if trainer.is_global_zero:
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(resolved))
    for lg in trainer.loggers:
        lg.log_hyperparams(resolved)

    ckpt_path = None
    last = run_dir / "checkpoints" / "last.ckpt"
    if cfg.resume:
        if last.exists():
            ckpt_path = str(last)
            log.info("resuming from %s", last)
        else:
            log.warning("resume=true but %s does not exist: starting fresh", last)
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)

    best = next((c.best_model_path for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint)
                 and c.monitor == MONITOR and c.best_model_path), "")
    metrics: dict[str, Any] = dict(trainer.validate(module, datamodule=dm, ckpt_path=best or None, verbose=False)[0])
    if cfg.get("test_after_fit", True) and dm.has_split("test"):
        metrics.update(trainer.test(module, datamodule=dm, ckpt_path=best or None, verbose=False)[0])
    metrics = {k: float(v) for k, v in metrics.items()}
    metrics["best_ckpt"] = best
    if trainer.is_global_zero:
        write_json(run_dir / "metrics.json", metrics)
        print_class_table(metrics, "val", dm.class_names, title="val per-class IoU (best checkpoint)")
        if "test/mIoU" in metrics:
            print_class_table(metrics, "test", dm.class_names)
        log.info("val/mIoU %.4f; best checkpoint %s; run dir %s", metrics[MONITOR], best or "(none)", run_dir)
    return metrics
