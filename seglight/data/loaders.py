"""DataLoader pieces: worker seeding (per worker and per DDP rank), the val/test collate, the worker count."""

from __future__ import annotations

import os
import random

import numpy as np
import torch
from torch.utils.data import default_collate

from seglight.data.transforms import seeded


def seed_worker(worker_id: int, rank: int = 0) -> None:
    """DataLoader worker init: give each worker's augmentation generator its own seed.

    Every worker starts with a copy of the same albumentations generator, so without this the
    workers would apply identical augmentation sequences. torch.initial_seed() differs per worker
    and is reproducible after seed_everything; under DDP every rank draws the same one, so the
    process rank is mixed in too.
    """
    seed = int(np.random.SeedSequence([torch.initial_seed() % 2**32, rank]).generate_state(1)[0])
    random.seed(seed)
    np.random.seed(seed)
    info = torch.utils.data.get_worker_info()
    transform = getattr(info.dataset, "transform", None) if info is not None else None
    if transform is not None and hasattr(transform, "set_random_state"):
        seeded(transform, seed)


def collate_eval(samples: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor | list[torch.Tensor]]:
    """Val/test batch: images of one size stacked (B,3,H,W) / (B,H,W); of different sizes, lists of (3,H,W) /
    (H,W), which the module scores one by one (images keep their own size, as in evaluate)."""
    if len({tuple(s["image"].shape) for s in samples}) == 1:
        return default_collate(samples)
    return {"image": [s["image"] for s in samples], "mask": [s["mask"] for s in samples]}


def auto_workers() -> int:
    """DataLoader workers that leave the training process a core: 1 on 2 cores, up to 6."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(6, cores - 1))
