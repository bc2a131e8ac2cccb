"""ProgressiveResize: the first part of a run on smaller images, the rest at the configured size."""

from __future__ import annotations

import logging
from typing import Any

import pytorch_lightning as pl

from seglight.data.phases import PhasedTransform, resize_early
from seglight.training.callbacks.time_budget import TimeBudget

log = logging.getLogger(__name__)


class ProgressiveResize(pl.Callback):
    """Trains the epochs before ``until`` (a fraction of the time budget, or of ``max_epochs`` without one) on images
    scaled by ``factor`` in crops scaled alike (``seglight.data.phases.resize_early``), then switches to the configured
    size for the rest. Epochs on smaller images are cheaper, so a time budget fits more of them; the late phase adapts
    the model to the size it is validated and used at.

    With a time budget the switch comes after the first epoch that ends past ``until`` of it (rank 0's clock decides
    for every rank), or at ``until`` of the planned epochs when the configured ``max_epochs`` bounds the run first
    (and switching then still lets the run reach it).
    The budget plans the late epochs at the crops' area ratio of cost until it has timed them (an upper bound: the
    data loading does not shrink with the crops; on CamVid a half-size epoch took about 0.4 of a full one).
    ``factor=None`` turns it off (the default config's way of offering it). The switch epoch is saved in checkpoints
    and set again before a resumed run's DataLoader workers start.
    """

    def __init__(self, factor: float | None, until: float = 0.5) -> None:
        if not 0 < until < 1:
            raise ValueError(f"callbacks.progressive_resize.until={until}: expected a fraction in (0, 1)")
        self.factor = factor
        self.until = until
        self.switch_epoch: int | None = None
        self._phases: PhasedTransform | None = None
        self._time: TimeBudget | None = None  # the run's time budget, when it has one (found in setup)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """The early pipeline goes in as soon as the data is set up, and with it any switch epoch already known:
        Lightning starts the (persistent) DataLoader workers while it sets up the optimizers, before
        ``on_fit_start``, and they prefetch at once (a checkpoint's state is restored just before that)."""
        if self.factor is None or stage != "fit":
            return
        datamodule = trainer.datamodule  # type: ignore[attr-defined]
        if datamodule is None or not hasattr(datamodule, "train_pipeline"):
            raise ValueError("callbacks.progressive_resize needs seglight's datamodule (train_pipeline)")
        self._phases = resize_early(datamodule, self.factor, int(getattr(pl_module, "divisor", 32)))
        budget = self._budget(trainer)
        if budget is not None:
            assert budget.budget_s is not None
            if trainer.callbacks.index(budget) > trainer.callbacks.index(self):  # type: ignore[attr-defined]
                raise ValueError(
                    "callbacks.progressive_resize must come after callbacks.time_budget (it reads its time)"
                )
            budget.expect_costlier_epochs(self.until * budget.budget_s, self._phases.cost)
            self._time = budget
        elif self.switch_epoch is None:
            if (trainer.max_epochs or -1) <= 0:
                raise ValueError(
                    "callbacks.progressive_resize needs trainer.max_epochs or callbacks.time_budget.budget to place "
                    "its switch"
                )
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
        budget = self._time
        if self._phases is None or self.switch_epoch is not None or budget is None:
            return
        assert budget.budget_s is not None
        done, planned = trainer.current_epoch + 1, trainer.fit_loop.max_epochs or 0
        capped = budget.cap is not None and planned >= budget.cap  # the budget's plan held to max_epochs
        due = budget.elapsed_s >= self.until * budget.budget_s or (  # under the cap: if the run still reaches it
            capped and done >= round(self.until * planned) and budget.epochs_if_costlier_now(done) >= planned
        )
        if not trainer.strategy.broadcast(due, src=0):
            return
        self.switch_epoch = trainer.current_epoch + 1
        self._phases.switch_at(self.switch_epoch)
        budget.restart_timings()
        log.info("progressive resize: full-size images from epoch %d", self.switch_epoch)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._phases is not None and (self.switch_epoch is None or self.switch_epoch >= trainer.current_epoch):
            log.warning("progressive resize: the run ended before any epoch at full size")

    def state_dict(self) -> dict[str, Any]:
        return {"switch_epoch": self.switch_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict["switch_epoch"] is None:  # not switched yet: keep what setup placed (without a budget)
            return
        self.switch_epoch = state_dict["switch_epoch"]
        if self._phases is not None:
            self._phases.switch_at(self.switch_epoch)
        if self._time is not None:  # past the switch: the budget plans from the full-size epochs it has timed
            self._time.late_at_s = None
