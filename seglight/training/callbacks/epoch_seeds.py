"""EpochSeeds: the global generators seeded from (seed, epoch), so a resumed run continues as if uninterrupted."""

from __future__ import annotations

import random

import numpy as np
import pytorch_lightning as pl
import torch

from seglight.data.loaders import EpochDraws


class EpochSeeds(pl.Callback):
    """Seeds the global generators (dropout, drop-path) from (seed, epoch) at each training epoch's first batch;
    the datamodule draws the order and the crops from (seed, epoch) itself (``seglight.data.loaders.EpochDraws``).

    Without it a resumed run restarted every generator from ``seed``: Lightning restores the weights and the
    optimizer, not the random state. Seeded at the first batch, not as the epoch starts: creating the epoch's
    DataLoader iterator draws from them, before the start in a resumed run's first epoch and after it in others.
    """

    def __init__(self, seed: int) -> None:
        self.seed = int(seed) % 2**64

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        if batch_idx != 0:
            return
        state = np.random.SeedSequence([self.seed, EpochDraws.GLOBAL, trainer.current_epoch]).generate_state(2)
        torch.manual_seed(int(state[0]))  # every device's generator
        np.random.seed(int(state[1]))
        random.seed(int(state[1]))
