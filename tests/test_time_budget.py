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


# 2 steps per epoch (20 s on FakeTime), validation every 3rd epoch (5 s), an epoch cap far above what 170 s fit
FITTED = (
    "trainer.max_epochs=50",
    "trainer.check_val_every_n_epoch=3",
    "scheduler=poly",
    "scheduler.warmup_steps=0",
    "logger=none",
)


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
    cfg = train_cfg(*FITTED)
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


def _budget_run(cfg, ckpt_path=None) -> tuple[pl.Trainer, FakeTime]:
    """fit with the config's TimeBudget on a FakeTime clock, from ``ckpt_path`` if given."""
    dm = instantiate(cfg.data, _convert_="all")
    trainer = build_trainer(cfg)
    clock = FakeTime()
    next(c for c in trainer.callbacks if isinstance(c, TimeBudget)).clock = clock
    trainer.callbacks.insert(0, clock)
    trainer.fit(build_module(cfg, dm), datamodule=dm, ckpt_path=ckpt_path)
    return trainer, clock


def test_the_schedule_ends_at_max_steps_when_they_end_the_run_first(train_cfg):
    """The budget fits 7 epochs (14 steps); trainer.max_steps=10 ends the run before: the schedule ends there."""
    cfg = train_cfg(*FITTED, "trainer.max_steps=10", "callbacks.time_budget.budget=00:00:02:50")
    trainer, _ = _budget_run(cfg)
    assert trainer.global_step == 10
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_resuming_a_finished_budget_run_trains_no_more(train_cfg):
    cfg = train_cfg(*FITTED, "callbacks.time_budget.budget=00:00:02:50")
    first, _ = _budget_run(cfg)
    assert first.current_epoch == 7 and first.global_step == 14
    again, clock = _budget_run(cfg, ckpt_path=f"{cfg.run_dir}/checkpoints/last.ckpt")
    assert again.global_step == 14 and clock.now == 0  # no epoch trained, none validated


class _LR(pl.Callback):
    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_train_batch_start(self, trainer, *args) -> None:
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])


def test_a_resume_with_more_epochs_stretches_the_lr_schedule(train_cfg, caplog):
    """Without a budget the schedule ends where max_epochs ends the run; the checkpoint's end would leave the
    added epochs at the last LR (0 for poly)."""
    cfg = train_cfg("trainer.max_epochs=1", "scheduler=poly", "scheduler.warmup_steps=0", "logger=none")
    dm = instantiate(cfg.data, _convert_="all")
    build_trainer(cfg).fit(build_module(cfg, dm), datamodule=dm)
    cfg.trainer.max_epochs = 3
    trainer, lr = build_trainer(cfg), _LR()
    trainer.callbacks.append(lr)
    with caplog.at_level("WARNING"):
        trainer.fit(build_module(cfg, dm), datamodule=dm, ckpt_path=f"{cfg.run_dir}/checkpoints/last.ckpt")
    assert "ends at step 2, trainer.max_epochs/max_steps now end the run at step 6" in caplog.text
    base = cfg.optimizer.lr
    assert lr.lrs == pytest.approx([base * (1 - t / 6) ** 0.9 for t in range(2, 6)])
