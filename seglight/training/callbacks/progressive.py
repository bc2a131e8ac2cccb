"""ProgressiveResize: the first part of a run on smaller images, the rest at the configured size."""

from __future__ import annotations

import logging
from typing import Any

import pytorch_lightning as pl

from seglight.data.phases import PhasedTransform
from seglight.training.callbacks.time_budget import TimeBudget

log = logging.getLogger(__name__)


class ProgressiveResize(pl.Callback):
    """Trains the epochs before ``until`` (a fraction of the time budget, or of ``max_epochs`` without one) on images
    scaled by ``factor`` in proportionally smaller crops (``SegmentationDataModule.resize_early``), then switches to
    the configured size for the rest. A step on half-size images costs about a third as much, so a time budget fits
    more epochs; the late phase adapts the model to the size it is validated and used at.

    With a time budget the switch comes after the first epoch that ends past ``until`` of it, and the budget's epoch
    timings restart there (the late epochs are slower). ``factor=None`` turns it off (the default config's way of
    offering it). The switch epoch is saved in checkpoints, so a resumed run keeps it.
    """

    def __init__(self, factor: float | None, until: float = 0.5) -> None:
        if not 0 < until <= 1:
            raise ValueError(f"callbacks.progressive_resize.until={until}: expected a fraction in (0, 1]")
        self.factor = factor
        self.until = until
        self.switch_epoch: int | None = None
        self._phases: PhasedTransform | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """The early pipeline goes in as soon as the data is set up: Lightning starts the (persistent) DataLoader
        workers before ``on_fit_start``, and they keep the dataset they were started with."""
        if self.factor is None or stage != "fit":
            return
        datamodule = trainer.datamodule  # type: ignore[attr-defined]
        if datamodule is None or not hasattr(datamodule, "resize_early"):
            raise ValueError("callbacks.progressive_resize needs seglight's datamodule (resize_early)")
        self._phases = datamodule.resize_early(self.factor, int(getattr(pl_module, "divisor", 32)))

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Sets the switch epoch: the checkpoint's on a resume (restored by now), else from max_epochs without a
        time budget; with one it is set when the time comes (``on_train_epoch_end``)."""
        if self._phases is None:
            return
        budget = self._budget(trainer)
        if self.switch_epoch is None and budget is None and (trainer.max_epochs or -1) > 0:
            self.switch_epoch = round(self.until * trainer.max_epochs)  # type: ignore[operator]
        if self.switch_epoch is not None:
            self._phases.switch_at(self.switch_epoch)
        log.info(
            "progressive resize: images x%.2g until %s, then as configured",
            self.factor,
            f"epoch {self.switch_epoch}" if self.switch_epoch is not None else f"{self.until:.0%} of the time budget",
        )

    @staticmethod
    def _budget(trainer: pl.Trainer) -> TimeBudget | None:
        found = [c for c in trainer.callbacks if isinstance(c, TimeBudget) and c.budget_s is not None]  # type: ignore[attr-defined]
        return found[0] if found else None

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        budget = self._budget(trainer)
        if self._phases is None or self.switch_epoch is not None or budget is None:
            return
        assert budget.budget_s is not None
        if budget.elapsed_s >= self.until * budget.budget_s:
            self.switch_epoch = trainer.current_epoch + 1
            self._phases.switch_at(self.switch_epoch)
            budget.restart_timings()
            log.info("progressive resize: full-size images from epoch %d", self.switch_epoch)

    def state_dict(self) -> dict[str, Any]:
        return {"switch_epoch": self.switch_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.switch_epoch = state_dict["switch_epoch"]
