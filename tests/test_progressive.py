"""ProgressiveResize: early epochs on smaller images, then the configured size; the switch by epochs or by budget."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
from hydra.utils import instantiate

from seglight.data.phases import PhasedTransform, early_crop, resize_early
from seglight.model.checkpoint import load_checkpoint
from seglight.training.callbacks import ProgressiveResize, TimeBudget
from seglight.training.fit import build_module, build_trainer, epoch_to_resume
from tests.test_time_budget import FakeTime

# shapes data: 64x64 crops; factor 0.5 -> 32x32 crops, the smallest the model takes
RUN = ("trainer.check_val_every_n_epoch=3", "scheduler=poly", "scheduler.warmup_steps=0", "logger=none")


class Sizes(pl.Callback):
    """(epoch, crop height, crop width) of every training batch; the planned epochs after each epoch."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, int, int]] = []
        self.planned: list[int] = []  # max_epochs after each epoch (the time budget's plan)

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self.seen.append((trainer.current_epoch, *batch["image"].shape[-2:]))

    def on_train_epoch_end(self, trainer, module) -> None:
        self.planned.append(trainer.fit_loop.max_epochs)

    def by_epoch(self) -> dict[int, set[tuple[int, int]]]:
        out: dict[int, set[tuple[int, int]]] = {}
        for epoch, h, w in self.seen:
            out.setdefault(epoch, set()).add((h, w))
        return out


def test_early_crop_rounds_up_to_the_divisor():
    assert early_crop((224, 256), 0.5, 32) == (128, 128)
    assert early_crop(64, 0.5, 32) == (32, 32)
    assert early_crop((360, 480), 0.6, 32) == (224, 288)
    assert early_crop((40, 40), 0.1, 32) == (32, 32)


def _fit(cfg, *callbacks: pl.Callback, ckpt_path: str | None = None) -> tuple[pl.Trainer, Sizes]:
    dm = instantiate(cfg.data, _convert_="all")
    module = build_module(cfg, dm)
    sizes = Sizes()
    trainer = build_trainer(cfg)
    trainer.callbacks[:0] = list(callbacks)
    trainer.callbacks.append(sizes)
    if ckpt_path:  # as seglight.training.fit.train resumes: the epoch set before the workers start
        dm.set_epoch(epoch_to_resume(load_checkpoint(ckpt_path)))
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    return trainer, sizes


def test_switches_at_the_fraction_of_max_epochs(train_cfg):
    cfg = train_cfg(*RUN, "trainer.max_epochs=4", "callbacks.progressive_resize.factor=0.5")
    trainer, sizes = _fit(cfg)
    callback = next(c for c in trainer.callbacks if isinstance(c, ProgressiveResize))
    assert callback.switch_epoch == 2
    assert sizes.by_epoch() == {0: {(32, 32)}, 1: {(32, 32)}, 2: {(64, 64)}, 3: {(64, 64)}}


def test_off_by_default(train_cfg):
    _, sizes = _fit(train_cfg(*RUN, "trainer.max_epochs=2"))
    assert {hw for epoch in sizes.by_epoch().values() for hw in epoch} == {(64, 64)}


def test_switches_past_the_fraction_of_the_budget_in_running_workers(train_cfg):
    # FakeTime: 2 steps per epoch at 10 s, a validation after every 3rd epoch 5 s; 170 s of budget, switch past 85 s:
    # epochs end at 20, 40, 65, 85 -> the 4th epoch (3) ends at 85, so epoch 4 is the first at full size.
    # One DataLoader worker, persistent: the switch must reach it while it runs.
    cfg = train_cfg(*RUN, "trainer.max_epochs=50", "data.num_workers=1", "callbacks.progressive_resize.factor=0.5")
    clock = FakeTime()
    budget = TimeBudget("00:00:02:50", clock=clock)
    cfg.callbacks.time_budget = None
    trainer, sizes = _fit(cfg, clock, budget)
    callback = next(c for c in trainer.callbacks if isinstance(c, ProgressiveResize))
    assert callback.switch_epoch == 4
    # the plan after epoch 2 (65 s, the first validation timed) counts the full-size epochs at 4x the cost (64x64
    # against 32x32 crops): epoch 3 reaches 85 s, then 85 s hold one 80-s epoch and its validation -> 5 epochs in
    # all (7 if every epoch cost 20 s)
    assert sizes.planned[2] == 5
    seen = sizes.by_epoch()
    assert all(seen[e] == {(32, 32)} for e in range(4))
    assert all(seen[e] == {(64, 64)} for e in range(4, trainer.current_epoch))
    assert trainer.current_epoch > 5
    # the budget's timings restarted at the switch: it plans from the full-size epochs only
    assert budget.state_dict()["since"] == 4 and len(budget.epoch_s) == trainer.current_epoch
    assert budget.late_at_s is None


def test_switches_at_the_fraction_of_the_planned_epochs_when_the_cap_ends_the_run(train_cfg):
    # a budget far above what max_epochs=4 takes: the cap ends the run, so the switch comes at half of it
    cfg = train_cfg(*RUN, "trainer.max_epochs=4", "callbacks.progressive_resize.factor=0.5")
    cfg.callbacks.time_budget = None
    clock = FakeTime()
    trainer, sizes = _fit(cfg, clock, TimeBudget("00:01:00:00", clock=clock))
    assert sizes.by_epoch() == {0: {(32, 32)}, 1: {(32, 32)}, 2: {(64, 64)}, 3: {(64, 64)}}


