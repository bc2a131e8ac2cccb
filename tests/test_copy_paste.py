"""Copy-paste within a batch: the pure function, and the callback that applies it before each training step."""

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from seglight.data.mixing import paste_classes
from seglight.training.callbacks import CopyPaste
from seglight.training.fit import build_module, build_trainer, train


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


def test_sources_are_drawn_among_the_samples_that_hold_the_classes():
    # 8 samples, only 2 and 5 hold class 1: every paste comes from one of them, and with p=0.3 about 30 % of all
    # samples receive (a sample that does not hold it receives as often as one that does)
    image = torch.zeros(8, 1, 2, 2)
    mask = torch.zeros(8, 2, 2, dtype=torch.long)
    mask[[2, 5], 0, 0] = 1
    g = torch.Generator().manual_seed(0)
    sources = torch.stack([paste_classes(image, mask, [1], 0.3, g)[2] for _ in range(400)])  # (400,8)
    assert set(sources[sources >= 0].tolist()) == {2, 5}
    assert (sources[:, 2] != 2).all() and (sources[:, 5] != 5).all()
    share = (sources >= 0).float().mean(0)
    assert ((share > 0.24) & (share < 0.36)).all(), share
    assert (paste_classes(image, mask, [1], 0.0, g)[2] < 0).all()
    assert (paste_classes(image[:1], mask[:1], [1], 1.0, g)[2] < 0).all()  # a batch of one has no other sample
    mask[5] = 0  # one holder left: it has no source of its own, every other sample takes from it
    source = paste_classes(image, mask, [1], 1.0, g)[2]
    assert source[2] == -1 and (source[torch.arange(8) != 2] == 2).all()


def test_a_chain_of_pastes_takes_from_the_batch_as_it_came():
    # 0 <- 1 <- 2 <- 0 with overlapping regions: each receives its source's original pixels, not pasted ones
    image = torch.arange(3, dtype=torch.float32).view(3, 1, 1, 1).expand(3, 1, 2, 2).clone()
    mask = torch.zeros(3, 2, 2, dtype=torch.long)
    mask[:, 0, 0] = torch.tensor([1, 2, 3])
    for seed in range(200):
        out_image, out_mask, source = paste_classes(image, mask, [1, 2, 3], 1.0, torch.Generator().manual_seed(seed))
        if source.tolist() == [1, 2, 0]:
            break
    else:
        raise AssertionError("the draws never made the chain 0 <- 1 <- 2 <- 0")
    assert out_mask[:, 0, 0].tolist() == [2, 3, 1]
    assert out_image[:, 0, 0, 0].tolist() == [1.0, 2.0, 0.0]
    assert (out_mask[:, 1] == 0).all() and torch.equal(out_image[:, :, 1], image[:, :, 1])


def test_the_callback_draws_differ_by_epoch_batch_and_rank_and_repeat():
    paste = CopyPaste(p=0.5, classes="circle", seed=3)
    assert paste.class_names == ["circle"]

    def draws(*key: int) -> list[float]:
        return torch.rand(8, generator=paste.draws(*key)).tolist()

    keys = [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1)]
    assert len({tuple(draws(*k)) for k in keys}) == len(keys)
    assert draws(2, 5, 0) == draws(2, 5, 0) == torch.rand(8, generator=CopyPaste(0.5, "x", 3).draws(2, 5, 0)).tolist()
    assert draws(2, 5, 0) != torch.rand(8, generator=CopyPaste(0.5, "x", 4).draws(2, 5, 0)).tolist()


def test_bad_settings_are_refused(train_cfg):
    with pytest.raises(ValueError, match="copy_paste.p=1.5"):
        CopyPaste(p=1.5, classes=["circle"])
    with pytest.raises(ValueError, match="needs callbacks.copy_paste.classes"):
        CopyPaste(p=0.5)
    cfg = train_cfg("trainer.max_epochs=1", "callbacks.copy_paste.p=0.5", "callbacks.copy_paste.classes=[disc]")
    with pytest.raises(ValueError, match="callbacks.copy_paste.classes: no class 'disc'; the classes are"):
        train(cfg)
    assert not (Path(cfg.run_dir) / "config.yaml").exists()  # refused before the run dir was written


def _datamodule(cfg):
    return instantiate(cfg.data, _convert_="all")


def _steps_seen(cfg) -> list[tuple[dict, dict]]:
    """Fit ``cfg``; (batch as loaded, batch the training step received) for every training batch."""
    dm = _datamodule(cfg)
    module = build_module(cfg, dm)
    loaded: list[dict] = []
    stepped: list[tuple[dict, dict]] = []
    after_transfer, training_step = module.on_after_batch_transfer, module.training_step

    def record_loaded(batch, dataloader_idx):  # runs before the callbacks' on_train_batch_start
        batch = after_transfer(batch, dataloader_idx)
        if module.trainer.training:
            loaded.append({k: v.clone() for k, v in batch.items()})
        return batch

    def record_step(batch, batch_idx):
        stepped.append((loaded[-1], {k: v.clone() for k, v in batch.items()}))
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
        differ = before["mask"] != after["mask"]
        assert (after["mask"][differ] == circle).all()  # only circle pixels came in
        kept = (after["mask"] != circle)[:, None].expand_as(before["image"])  # pasted pixels are all circle
        assert torch.equal(after["image"][kept], before["image"][kept])
        # the image changed with the labels: each changed pixel now holds another image's values
        assert (after["image"] != before["image"]).any(1)[differ].float().mean() > 0.9
        changed += int(differ.any())
    assert changed >= len(steps) // 2  # with p=1 nearly every batch of 4 shapes images receives a circle
    assert all(torch.equal(b["mask"], a["mask"]) for b, a in _steps_seen(train_cfg(*run)))  # off by default
