"""CopyPaste: the pixels of chosen classes pasted between the images of each training batch."""

from __future__ import annotations

import logging
from typing import Any, Sequence

import pytorch_lightning as pl
import torch

from seglight.data.loaders import EpochDraws, seed_from
from seglight.data.mixing import paste_classes

log = logging.getLogger(__name__)


class CopyPaste(pl.Callback):
    """With probability ``p`` each training sample receives, from another sample of its batch that holds some, the
    pixels of the classes named in ``classes`` (``seglight.data.mixing.paste_classes``), before the step sees the
    batch; the training metrics then count the pasted labels too. The draws come from (seed, epoch, batch index,
    rank), so a resumed run pastes what an uninterrupted one would have. ``p=None`` (or 0) turns it off, the
    default config's way of offering it.
    """

    def __init__(self, p: float | None = None, classes: str | Sequence[str] = (), seed: int = 0) -> None:
        if p is not None and not 0.0 <= p <= 1.0:
            raise ValueError(f"callbacks.copy_paste.p={p}: give a probability in [0, 1], or null for off")
        self.class_names = [classes] if isinstance(classes, str) else list(classes)
        if p and not self.class_names:
            raise ValueError(f"callbacks.copy_paste.p={p} needs callbacks.copy_paste.classes (class names)")
        if self.class_names and not p:
            log.warning("callbacks.copy_paste.classes is set but p is %s: no copy-paste", p)
        self.p = p or 0.0
        self.seed = int(seed) % 2**64
        self.classes: list[int] = []

    def bind(self, module: pl.LightningModule) -> None:
        """The class indices of ``classes`` in ``module``'s palette; a ValueError naming the classes otherwise."""
        if self.p:
            option = "callbacks.copy_paste.classes"
            self.classes = [module.palette.class_index(name, option) for name in self.class_names]  # type: ignore[operator,union-attr]

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.bind(pl_module)

    def draws(self, epoch: int, batch_idx: int, rank: int) -> torch.Generator:
        """The generator of one batch's draws."""
        return torch.Generator().manual_seed(seed_from(self.seed, EpochDraws.PASTE, epoch, batch_idx, rank))

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: dict[str, Any], batch_idx: int
    ) -> None:
        if not self.p:
            return
        generator = self.draws(trainer.current_epoch, batch_idx, trainer.global_rank)
        batch["image"], batch["mask"], _ = paste_classes(batch["image"], batch["mask"], self.classes, self.p, generator)
