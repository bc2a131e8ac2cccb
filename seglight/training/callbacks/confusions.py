"""The per-image confusion matrices of a validation, gathered from every process and written by rank 0 (the
data behind the sweep summary's intervals and evaluate-like per-image scores of a training run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from seglight.model.module import SegmentationModule
from seglight.report.confusions import save_confusions


def gather(obj: Any) -> list[Any]:
    """[obj of each process] under torch.distributed (every process gets the list), else [obj]."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


class ImageConfusions(pl.Callback):
    """While ``path`` is set, each validation's per-image confusion matrices (C,C), gathered from every process,
    are written by rank 0 to ``path`` (``save_confusions``), images in the data set's order. Under DDP each image
    is validated on exactly one process (see ``SegDataModule``); its index is that process's sampler's."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.scored: int | None = None  # how many images the last written validation scored (rank 0)

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.path is not None and isinstance(pl_module, SegmentationModule):
            pl_module.image_confusions = []

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        loader = trainer.val_dataloaders  # one DataLoader, not shuffled: its sampler gives the images' order
        if self.path is None or loader is None or not isinstance(pl_module, SegmentationModule):
            return
        confusions, pl_module.image_confusions = pl_module.image_confusions or [], None
        indices = list(loader.sampler)[: len(confusions)]  # limit_val_batches: the first batches only
        parts = gather((indices, [c.numpy() for c in confusions]))
        if not trainer.is_global_zero:
            return
        scored = sorted(((i, c) for part in parts for i, c in zip(*part)), key=lambda t: t[0])
        images = [str(loader.dataset.pairs[i][0]) for i, _ in scored]
        save_confusions(self.path, images, [c for _, c in scored], pl_module.class_names)
        self.scored = len(scored)
