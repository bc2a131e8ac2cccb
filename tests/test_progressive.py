"""ProgressiveResize: early epochs on smaller images, then the configured size; the switch by epochs or by budget."""

from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
from hydra.utils import instantiate

from seglight.data.phases import PhasedTransform, early_crop
from seglight.training.callbacks import ProgressiveResize, TimeBudget
from seglight.training.fit import build_module, build_trainer
from tests.test_time_budget import FakeTime

# shapes data: 64x64 crops; factor 0.5 -> 32x32 crops, the smallest the model takes
RUN = ("trainer.check_val_every_n_epoch=3", "scheduler=poly", "scheduler.warmup_steps=0", "logger=none")


class Sizes(pl.Callback):
    """(epoch, crop height, crop width, budget seconds used before the epoch) of every training batch."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, int, int]] = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self.seen.append((trainer.current_epoch, *batch["image"].shape[-2:]))

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


def _fit(cfg, *callbacks: pl.Callback) -> tuple[pl.Trainer, Sizes]:
    dm = instantiate(cfg.data, _convert_="all")
    module = build_module(cfg, dm)
    sizes = Sizes()
    trainer = build_trainer(cfg)
    trainer.callbacks[:0] = list(callbacks)
    trainer.callbacks.append(sizes)
    trainer.fit(module, datamodule=dm)
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
    seen = sizes.by_epoch()
    assert all(seen[e] == {(32, 32)} for e in range(4))
    assert all(seen[e] == {(64, 64)} for e in range(4, trainer.current_epoch))
    assert trainer.current_epoch > 5
    # the budget's timings restarted at the switch: only the full-size epochs are left in them
    assert len(budget.epoch_s) == trainer.current_epoch - 4


def test_a_resumed_run_keeps_its_switch_epoch(train_cfg):
    cfg = train_cfg(*RUN)
    dm = instantiate(cfg.data, _convert_="all")
    dm.setup("fit")
    callback = ProgressiveResize(0.5, until=0.5)
    callback.load_state_dict({"switch_epoch": 3})
    trainer = SimpleNamespace(datamodule=dm, callbacks=[], max_epochs=10)
    module = SimpleNamespace(divisor=32)
    callback.setup(trainer, module, "fit")  # type: ignore[arg-type]
    callback.on_fit_start(trainer, module)  # type: ignore[arg-type]
    phases = dm.datasets["train"].transform
    assert isinstance(phases, PhasedTransform) and phases.switch_epoch == 3  # not round(0.5 * 10)
    dm.set_epoch(2)
    assert dm.datasets["train"][0]["image"].shape[-2:] == (32, 32)
    dm.set_epoch(3)
    assert dm.datasets["train"][0]["image"].shape[-2:] == (64, 64)


def test_factor_outside_0_1_is_refused(train_cfg):
    dm = instantiate(train_cfg(*RUN).data, _convert_="all")
    dm.setup("fit")
    with pytest.raises(ValueError, match="progressive_resize.factor=1.5"):
        dm.resize_early(1.5, 32)
