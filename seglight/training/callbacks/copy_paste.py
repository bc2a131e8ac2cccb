"""CopyPaste: the pixels of chosen classes pasted between the images of each training batch."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pytorch_lightning as pl
import torch

from seglight.data.mixing import paste_classes


class CopyPaste(pl.Callback):
    """With probability ``p`` each training sample receives, from another sample of its batch, the pixels of the
    classes named in ``classes`` (``seglight.data.mixing.paste_classes``), before the step sees the batch. The
    draws come from (seed, epoch, batch index, rank), so a resumed run pastes what an uninterrupted one would have.
    ``p=None`` (or 0) turns it off, the default config's way of offering it.
    """

    PASTE = 4  # the seeds' tag, beside EpochDraws' SAMPLE, ORDER and GLOBAL

    def __init__(self, p: float | None = None, classes: Sequence[str] = (), seed: int = 0) -> None:
        if p is not None and not 0.0 <= p <= 1.0:
            raise ValueError(f"callbacks.copy_paste.p={p}: give a probability in [0, 1], or null for off")
        if p and not classes:
            raise ValueError(f"callbacks.copy_paste.p={p} needs callbacks.copy_paste.classes (class names)")
        self.p = p or 0.0
        self.class_names = list(classes)
        self.seed = int(seed) % 2**64
        self.classes: list[int] = []

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if not self.p:
            return
        names: list[str] = list(pl_module.class_names)  # type: ignore[arg-type]
        unknown = [c for c in self.class_names if c not in names]
        if unknown:
            raise ValueError(f"callbacks.copy_paste.classes: {unknown} are not among the classes {names}")
        self.classes = [names.index(c) for c in self.class_names]

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: dict[str, Any], batch_idx: int
    ) -> None:
        if not self.p:
            return
        key = [self.seed, self.PASTE, trainer.current_epoch, batch_idx, trainer.global_rank]
        generator = torch.Generator().manual_seed(int(np.random.SeedSequence(key).generate_state(1)[0]))
        batch["image"], batch["mask"], _ = paste_classes(batch["image"], batch["mask"], self.classes, self.p, generator)