def test_budget_plans_the_costlier_epochs_ahead():
    budget = TimeBudget(100 / 60)  # 100 s
    budget._val_every, budget.val_s = 1000, 0.0  # only the last epoch validated, in no time
    assert budget._epochs_left(10.0, 0) == 10
    budget.expect_costlier_epochs(50.0, 2.0)  # 5 epochs of 10 s reach 50 s, then 50 s hold 2 of 20 s
    assert budget._epochs_left(10.0, 0) == 7
    budget.elapsed_s = 60.0  # past the switch: every epoch left costs 20 s
    assert budget._epochs_left(10.0, 6) == 2
    # a validation of 5 s after every epoch: cheap epochs end at 15, 30, 45, 60 s -> 4 reach 50 s (5 if the
    # validations were left out: 50 s / 10 s), then 40 s hold one 20-s epoch and its validation
    budget.elapsed_s, budget._val_every, budget.val_s = 0.0, 1, 5.0
    assert budget._epochs_left(10.0, 0) == 4 + 1
    budget.expect_costlier_epochs(95.0, 2.0)  # no time left after the switch: the run ends on cheap epochs,
    assert budget._epochs_left(10.0, 0) == 6  # 6 of 15 s with their validations (the 7th would end at 105 s)
    budget.epoch_s = [10.0, 10.0]
    budget.restart_timings()  # right after the switch (a resume from there): the last epoch times the cost
    assert budget._epoch_estimate() == 20.0
    budget.epoch_s.append(18.0)
    assert budget._epoch_estimate() == 18.0


class StopAfter(pl.Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_end(self, trainer, module) -> None:
        if trainer.current_epoch == self.epoch:
            trainer.should_stop = True


def test_a_resume_keeps_its_switch_before_the_workers_prefetch(train_cfg):
    # first run: 6 epochs planned, switch at 3, stopped after epoch 3. Resumed with 10 epochs: the switch stays at 3
    # (not 5), and the worker, which starts and prefetches before on_fit_start, builds full-size batches from epoch 4
    extra = (*RUN, "data.num_workers=1", "callbacks.progressive_resize.factor=0.5")
    cfg = train_cfg(*extra, "trainer.max_epochs=6")
    trainer, _ = _fit(cfg, StopAfter(3))
    last = str(Path(cfg.run_dir) / "checkpoints" / "last.ckpt")
    cfg = train_cfg(*extra, "trainer.max_epochs=10")
    trainer, sizes = _fit(cfg, ckpt_path=last)
    callback = next(c for c in trainer.callbacks if isinstance(c, ProgressiveResize))
    assert callback.switch_epoch == 3
    assert sizes.by_epoch() == {e: {(64, 64)} for e in range(4, 10)}


def test_a_resumed_run_keeps_its_switch_epoch(train_cfg):
    cfg = train_cfg(*RUN)
    dm = instantiate(cfg.data, _convert_="all")
    dm.setup("fit")
    callback = ProgressiveResize(0.5, until=0.5)
    callback.load_state_dict({"switch_epoch": 3})
    trainer = SimpleNamespace(datamodule=dm, callbacks=[], max_epochs=10)
    module = SimpleNamespace(divisor=32)
    callback.setup(trainer, module, "fit")  # type: ignore[arg-type]
    phases = dm.datasets["train"].transform
    assert isinstance(phases, PhasedTransform) and phases.switch_epoch == 3  # not round(0.5 * 10)
    dm.set_epoch(2)
    assert dm.datasets["train"][0]["image"].shape[-2:] == (32, 32)
    dm.set_epoch(3)
    assert dm.datasets["train"][0]["image"].shape[-2:] == (64, 64)


def test_a_checkpoint_past_the_switch_clears_the_budgets_cost_model(train_cfg):
    cfg = train_cfg(*RUN, "trainer.max_epochs=10")
    dm = instantiate(cfg.data, _convert_="all")
    dm.setup("fit")
    budget, callback = TimeBudget(10), ProgressiveResize(0.5)
    trainer = SimpleNamespace(datamodule=dm, callbacks=[budget, callback], max_epochs=10)
    callback.setup(trainer, SimpleNamespace(divisor=32), "fit")  # type: ignore[arg-type]
    assert budget.late_at_s == 300 and budget.late_cost == 4
    callback.load_state_dict({"switch_epoch": None})  # saved before the switch: still ahead
    assert budget.late_at_s == 300 and callback.switch_epoch is None
    callback.load_state_dict({"switch_epoch": 6})  # saved after it: the budget times the full-size epochs
    assert budget.late_at_s is None and dm.datasets["train"].transform.switch_epoch == 6
    first = ProgressiveResize(0.5)
    with pytest.raises(ValueError, match="must come after callbacks.time_budget"):
        first.setup(SimpleNamespace(datamodule=dm, callbacks=[first, budget]), SimpleNamespace(divisor=32), "fit")  # type: ignore[arg-type]


def test_factor_outside_0_1_is_refused(train_cfg):
    dm = instantiate(train_cfg(*RUN).data, _convert_="all")
    dm.setup("fit")
    with pytest.raises(ValueError, match="progressive_resize.factor=1.5"):
        resize_early(dm, 1.5, 32)
