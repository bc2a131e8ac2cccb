"""Train for a wall-clock budget instead of a fixed number of epochs.

A fixed epoch count is a guess about the machine's speed: too many and ``max_time`` cuts the run before
the LR schedule has annealed (and, between validations, before the last weights are scored); too few and
the budget is wasted. The speed of the same machine varies from day to day (experiments/camvid/README.md).
"""

from __future__ import annotations

import logging
import math
import time
from datetime import timedelta
from typing import Any, Callable

import pytorch_lightning as pl
from torch.optim.lr_scheduler import LambdaLR

from seglight.model.optim import LRSchedule

log = logging.getLogger(__name__)


def parse_duration(value: str | float | int) -> float:
    """Seconds from ``"DD:HH:MM:SS"`` (Lightning's max_time format) or a number of minutes."""
    if isinstance(value, (int, float)):
        return float(value) * 60
    parts = [float(p) for p in str(value).split(":")]
    if len(parts) != 4:
        raise ValueError(f"time budget {value!r}: expected DD:HH:MM:SS or a number of minutes")
    return timedelta(days=parts[0], hours=parts[1], minutes=parts[2], seconds=parts[3]).total_seconds()


def epochs_that_fit(left_s: float, epoch_s: float, val_s: float, next_epoch: int, val_every: int) -> int:
    """How many more epochs (numbered from ``next_epoch``, 0-based) fit into ``left_s`` seconds, counting a
    validation on every ``val_every``-th epoch and on the last one."""
    n = 0
    while True:
        m = n + 1
        last = next_epoch + m - 1
        vals = sum((e + 1) % val_every == 0 for e in range(next_epoch, last + 1)) + ((last + 1) % val_every != 0)
        if m * epoch_s + vals * val_s > left_s:
            return n
        n = m


def schedule_length(trainer: pl.Trainer) -> int | None:
    """The step at which the run's LR schedule (``LRSchedule``) ends, None without one."""
    lambdas = [s for c in trainer.lr_scheduler_configs for s in getattr(c.scheduler, "lr_lambdas", [])]
    ends = [s.total_steps for s in lambdas if isinstance(s, LRSchedule)]
    return ends[0] if ends else None


def set_schedule_length(trainer: pl.Trainer, total_steps: int) -> None:
    """Every ``LRSchedule`` of the run ends at ``total_steps``; the optimizer's LR follows from this step on."""
    for config in trainer.lr_scheduler_configs:
        scheduler = config.scheduler
        lambdas = getattr(scheduler, "lr_lambdas", [])
        for schedule in lambdas:
            if isinstance(schedule, LRSchedule):
                schedule.total_steps = total_steps
        if isinstance(scheduler, LambdaLR):
            for group, base, factor in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, lambdas):
                group["lr"] = base * factor(scheduler.last_epoch)


