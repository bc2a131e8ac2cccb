"""SegmentationModule: smp model + loss + metrics in one LightningModule.

The constructor takes plain values only (names, numbers, lists) and saves them as hyperparameters,
so a checkpoint is self-describing: ``SegmentationModule.load_from_checkpoint(path)`` rebuilds the
model with its class names, colours, ignore_index, normalisation and architecture, no Hydra needed.
``freeze_encoder_epochs=N`` trains the decoder and head alone for the first N epochs (``set_encoder_frozen``).

Shapes: image (B,3,H,W) float -> logits (B,C,H,W) -> prediction (B,H,W) long; mask (B,H,W) long.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Sequence

import pytorch_lightning as pl
import torch
from torch import Tensor

from seglight.data.palette import Palette, default_colors
from seglight.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from seglight.model.factory import create_model, input_divisor, saved_model_kwargs, saved_module, set_encoder_frozen
from seglight.model.finite import NonFiniteCheck
from seglight.model.losses import build_loss
from seglight.model.memory_format import to_channels_last
from seglight.model.metrics import LOSS, SegmentationMetrics, confusion_matrix, flatten
from seglight.model.optim import build_optimizer, build_scheduler, fused_step_allowed
from seglight.model.tiling import TILE_OVERLAP, TILE_SIZE, needs_tiles, padded, sliding_window
from seglight.util.provenance import code_version

log = logging.getLogger(__name__)

Batch = dict[str, Tensor]
STAGES = ("train", "val", "test")
UNBOUNDED_EPOCHS = 100  # the provisional schedule length, in epochs, of a run bounded by time, not epochs


class SegmentationModule(pl.LightningModule):
    data_split: dict[str, Any] | None

    def __init__(
        self,
        class_names: Sequence[str],
        arch: str = "Unet",
        encoder_name: str = "resnet18",
        encoder_weights: str | None = None,
        in_channels: int = 3,
        model_kwargs: dict[str, Any] | None = None,
        colors: Sequence[Sequence[int]] | None = None,
        ignore_index: int = 255,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        loss: str = "ce",
        loss_kwargs: dict[str, Any] | None = None,
        class_weights: Sequence[float] | None = None,
        optimizer: str = "adamw",
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        optimizer_kwargs: dict[str, Any] | None = None,
        scheduler: str = "cosine",
        warmup_steps: int = 0,
        scheduler_kwargs: dict[str, Any] | None = None,
        channels_last: bool = True,
        tile_size: int | None = TILE_SIZE,
        tile_overlap: float = TILE_OVERLAP,
        freeze_encoder_epochs: int = 0,
        compile: bool = False,
        train_metrics_every_n_steps: int = 1,
    ) -> None:
        super().__init__()
        if train_metrics_every_n_steps < 0:
            raise ValueError(f"model.train_metrics_every_n_steps={train_metrics_every_n_steps}: give 0 (off) or N >= 1")
        if freeze_encoder_epochs < 0:
            raise ValueError(f"model.freeze_encoder_epochs={freeze_encoder_epochs}: give 0 (off) or a number of epochs")
        if not len(mean) == len(std) == in_channels:
            raise ValueError(
                f"model.in_channels={in_channels} but the data's mean/std have {len(mean)}/{len(std)} values: "
                f"give data.mean/data.std one value per channel, or auto"
            )
        model_kwargs = saved_model_kwargs(arch, encoder_name, model_kwargs)  # only within saved_module
        self.save_hyperparameters()
        self.class_names = list(class_names)
        self.num_classes = len(self.class_names)
        self.model = create_model(
            arch, encoder_name, encoder_weights, in_channels, self.num_classes, **(model_kwargs or {})
        )
        if channels_last:
            self.model = to_channels_last(self.model)
        self.loss_fn = build_loss(loss, self.num_classes, ignore_index, class_weights, **(loss_kwargs or {}))
        metrics = SegmentationMetrics(self.num_classes, ignore_index)
        self.train_metrics = metrics.clone()
        self.val_metrics = metrics.clone()
        self.test_metrics = metrics.clone()
        self.last_val_confusion: Tensor | None = None  # (C,C) counts, rows = ground truth; for plots
        self.image_confusions: list[Tensor] | None = None  # a list: validation appends each image's (C,C) counts
        self.finite = NonFiniteCheck()  # stops training on a non-finite loss
        self.data_split: dict[str, Any] | None = None  # how the run's data was split; saved in checkpoints
        self.temperature = 1.0  # softmax temperature fitted by ``seglight.evaluate calibrate=true``; saved too
        self.code_version: str | None = None  # the seglight commit that trained it (set when fit starts); saved
        self.chosen_on: str | None = None  # the metric that chose its checkpoint file (``load_module``), e.g. val/mIoU
        self.validated_step = -1  # the global step whose weights were last validated

    @classmethod
    def load_from_checkpoint(
        cls, checkpoint_path, map_location=None, hparams_file=None, strict=None, weights_only=None, **kwargs: Any
    ) -> SegmentationModule:
        """Lightning's loader with ``encoder_weights=None`` (the weights come from the state dict: it loads offline
        on any machine) and model_kwargs smp dropped left out (``saved_model_kwargs``; older checkpoints saved them)."""
        kwargs.setdefault("encoder_weights", None)
        load = super().load_from_checkpoint
        with saved_module("" if "model_kwargs" in kwargs else str(checkpoint_path)):  # the caller's: checked
            return load(checkpoint_path, map_location, hparams_file, strict, weights_only=weights_only, **kwargs)

    # ---- model ---------------------------------------------------------------------------
    @property
    def palette(self) -> Palette:
        """The classes' colours from the checkpoint (default colours if none were stored)."""
        colors = self.hp.colors if self.hp.colors is not None else default_colors(self.num_classes)
        return Palette(self.class_names, [tuple(c) for c in colors], ignore_index=self.hp.ignore_index)

    @property
    def hp(self) -> Any:
        """The saved constructor arguments (``hparams``), read as attributes: ``module.hp.mean``."""
        return self.hparams

    @property
    def divisor(self) -> int:
        """What H and W of the model's input must be multiples of (``input_divisor``: 32 for most models)."""
        return input_divisor(self.model)

    def forward(self, image: Tensor) -> Tensor:
        """image (B,in_channels,H,W), H and W multiples of ``divisor`` -> logits (B,C,H,W)."""
        if self.hp.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        return self.model(image)

    def predict_logits(self, image: Tensor) -> Tensor:
        """image (B,in_channels,H,W) of any size -> scores (B,C,H,W) by the rule predict and evaluate follow
        (seglight.model.tiling): padded to ``divisor``; above ``tile_size``, log of the window-averaged
        probabilities (the same argmax, and cross-entropy reads them like logits)."""
        if not needs_tiles(image, self.hp.tile_size):
            return padded(self, image, self.divisor)
        probs = sliding_window(
            lambda x: padded(self, x, self.divisor).float().softmax(dim=1),
            image,
            self.num_classes,
            self.hp.tile_size,
            self.hp.tile_overlap,
            self.divisor,
        )
        return probs.to(image.device).clamp_min(1e-8).log()

    def _metrics(self, stage: str):
        return getattr(self, f"{stage}_metrics")

    # ---- steps ---------------------------------------------------------------------------
    def _shared_step(self, batch: Batch, stage: str, batch_idx: int = 0) -> Tensor:
        """Training batches are crops of one size. Val/test images keep their own size: each batch is
        scored whole (``predict_logits``); images of different sizes come as lists (``collate_eval``).
        Train metrics count every ``train_metrics_every_n_steps``-th batch of an epoch (0: none)."""
        images, masks = batch["image"], batch["mask"]  # (B,3,H,W) float, (B,H,W) long; or lists of them
        groups: list[tuple[Tensor, Tensor, Tensor]]  # (image, mask, logits (B,C,H,W))
        if stage == "train":
            groups = [(images, masks, self(images))]
        else:
            pairs = zip(images, masks) if isinstance(images, list) else [(images, masks)]
            shaped = [(x if x.ndim == 4 else x[None], y if y.ndim == 3 else y[None]) for x, y in pairs]
            groups = [(x, y, self.predict_logits(x)) for x, y in shaped]
        losses = []
        for _, mask, logits in groups:
            losses.append(self.loss_fn(logits, mask))
            every = self.hp.get("train_metrics_every_n_steps", 1)
            if stage == "train" and (every == 0 or batch_idx % every):
                continue
            pred = logits.argmax(dim=1)  # (B,H,W)
            self._metrics(stage).update(pred, mask)
            if stage == "val" and self.image_confusions is not None:  # per image, in the loader's order
                self.image_confusions += [self._confusion(p[None], m[None]) for p, m in zip(pred, mask)]
        loss = torch.stack(losses).mean()
        self.log(
            f"{stage}/{LOSS}",
            loss,
            on_step=stage == "train",
            on_epoch=True,
            prog_bar=stage != "test",
            batch_size=len(images),
            sync_dist=stage != "train",
        )
        return loss

    def _confusion(self, pred: Tensor, mask: Tensor) -> Tensor:
        """pred (1,H,W), mask (1,H,W) -> (C,C) long counts on the CPU, rows = target, void left out."""
        return confusion_matrix(pred, mask, self.num_classes, self.hp.ignore_index).cpu()

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        loss = self._shared_step(batch, "train", batch_idx)
        self.finite.step(self, loss, batch_idx)
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._shared_step(batch, "test")

    def _log_epoch_metrics(self, stage: str) -> None:
        values = flatten(self._metrics(stage).compute(), stage, self.class_names)  # synced across ranks
        self._metrics(stage).reset()
        for key, value in values.items():
            self.log(key, value, prog_bar=key.endswith("/mIoU"))  # already synced: same on every rank

    def on_train_epoch_end(self) -> None:
        self.finite.read(self)  # an epoch cut short (max_time, max_steps) had no last batch
        if self.hp.get("train_metrics_every_n_steps", 1) > 0:
            self._log_epoch_metrics("train")

    def on_validation_start(self) -> None:
        if self.trainer.state.fn == "fit" and not self.trainer.sanity_checking:
            self.finite.read(self)  # max_time validates the epoch it cuts short before the epoch ends

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics("val")
        self.last_val_confusion = self.val_metrics.last_confusion  # type: ignore[assignment]
        if not self.trainer.sanity_checking:
            self.validated_step = self.global_step

    def on_test_epoch_end(self) -> None:
        self._log_epoch_metrics("test")

    # ---- optimisation --------------------------------------------------------------------
    def configure_optimizers(self):
        hp = self.hp
        kwargs = dict(hp.optimizer_kwargs or {})
        if kwargs.get("fused") is None and not fused_step_allowed(self._trainer):
            kwargs["fused"] = False
        opt = build_optimizer(hp.optimizer, self.parameters(), hp.lr, hp.weight_decay, **kwargs)
        if hp.scheduler in (None, "none"):
            return opt
        total = self.trainer.estimated_stepping_batches
        if not math.isfinite(total):  # max_epochs=-1 bounded by time: TimeBudget sets the length after epoch 0
            if self.trainer.train_dataloader is None:
                self.trainer.fit_loop.setup_data()
            per_epoch = self.trainer.num_training_batches
            total = UNBOUNDED_EPOCHS * (int(per_epoch) if math.isfinite(per_epoch) else 1000)
        sched = build_scheduler(hp.scheduler, opt, total, hp.warmup_steps, **(hp.scheduler_kwargs or {}))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # ---- checkpoint ----------------------------------------------------------------------
    def on_fit_start(self) -> None:
        if self.code_version is None:  # a resumed run keeps the commit it started with
            self.code_version = code_version()
        if self.hp.get("compile"):  # torch.compile in place: state_dict keys stay as they are
            self.model.compile()

    def on_train_start(self) -> None:
        self.temperature = 1.0  # the weights change from here: a temperature fitted to the old ones is void
        self._freeze_encoder_by_epoch()  # also on a resume, which may skip the epoch's start hook

    def on_train_epoch_start(self) -> None:
        self._freeze_encoder_by_epoch()

    def on_train_end(self) -> None:
        if self.hp.freeze_encoder_epochs > 0:
            set_encoder_frozen(self.model, False)  # the module left after fit is an ordinary one

    def _freeze_encoder_by_epoch(self) -> None:
        """Encoder frozen in epochs 0..freeze_encoder_epochs-1, trained from then on. Lightning restores each
        submodule's mode after validation, so the frozen BatchNorm layers stay in eval mode through the epoch."""
        if self.hp.freeze_encoder_epochs <= 0:
            return
        frozen = self.current_epoch < self.hp.freeze_encoder_epochs
        if set_encoder_frozen(self.model, frozen):
            log.info("epoch %d: encoder %s", self.current_epoch, "frozen" if frozen else "unfrozen")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.data_split is not None:
            checkpoint["data_split"] = self.data_split
        checkpoint["temperature"] = self.temperature
        checkpoint["code_version"] = self.code_version

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.data_split = checkpoint.get("data_split", self.data_split)
        self.temperature = float(checkpoint.get("temperature", 1.0))
        self.code_version = checkpoint.get("code_version", self.code_version)
