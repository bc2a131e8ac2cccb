"""Copy-paste within a batch: the pure function, and the callback that applies it before each training step."""

import pytest
import torch

from seglight.data.mixing import paste_classes
from seglight.training.callbacks import CopyPaste
from seglight.training.fit import build_module, build_trainer


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    """3 images 1x4x4 whose value is their index; masks: sample 0 all class 0 with class 2 in its top row,
    sample 1 all class 1 with class 3 at (3,3), sample 2 all class 1 (none of the classes pasted below)."""
    image = torch.arange(3, dtype=torch.float32).view(3, 1, 1, 1).expand(3, 1, 4, 4).clone()
    mask = torch.zeros(3, 4, 4, dtype=torch.long)
    mask[0, 0] = 2
    mask[1] = 1
    mask[1, 3, 3] = 3
    mask[2] = 1
    return image, mask


def test_pastes_only_the_chosen_classes_from_another_sample():
    image, mask = _batch()
    before = image.clone(), mask.clone()
    new_image, new_mask, source = paste_classes(image, mask, [2, 3], p=1.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(image, before[0]) and torch.equal(mask, before[1])  # the inputs are left as they were
    for i in range(3):
        j = int(source[i])
        assert j != i
        if j < 0:  # its source held none of the classes: unchanged
            assert torch.equal(new_image[i], image[i]) and torch.equal(new_mask[i], mask[i])
            continue
        region = (mask[j] == 2) | (mask[j] == 3)
        assert region.any()
        assert torch.equal(new_mask[i][region], mask[j][region])
        assert torch.equal(new_image[i][:, region], image[j][:, region])
        assert torch.equal(new_mask[i][~region], mask[i][~region])
        assert torch.equal(new_image[i][:, ~region], image[i][:, ~region])
    # sample 2 holds neither class: whoever drew it as the source received nothing
    assert all(int(s) != 2 for s in source)


def test_every_source_is_drawn_and_the_draws_repeat_with_the_seed():
    image, mask = _batch()
    seen = set()
    for seed in range(40):
        _, out, source = paste_classes(image, mask, [2, 3], 1.0, torch.Generator().manual_seed(seed))
        _, again, source_again = paste_classes(image, mask, [2, 3], 1.0, torch.Generator().manual_seed(seed))
        assert torch.equal(out, again) and torch.equal(source, source_again)
        seen |= {(i, int(s)) for i, s in enumerate(source) if s >= 0}
    assert seen == {(0, 1), (1, 0), (2, 0), (2, 1)}


def test_probability_sets_the_share_of_samples_that_receive():
    image = torch.zeros(64, 1, 2, 2)
    mask = torch.ones(64, 2, 2, dtype=torch.long)  # every sample holds class 1: every drawn paste lands
    g = torch.Generator().manual_seed(0)
    received = torch.cat([paste_classes(image, mask, [1], 0.3, g)[2] >= 0 for _ in range(50)])
    assert 0.25 < received.float().mean() < 0.35
    assert (paste_classes(image, mask, [1], 0.0, g)[2] < 0).all()
    assert (paste_classes(image[:1], mask[:1], [1], 1.0, g)[2] < 0).all()  # a batch of one has no other sample


def test_bad_settings_are_refused(train_cfg):
    with pytest.raises(ValueError, match="copy_paste.p=1.5"):
        CopyPaste(p=1.5, classes=["circle"])
    with pytest.raises(ValueError, match="needs callbacks.copy_paste.classes"):
        CopyPaste(p=0.5)
    cfg = train_cfg("trainer.max_epochs=1", "callbacks.copy_paste.p=0.5", "callbacks.copy_paste.classes=[disc]")
    with pytest.raises(ValueError, match=r"\['disc'\] are not among the classes"):
        build_trainer(cfg).fit(build_module(cfg, _datamodule(cfg)), datamodule=_datamodule(cfg))


def _datamodule(cfg):
    from hydra.utils import instantiate

    return instantiate(cfg.data, _convert_="all")


def _steps_seen(cfg) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Fit ``cfg``; (mask as loaded, mask the training step received) for every training batch."""
    dm = _datamodule(cfg)
    module = build_module(cfg, dm)
    loaded: list[torch.Tensor] = []
    stepped: list[tuple[torch.Tensor, torch.Tensor]] = []
    after_transfer, training_step = module.on_after_batch_transfer, module.training_step

    def record_loaded(batch, dataloader_idx):  # runs before the callbacks' on_train_batch_start
        batch = after_transfer(batch, dataloader_idx)
        if module.trainer.training:
            loaded.append(batch["mask"].clone())
        return batch

    def record_step(batch, batch_idx):
        stepped.append((loaded[-1], batch["mask"].clone()))
        return training_step(batch, batch_idx)

    module.on_after_batch_transfer, module.training_step = record_loaded, record_step
    build_trainer(cfg).fit(module, datamodule=dm)
    return stepped


def test_the_training_step_receives_the_pasted_batch(train_cfg):
    run = ("trainer.max_epochs=2", "trainer.limit_val_batches=0", "scheduler.warmup_steps=0", "logger=none")
    steps = _steps_seen(train_cfg(*run, "callbacks.copy_paste.p=1.0", "callbacks.copy_paste.classes=[circle]"))
    circle = 1  # shapes: background, circle, square, triangle
    assert steps
    changed = 0
    for before, after in steps:
        differ = before != after
        assert (after[differ] == circle).all()  # only circle pixels came in
        changed += int(differ.any())
    assert changed >= len(steps) // 2  # with p=1 nearly every batch of 4 shapes images receives a circle
    assert all(torch.equal(b, a) for b, a in _steps_seen(train_cfg(*run)))  # off by default