class TimeBudget(pl.Callback):
    """Fits the run to ``budget`` of fit time (training + validation), measured on this machine.

    After each training epoch it takes the mean time of the recent epochs (the first, with its warm-up,
    only while it is the sole one) and of the last validation, and sets ``max_epochs`` to the most epochs
    that fit into what is left (never above the configured ``max_epochs``). The per-step LR schedule is
    stretched or shrunk to end at that epoch, and that epoch is always validated, so the run ends annealed,
    scored and checkpointed near the budget. ``Trainer.max_time`` stays the hard limit. Resumes continue
    from the elapsed time saved in the checkpoint and plan again before their first epoch (a finished run trains
    no more); on several processes rank 0's plan is broadcast. ``budget=None`` turns it off (the default config's
    way of offering it); then a resume whose ``max_epochs``/``max_steps`` end the run elsewhere than the
    checkpoint's schedule stretches the schedule to the new end (else added epochs would train at its last LR).
    """

    def __init__(self, budget: str | float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.budget_s = None if budget is None else parse_duration(budget)
        self.clock = clock
        self.elapsed_s = 0.0
        self.epoch_s: list[float] = []
        self.val_s = 0.0
        self._mark = self._epoch_start = self._val_start = 0.0
        self._val_this_epoch = 0.0
        self._cap: int | None = None
        self._val_every = 1
        # costlier epochs ahead (ProgressiveResize): from ``late_at_s`` of elapsed time on, ``late_cost`` times as long
        self.late_at_s: float | None = None
        self.late_cost = 1.0
        self._since = 0  # epoch_s[_since:] are the epochs of the current cost

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self._cap = trainer.fit_loop.max_epochs if (trainer.fit_loop.max_epochs or -1) > 0 else None
        self._val_every = trainer.check_val_every_n_epoch or 1
        self._mark = self.clock()
        if self.budget_s is not None and self.epoch_s:  # resumed: plan from the saved timings
            self._plan(trainer, done=trainer.current_epoch)
        elif self.budget_s is None:
            self._follow_the_configured_length(trainer)

    @staticmethod
    def _follow_the_configured_length(trainer: pl.Trainer) -> None:
        total, saved = trainer.estimated_stepping_batches, schedule_length(trainer)
        if saved is None or not math.isfinite(total) or saved == int(total):
            return
        before = trainer.optimizers[0].param_groups[0]["lr"]
        set_schedule_length(trainer, int(total))
        log.warning(
            "the checkpoint's LR schedule ends at step %d, trainer.max_epochs/max_steps now end the run at step %d: "
            "the schedule is stretched to end there (LR at step %d: %.3g -> %.3g)",
            saved,
            int(total),
            trainer.global_step,
            before,
            trainer.optimizers[0].param_groups[0]["lr"],
        )

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self._epoch_start = self.clock()
        self._val_this_epoch = 0.0
        if self.budget_s is None:
            return
        planned = trainer.fit_loop.max_epochs
        last = planned is not None and planned > 0 and trainer.current_epoch + 1 >= planned
        trainer.check_val_every_n_epoch = 1 if last else self._val_every

    def on_validation_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self._val_start = self.clock()

    def on_validation_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if not trainer.sanity_checking and trainer.state.fn == "fit":
            self.val_s = self.clock() - self._val_start
            self._val_this_epoch += self.val_s

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        now = self.clock()
        self.epoch_s.append(now - self._epoch_start - self._val_this_epoch)
        self.elapsed_s += now - self._mark
        self._mark = now
        if self.budget_s is not None:
            self._plan(trainer, done=trainer.current_epoch + 1)

    @property
    def cap(self) -> int | None:
        """The configured max_epochs, which no plan exceeds (None: no cap); known once training starts."""
        return self._cap

    def expect_costlier_epochs(self, at_s: float, cost: float) -> None:
        """Plan for the epochs after the first one that ends past ``at_s`` of fit time to take ``cost`` times as long
        as the epochs so far (``ProgressiveResize``: full-size images after smaller ones)."""
        self.late_at_s, self.late_cost = float(at_s), float(cost)

    def restart_timings(self) -> None:
        """The costlier epochs begin: plan from their own timings from now on (``expect_costlier_epochs``)."""
        self._since = len(self.epoch_s)
        self.late_at_s = None

    def _epoch_estimate(self) -> float:
        """Seconds per training epoch at the current cost: the mean of the recent epochs since the last restart (the
        first, with its warm-up, only while it is the sole one); right after a restart the last epoch's, times the
        expected cost."""
        timings = self.epoch_s[self._since :]
        if not timings:
            return self.epoch_s[-1] * self.late_cost
        recent = timings[1:][-5:] or timings
        return sum(recent) / len(recent)

    def _epochs_left(self, epoch_s: float, done: int, late_at_s: float | None = None) -> int:
        """How many more epochs fit, counting the costlier ones ahead (``expect_costlier_epochs``; ``late_at_s``
        overrides when they begin)."""
        assert self.budget_s is not None
        left, late_at_s = self.budget_s - self.elapsed_s, self.late_at_s if late_at_s is None else late_at_s
        if late_at_s is None:
            return epochs_that_fit(left, epoch_s, self.val_s, done, self._val_every)
        cheap, cheap_s = 0, 0.0  # the cheap epochs until one ends past late_at_s, with their validations
        while self.elapsed_s + cheap_s < late_at_s and cheap_s < left:
            cheap_s += max(epoch_s, 1e-9) + (self.val_s if (done + cheap + 1) % self._val_every == 0 else 0.0)
            cheap += 1
        costly = epochs_that_fit(left - cheap_s, epoch_s * self.late_cost, self.val_s, done + cheap, self._val_every)
        if costly == 0:  # the run ends on a cheap epoch: its final validation too must fit
            return min(cheap, epochs_that_fit(left, epoch_s, self.val_s, done, self._val_every))
        return cheap + costly

    def epochs_if_costlier_now(self, done: int) -> int:
        """Epochs in all if the costlier epochs began with the next one (``ProgressiveResize`` under a cap)."""
        return done + self._epochs_left(self._epoch_estimate(), done, late_at_s=self.elapsed_s)

    def _plan(self, trainer: pl.Trainer, done: int) -> None:
        """max_epochs and the schedule's end from the time left, with ``done`` epochs trained."""
        assert self.budget_s is not None
        epoch_s = self._epoch_estimate()
        more = self._epochs_left(epoch_s, done)
        planned = done + more if self._cap is None else min(self._cap, done + more)
        planned = int(trainer.strategy.broadcast(planned, src=0))
        trainer.fit_loop.max_epochs = planned
        steps = round(planned * trainer.global_step / max(1, done))
        set_schedule_length(trainer, max(1, min(steps, trainer.max_steps) if trainer.max_steps > 0 else steps))
        log.info(
            "time budget: %.0f of %.0f s used; epoch %.0f s, validation %.0f s -> %d epochs in all",
            self.elapsed_s,
            self.budget_s,
            epoch_s,
            self.val_s,
            planned,
        )

    def state_dict(self) -> dict[str, Any]:
        return {
            "elapsed_s": self.elapsed_s,
            "epoch_s": self.epoch_s,
            "val_s": self.val_s,
            "since": self._since,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.elapsed_s = state_dict["elapsed_s"]
        self.epoch_s = state_dict["epoch_s"]
        self.val_s = state_dict["val_s"]
        # not the costlier epochs ahead: ProgressiveResize sets them from this run's config (and clears them when
        # the checkpoint is past its switch)
        self._since = state_dict.get("since", 0)
