"""EMA: an exponential moving average of the weights, validated, checkpointed and kept as the final model."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

RAW_KEY = "ema_raw_state_dict"  # in checkpoints written during fit: the trained (not averaged) weights, for resume


class EMA(pl.Callback):
    """Keeps ``ema = d * ema + (1 - d) * weights`` after every optimizer step (once per step, also under gradient
    accumulation), over every floating tensor of the module's state (parameters and BatchNorm statistics), with
    ``d = min(decay, (1 + t) / (10 + t))`` at step t so that the average forgets the random start quickly.

    During fit, validation runs on the averaged weights and checkpoints hold them as their ``state_dict``
    (so best.ckpt is the averaged model that was scored, and predict/evaluate use it); the trained weights
    ride along under ``ema_raw_state_dict`` so ``resume=true`` continues training them. At the end of fit the
    module keeps the averaged weights. ``decay=None`` turns it off (the default config's way of offering it).
    """

    def __init__(self, decay: float | None = None) -> None:
        if decay is not None and not 0.0 <= decay < 1.0:
            raise ValueError(f"callbacks.ema.decay={decay}: give a value in [0, 1), e.g. 0.999, or null for off")
        self.decay = decay
        self.shadow: dict[str, Tensor] = {}
        self._raw: dict[str, Tensor] | None = None  # the trained weights while the averaged ones are loaded
        self._final = False
        self._step = -1  # the optimizer step the average last took in

    @property
    def active(self) -> bool:
        return self.decay is not None

    def on_fit_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if self.active and not self.shadow:
            self.shadow = {k: v.detach().clone() for k, v in module.state_dict().items()}
        self._final = False

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self._step = trainer.global_step  # after a resume: the steps the checkpoint's average already holds
        here = module.state_dict()  # a checkpoint's average was restored before the strategy moved the module
        self.shadow = {k: v.to(here[k].device if k in here else v.device) for k, v in self.shadow.items()}

    @torch.no_grad()
    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, *args: Any) -> None:
        if self.decay is None or trainer.global_step == self._step:  # no optimizer step since the last update
            return
        self._step = t = trainer.global_step
        d = min(self.decay, (1 + t) / (10 + t))
        for k, v in module.state_dict().items():
            if v.is_floating_point():
                self.shadow[k].lerp_(v.detach().to(self.shadow[k].dtype), 1.0 - d)
            else:
                self.shadow[k].copy_(v)

    def _swap_in(self, module: pl.LightningModule) -> None:
        self._raw = {k: v.detach().clone() for k, v in module.state_dict().items()}
        module.load_state_dict(self.shadow)

    def _swap_out(self, module: pl.LightningModule) -> None:
        if self._raw is not None:
            module.load_state_dict(self._raw)
            self._raw = None

    def on_validation_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if self.active and trainer.state.fn == "fit" and not self._final:
            self._swap_in(module)

    def on_validation_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if self.active and trainer.state.fn == "fit" and not self._final:
            self._swap_out(module)

    def on_fit_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if self.active:
            module.load_state_dict(self.shadow)
            self._final = True

    def on_save_checkpoint(self, trainer: pl.Trainer, module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        if not self.active or self._final:
            return  # after fit the module holds the averaged weights itself
        raw = self._raw or module.state_dict()
        checkpoint[RAW_KEY] = {k: v.detach().cpu().clone() for k, v in raw.items()}
        checkpoint["state_dict"] = {k: v.detach().cpu().clone() for k, v in self.shadow.items()}

    def on_load_checkpoint(self, trainer: pl.Trainer, module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        if self.active and RAW_KEY in checkpoint and trainer.state.fn == "fit":  # resuming: train the raw weights
            self.shadow = {k: v.clone() for k, v in checkpoint["state_dict"].items()}
            checkpoint["state_dict"] = checkpoint[RAW_KEY]
            # Lightning has already loaded the module from the checkpoint (the average): load the trained weights
            trainer.strategy.load_model_state_dict(checkpoint, strict=module.strict_loading)
