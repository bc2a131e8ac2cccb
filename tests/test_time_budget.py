"""TimeBudget: epochs fitted to a wall-clock budget, on a fake clock (each step 10 s, each validation 5 s)."""

import pytest
import pytorch_lightning as pl
from hydra.utils import instantiate

from seglight.model.optim import LRSchedule
from seglight.training.callbacks.time_budget import TimeBudget, epochs_that_fit, parse_duration
from seglight.training.fit import build_module, build_trainer


class FakeTime(pl.Callback):
    """A clock that advances 10 s per training step and 5 s per validation; records validated epochs."""

    def __init__(self) -> None:
        self.now, self.validated = 0.0, []

    def __call__(self) -> float:
        return self.now

    def on_train_batch_end(self, *args, **kwargs) -> None:
        self.now += 10

    def on_validation_epoch_end(self, trainer, module) -> None:
        if not trainer.sanity_checking:
            self.now += 5
            self.validated.append(trainer.current_epoch)


def test_parse_duration():
    assert parse_duration("00:00:42:30") == 42 * 60 + 30
    assert parse_duration(1.5) == 90
    with pytest.raises(ValueError, match="DD:HH:MM:SS"):
        parse_duration("42:30")


def test_epochs_that_fit_counts_cadence_and_final_validation():
    # epochs 0-6 at 20 s, validations (5 s) after epochs 2 and 5 and the last (6): 140 + 15
    assert epochs_that_fit(155, 20, 5, 0, 3) == 7
    assert epochs_that_fit(154.9, 20, 5, 0, 3) == 6  # 6 epochs: 120 + 2 validations
    assert epochs_that_fit(10, 20, 5, 0, 3) == 0


def test_run_ends_annealed_and_validated_within_budget(train_cfg):
    # 2 steps per epoch (20 s), validation every 3rd epoch (5 s). 170 s fit 7 epochs: 140 s of training and
    # validations after epochs 2, 5 and 6 (forced: the last), 155 s; an 8th epoch would need 175 s.
    cfg = train_cfg(
        "trainer.max_epochs=50",
        "trainer.check_val_every_n_epoch=3",
        "scheduler=poly",
        "scheduler.warmup_steps=0",
        "logger=none",
    )
    dm = instantiate(cfg.data, _convert_="all")
    module = build_module(cfg, dm)
    clock = FakeTime()
    budget = TimeBudget("00:00:02:50", clock=clock)  # 170 s
    trainer = build_trainer(cfg)
    trainer.callbacks[:0] = [clock, budget]  # the clock ticks before the budget reads it
    trainer.fit(module, datamodule=dm)

    assert trainer.current_epoch == 7  # epochs 0-6 ran
    assert clock.validated == [2, 5, 6]
    assert budget.elapsed_s == 155 <= budget.budget_s
    schedule = trainer.lr_scheduler_configs[0].scheduler.lr_lambdas[0]
    assert isinstance(schedule, LRSchedule) and schedule.total_steps == 14  # not the 100 of 50 epochs
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    assert budget.state_dict()["elapsed_s"] == 155
