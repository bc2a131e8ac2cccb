"""train(cfg): compose objects from a config, fit, validate the best checkpoint, write metrics.json."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Sequence

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint

from seglight.data.datamodule import SegDataModule
from seglight.data.splits import data_differences
from seglight.model.checkpoint import (
    AtomicCheckpointIO,
    inherited,
    init_weights,
    load_checkpoint,
    start_normalisation,
    trained_normalisation,
)
from seglight.model.metrics import FINAL_MONITOR, MONITOR
from seglight.model.module import SegmentationModule
from seglight.report.confusions import VAL_CONFUSIONS
from seglight.report.tables import print_class_table, selected_above_final
from seglight.training.callbacks.checkpoint import RunCheckpoint
from seglight.training.callbacks.confusions import ImageConfusions
from seglight.training.callbacks.copy_paste import CopyPaste
from seglight.training.callbacks.epoch_seeds import EpochSeeds
from seglight.training.callbacks.time_budget import TimeBudget, parse_duration
from seglight.training.loggers import CSVLogger
from seglight.util.files import write_json
from seglight.util.hardware import resolve_precision
from seglight.util.values import plain

log = logging.getLogger(__name__)

AUTO_WEIGHTS = {"auto": 1.0, "auto_sqrt": 0.5}  # loss.class_weights=<name>: power of the median-frequency weights
SPLITS_FILE = "splits.json"  # in the run dir: {"train": [...], "val": [...], "test": [...]} image file names
MAX_TIME_SHARE = 0.97  # max_epochs=-1 with max_time only: plan the run to end within this share of max_time
DDP_STRATEGIES = ("ddp", "ddp_spawn", "ddp_fork", "ddp_notebook")  # each has a <name>_find_unused_parameters_true
# How the loss, optimizer and scheduler groups become SegmentationModule arguments: the keys listed map to the
# argument named beside them; every other key of the group (loss.gamma, optimizer.betas, scheduler.power)
# goes into <group>_kwargs, which the registries pass to the loss / optimizer / schedule as keyword arguments.
GROUP_ARGUMENTS = {
    "loss": {"name": "loss", "class_weights": "class_weights"},
    "optimizer": {"name": "optimizer", "lr": "lr", "weight_decay": "weight_decay"},
    "scheduler": {"name": "scheduler", "warmup_steps": "warmup_steps"},
}


def group_arguments(cfg: DictConfig) -> dict[str, Any]:
    """SegmentationModule arguments from the loss, optimizer and scheduler groups (``GROUP_ARGUMENTS``)."""
    args: dict[str, Any] = {}
    for group, named in GROUP_ARGUMENTS.items():
        options = plain(cfg[group])
        args.update({argument: options.pop(key) for key, argument in named.items()})
        args[f"{group}_kwargs"] = options
    return args


def build_module(cfg: DictConfig, dm: SegDataModule) -> SegmentationModule:
    """The SegmentationModule from cfg.model + loss/optimizer/scheduler groups + what the data says."""
    args = group_arguments(cfg)
    weights = args["class_weights"]
    if isinstance(weights, str):
        if weights not in AUTO_WEIGHTS:
            raise ValueError(f"loss.class_weights={weights!r}: use {' or '.join(AUTO_WEIGHTS)}, null or a list")
        log.info("class weights (%s: median frequency to the power %s)", weights, AUTO_WEIGHTS[weights])
        args["class_weights"] = dm.class_weights(power=AUTO_WEIGHTS[weights])
        log.info("class weights: %s", dict(zip(dm.class_names, args["class_weights"])))
    return instantiate(
        cfg.model,
        _convert_="all",
        class_names=dm.class_names,
        colors=[list(c) for c in dm.palette.colors],
        ignore_index=dm.ignore_index,
        mean=list(dm.mean),
        std=list(dm.std),
        **args,
    )


def _bound_the_run(cfg: DictConfig, callbacks: list[pl.Callback]) -> None:
    """``trainer.max_epochs=-1`` runs until a time limit: a time budget, or ``max_time`` (then the budget is
    ``max_time``, so the LR schedule is fitted to it). Neither nor ``max_steps``: an error saying so."""
    t = cfg.trainer
    if t.get("max_epochs") != -1 or (t.get("max_steps") or -1) > 0:
        return
    budget = next((c for c in callbacks if isinstance(c, TimeBudget)), None)
    if budget is not None and budget.budget_s is not None:
        return
    if budget is None:
        raise ValueError(
            "trainer.max_epochs=-1 needs the time budget callback (callbacks.time_budget) to fit the "
            "LR schedule to the run's time; or give trainer.max_epochs=N or trainer.max_steps=N"
        )
    if not t.get("max_time"):
        raise ValueError(
            "trainer.max_epochs=-1 trains without end: bound it with callbacks.time_budget.budget="
            "DD:HH:MM:SS (or minutes), trainer.max_time=DD:HH:MM:SS, or trainer.max_steps=N"
        )
    budget.budget_s = parse_duration(t.max_time) * MAX_TIME_SHARE
    log.info("trainer.max_epochs=-1: fitting the run to trainer.max_time=%s", t.max_time)


def build_trainer(cfg: DictConfig, extra_callbacks: Sequence[pl.Callback] = (), **kwargs) -> pl.Trainer:
    """Trainer from cfg.trainer with cfg.callbacks (and ``extra_callbacks``) and cfg.logger, adapted to this machine:
    precision 'auto' resolved, SyncBatchNorm only with CUDA (it has no CPU kernels), no
    LearningRateMonitor without a logger (Lightning refuses that combination), atomic checkpoint writes, and DDP
    told that some parameters get no gradient while ``model.freeze_encoder_epochs`` freezes the encoder."""
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c]
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    if not loggers:
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    _bound_the_run(cfg, callbacks)
    precision = resolve_precision(cfg.trainer.precision, cfg.trainer.accelerator)
    sync_bn = bool(cfg.trainer.sync_batchnorm) and torch.cuda.is_available()
    if cfg.trainer.sync_batchnorm and not sync_bn:
        log.info("sync_batchnorm off: SyncBatchNorm needs CUDA")
    strategy = cfg.trainer.strategy
    if (cfg.get("model") or {}).get("freeze_encoder_epochs") and strategy in DDP_STRATEGIES:
        strategy = f"{strategy}_find_unused_parameters_true"  # else DDP waits for the frozen encoder's gradients
        log.info("trainer.strategy=%s: the encoder is frozen for the first epochs", strategy)
    return instantiate(
        cfg.trainer,
        precision=precision,
        strategy=strategy,
        sync_batchnorm=sync_bn,
        callbacks=[*callbacks, *extra_callbacks],
        logger=loggers or False,
        plugins=[AtomicCheckpointIO()],
        **kwargs,
    )


def keep_history(loggers: list, checkpoint: dict[str, Any] | None) -> None:
    """Before resuming from ``checkpoint``: CSV logs keep their rows up to it (those of later, unsaved epochs
    are dropped: they are trained again); a fresh run (None) starts them anew. TensorBoard and W&B keep their
    history by writing to the same folder / run."""
    for lg in loggers:
        if isinstance(lg, CSVLogger):
            if checkpoint is None:
                lg.experiment.drop_after(None)
            else:
                lg.experiment.drop_after(checkpoint["epoch"], checkpoint["global_step"])


def validate_the_end(trainer: pl.Trainer, module: SegmentationModule, dm: SegDataModule) -> None:
    """Validates the weights the run ended with when its last epoch was not validated (a time limit or an
    epoch count between validations ended it), and makes them best.ckpt when they score higher."""
    if trainer.global_step == 0 or module.validated_step == trainer.global_step or not trainer.limit_val_batches:
        return
    log.info("the last epoch was not validated: validating the final weights (step %d)", trainer.global_step)
    score = torch.tensor(trainer.validate(module, datamodule=dm, verbose=False)[0][MONITOR])
    callbacks = [cb for cb in trainer.checkpoint_callbacks if isinstance(cb, ModelCheckpoint)]
    best = next((cb for cb in callbacks if cb.monitor == MONITOR and cb.dirpath), None)
    if best is None or (best.best_model_score is not None and score <= best.best_model_score):
        return
    path = str(Path(str(best.dirpath)) / f"{best.filename or 'best'}{best.FILE_EXTENSION}")
    best.best_model_path, best.best_model_score, best.kth_best_model_path = path, score, path
    best.best_k_models, best.kth_value = {path: score}, score
    if isinstance(best, RunCheckpoint):
        best.save(trainer, path)  # marked as the best file (SAVED_AS)
    else:
        trainer.save_checkpoint(path)
    log.info("final weights score %s %.4f: saved as %s", MONITOR, float(score), path)
    for cb in callbacks:  # last.ckpt: a resume that extends the run must know the new best
        if cb.monitor is not None or not trainer.is_global_zero:
            continue
        last = Path(cb.dirpath or "") / f"{cb.filename}{cb.FILE_EXTENSION}"
        if last.is_file():
            checkpoint = load_checkpoint(last)
            checkpoint["callbacks"][best.state_key] = best.state_dict()
            AtomicCheckpointIO().save_checkpoint(checkpoint, last)


def epoch_to_resume(checkpoint: dict[str, Any]) -> int:
    """The epoch a run resumed from ``checkpoint`` trains first: Lightning's count of the epochs it processed."""
    progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {}).get("current", {})
    return int(progress.get("processed", checkpoint.get("epoch", -1) + 1))


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fits the configured model and returns the best checkpoint's val metrics (also in run_dir/metrics.json).

    Keys: ``val/mIoU``, ``val/dice``, ``val/acc``, ``val/loss``, ``val/iou/<class>``, ``best_ckpt``, and
    ``test/...`` when the data has a test split, ``fit_minutes`` (over all resumes), ``val_images`` (how many
    val images the final validation scored: fewer than the split under ``trainer.limit_val_batches``) and
    ``val_img_per_s`` (those over its seconds: what the sweep summary plots accuracy against). That
    validation's per-image confusion matrices go to run_dir/val_confusions.npz (``ImageConfusions``).
    """
    pl.seed_everything(cfg.seed, workers=True)
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    dm: SegDataModule = instantiate(cfg.data, _convert_="all")
    resolved = plain(cfg)
    resumed = None
    last = run_dir / "checkpoints" / "last.ckpt"
    if cfg.resume:
        if last.exists():
            log.info("resuming from %s", last)
            resumed = load_checkpoint(last)
            if resumed.get("data_split"):  # train and validate on the files the run started with
                dm.use_recorded_splits(resumed["data_split"]["files"])
                _, how = data_differences(resumed["data_split"]["data"], resolved["data"])
                if how:
                    log.warning("data.%s differ from the run's: it resumes on the files it started with",
                                ", data.".join(how))  # fmt: skip
            if normalisation := trained_normalisation(resumed):  # as its weights were trained, measured or not
                dm.use_normalisation(*normalisation)
            dm.set_epoch(epoch_to_resume(resumed))  # workers start before Lightning restores the epoch
        else:
            log.warning("resume=true but %s does not exist: starting fresh", last)
    init = load_checkpoint(cfg.init_from) if cfg.get("init_from") and resumed is None else None
    if init is not None and (normalisation := start_normalisation(init, cfg.init_from, dm.in_channels)):
        dm.use_normalisation(*normalisation)  # the inputs its weights expect
    module = build_module(cfg, dm)
    if init is not None:
        init_weights(module, init, cfg.init_from)
    confusions = ImageConfusions()  # off until the final validation
    trainer = build_trainer(cfg, extra_callbacks=[confusions, EpochSeeds(cfg.seed)])
    for paste in (c for c in trainer.callbacks if isinstance(c, CopyPaste)):  # type: ignore[attr-defined]
        paste.bind(module)  # a class name that is not in the data fails before the run dir changes
    resolved["trainer"]["precision"] = str(trainer.precision)
    module.data_split = {"data": resolved["data"], "files": dm.split_files()}
    if resumed is not None and resumed.get("data_split"):
        module.data_split = resumed["data_split"]
    elif init is not None:
        module.data_split["init_from"] = inherited(  # the start as an absolute path: runs move, cwds differ
            Path(cfg.init_from).resolve(), init, dm.splits, resolved["data"], module.data_split["files"]
        )
    keep_history(trainer.loggers, resumed)
    if trainer.is_global_zero:
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(resolved))
        if (run_dir / "metrics.json").exists():  # an earlier run's (or this one's before a resume): not this run's yet
            (run_dir / "metrics.json").replace(run_dir / "metrics.previous.json")
        write_json(run_dir / SPLITS_FILE, module.data_split["files"])
    for lg in trainer.loggers:
        lg.log_hyperparams(resolved)
    started = time.perf_counter()
    trainer.fit(module, datamodule=dm, ckpt_path=str(last) if resumed is not None else None)
    fit_seconds = time.perf_counter() - started  # this process's; a resume adds the fit time its checkpoint saved
    fit_seconds += ((resumed or {}).get("callbacks") or {}).get(TimeBudget.__qualname__, {}).get("elapsed_s", 0.0)
    if not trainer.interrupted:
        validate_the_end(trainer, module, dm)
    # the last validation, when it scored the weights the run ended with (under ddp_spawn the steps do not come back)
    final = trainer.callback_metrics.get(MONITOR) if module.validated_step == trainer.global_step > 0 else None

    best = next(
        (
            c.best_model_path
            for c in trainer.checkpoint_callbacks
            if isinstance(c, ModelCheckpoint) and c.monitor == MONITOR and c.best_model_path
        ),
        "",
    )
    confusions.path = run_dir / VAL_CONFUSIONS  # the per-image counts behind the val scores
    started = time.perf_counter()
    validated = trainer.validate(module, datamodule=dm, ckpt_path=best or None, verbose=False)
    if not validated:  # trainer.limit_val_batches=0: the weights are in last.ckpt, there are no val scores
        log.warning("no validation ran (trainer.limit_val_batches=0): metrics.json holds no val scores")
    metrics: dict[str, Any] = dict(validated[0]) if validated else {}
    val_seconds = time.perf_counter() - started
    confusions.path = None
    if cfg.get("test_after_fit", True) and dm.has_split("test"):
        metrics.update(trainer.test(module, datamodule=dm, ckpt_path=best or None, verbose=False)[0])
    metrics = {k: float(v) for k, v in metrics.items()}
    metrics["fit_minutes"] = fit_seconds / 60  # what the sweep summary plots accuracy against (summary.png)
    val_images = len(dm.datasets["val"]) if "val" in dm.datasets and validated else 0
    if confusions.scored is not None and confusions.scored < val_images:  # trainer.limit_val_batches
        log.warning("the val scores are of %d of the %d val images (trainer.limit_val_batches)", confusions.scored,
                    val_images)  # fmt: skip
        val_images = confusions.scored
    metrics["val_images"] = val_images  # the images behind val/*
    metrics["val_img_per_s"] = val_images / val_seconds if val_images and val_seconds > 0 else float("nan")
    metrics["best_ckpt"] = best
    if final is not None:  # best.ckpt was chosen on these val images: where it is not the end, its score is optimistic
        metrics[FINAL_MONITOR] = float(final)
        if selected_above_final(metrics) is not None:
            log.info("best.ckpt (val/mIoU %.4f) was chosen on the val images it is scored on; the final weights "
                     "score %.4f (last.ckpt)", metrics[MONITOR], float(final))  # fmt: skip
    metrics["purge_frames"] = (module.data_split or {}).get("data", {}).get("purge_frames")  # as trained (resumed too)
    if dm.splits.train_on_val:  # val scored images the model trained on: say so beside the figures
        metrics["train_on_val"] = True
    if "init_from" in (module.data_split or {}):  # of these val images, how many the start trained on (None: unknown)
        metrics["init_from_seen_val"] = module.data_split["init_from"].get("seen", {}).get("val")
    if trainer.is_global_zero:
        write_json(run_dir / "metrics.json", metrics)
        if validated:
            print_class_table(metrics, "val", dm.class_names, title="val per-class IoU (best checkpoint)")
        if "test/mIoU" in metrics:
            print_class_table(metrics, "test", dm.class_names)
        log.info("val/mIoU %.4f; best checkpoint %s; run dir %s", metrics.get(MONITOR, float("nan")), best or "(none)",
                 run_dir)  # fmt: skip
    return metrics
