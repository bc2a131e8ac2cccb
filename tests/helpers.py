"""Tiny data sets written to tmp folders for tests, and a recorder of training state."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from PIL import Image

from seglight.data.palette import Palette
from seglight.training.callbacks import EMA, RAW_KEY

TOY = Palette(["bg", "red", "green"], [(0, 0, 0), (200, 30, 30), (30, 200, 30)])


def toy_index(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """(H,W) uint8 mask of rectangles of classes 1 and 2 on class 0."""
    h, w = size
    mask = np.zeros((h, w), dtype=np.uint8)
    for cls in (1, 2):
        y, x = rng.integers(0, h // 2), rng.integers(0, w // 2)
        mask[y : y + h // 3, x : x + w // 3] = cls
    return mask


def make_pairs(
    root: Path,
    n: int = 4,
    size: tuple[int, int] = (48, 64),
    palette: Palette = TOY,
    color_masks: bool = True,
    seed: int = 0,
) -> tuple[Path, Path]:
    """Writes n image/mask PNG pairs (image = mask painted in palette colours + noise); returns (images, masks)."""
    rng = np.random.default_rng(seed)
    images, masks = root / "images", root / "masks"
    images.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        index = toy_index(rng, size)
        image = np.clip(palette.to_color(index).astype(int) + rng.integers(-10, 10, (*size, 3)), 0, 255)
        Image.fromarray(image.astype(np.uint8)).save(images / f"img_{i:03d}.png")
        mask = palette.to_color(index) if color_masks else index
        Image.fromarray(mask).save(masks / f"img_{i:03d}.png")
    return images, masks


def train_command(run: Path, data_cache: Path, *extra: str) -> list[str]:
    """``python -m seglight.train`` on tiny shapes in ``run``: 6 epochs of 2 steps, then ``extra`` overrides."""
    from conftest import TINY

    return [
        sys.executable,
        "-m",
        "seglight.train",
        *TINY,
        f"data.root={data_cache}",
        f"hydra.run.dir={run}",
        "trainer.max_epochs=6",
        "trainer.limit_train_batches=2",
        *extra,
    ]


class WeightsAtTrainStart(pl.Callback):
    """The module's weights and EMA's average as training starts, on their devices. Append it after the EMA
    callback, so that it runs after EMA's own on_train_start."""

    def __init__(self, ema: EMA) -> None:
        self.ema = ema

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.weights = {k: v.detach().clone() for k, v in module.state_dict().items()}
        self.average = {k: v.detach().clone() for k, v in self.ema.shadow.items()}

    def assert_resumed_from(self, last: dict[str, Any], key: str) -> None:
        """The run started from ``last``'s raw weights (not its average) and went on with its saved average."""
        torch.testing.assert_close(self.weights[key].cpu(), last[RAW_KEY][key], atol=0, rtol=0)
        torch.testing.assert_close(self.average[key].cpu(), last["state_dict"][key], atol=0, rtol=0)


def resume_with_ema(
    cfg: DictConfig, datamodule: pl.LightningDataModule, ckpt: Path
) -> tuple[pl.Trainer, EMA, WeightsAtTrainStart]:
    """Fits ``cfg`` on from ``ckpt`` with a recorder of the start: (trainer, its EMA callback, the recorder)."""
    from seglight.training.fit import build_module, build_trainer

    trainer = build_trainer(cfg)
    ema = next(cb for cb in trainer.callbacks if isinstance(cb, EMA))
    start = WeightsAtTrainStart(ema)
    trainer.callbacks.append(start)
    trainer.fit(build_module(cfg, datamodule), datamodule=datamodule, ckpt_path=ckpt)
    return trainer, ema, start
