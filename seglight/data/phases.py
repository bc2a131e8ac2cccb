"""Training in two phases of image size: early epochs on smaller images (cheaper steps, more of them in a time
budget), the rest at the configured size (``seglight.training.callbacks.ProgressiveResize`` decides when)."""

from __future__ import annotations

import math
import random
from typing import Any

import albumentations as A
import numpy as np
import torch

from seglight.data.loaders import EpochDraws

NEVER = 2**62  # the switch epoch before one is set: every epoch is early


class PhasedTransform:
    """``early`` for the epochs before ``switch_epoch``, ``late`` from it on; the epoch is the one the samples are
    drawn for (``EpochDraws``). The switch epoch sits in shared memory, like the epoch, so setting it reaches
    DataLoader workers already running, and every sample of one epoch (so of one batch) goes through the same
    pipeline. Called like an albumentations pipeline, and seeded like one (``seglight.data.transforms.seeded``).
    """

    def __init__(
        self,
        early: A.BaseCompose,
        late: A.BaseCompose,
        draws: EpochDraws,
        cost: float = 1.0,
    ) -> None:
        self.early, self.late, self.draws = early, late, draws
        self.cost = cost  # a late sample's pixels per early sample's: what a late step costs, roughly
        self._switch = torch.full((1,), NEVER, dtype=torch.int64).share_memory_()

    @property
    def switch_epoch(self) -> int | None:
        """The first epoch of the late phase; None while it is not set."""
        epoch = int(self._switch[0])
        return None if epoch == NEVER else epoch

    def switch_at(self, epoch: int) -> None:
        self._switch[0] = int(epoch)

    def current(self) -> A.BaseCompose:
        return self.early if self.draws.epoch < int(self._switch[0]) else self.late

    def set_random_state(self, rng: np.random.Generator, py_rng: random.Random) -> None:
        self.early.set_random_state(rng, py_rng)
        self.late.set_random_state(rng, py_rng)

    def __call__(self, **data: Any) -> dict[str, Any]:
        return self.current()(**data)


def crop_shape(crop_size: int | tuple[int, int]) -> tuple[int, int]:
    """(h, w) of ``data.crop_size`` (one number: square)."""
    return (crop_size, crop_size) if isinstance(crop_size, int) else (int(crop_size[0]), int(crop_size[1]))


def early_crop(crop_size: int | tuple[int, int], factor: float, divisor: int) -> tuple[int, int]:
    """(h, w) of the early phase's crops: ``crop_size`` times ``factor``, rounded up to a multiple of ``divisor``
    (what the model's input must be a multiple of), at least one ``divisor``."""
    h, w = crop_shape(crop_size)
    return tuple(max(divisor, math.ceil(s * factor / divisor) * divisor) for s in (h, w))  # type: ignore[return-value]


def resize_early(datamodule: Any, factor: float, divisor: int) -> PhasedTransform:
    """Puts a ``PhasedTransform`` on ``datamodule``'s training set (after its ``setup("fit")``, before the training
    DataLoader starts its workers): the early epochs on images scaled by ``factor`` (the random scale range times
    ``factor``) in crops of ``early_crop``, from its ``switch_at`` epoch on the configured pipeline."""
    if not 0 < factor < 1:
        raise ValueError(f"callbacks.progressive_resize.factor={factor}: expected a number in (0, 1)")
    dataset = datamodule.datasets.get("train")
    if dataset is None:
        raise RuntimeError("resize_early needs the training set (call setup('fit') first)")
    late = dataset.transform.late if isinstance(dataset.transform, PhasedTransform) else dataset.transform
    (h, w), (early_h, early_w) = crop_shape(datamodule.crop_size), early_crop(datamodule.crop_size, factor, divisor)
    early = datamodule.train_pipeline((early_h, early_w), factor)
    dataset.transform = PhasedTransform(early, late, datamodule.draws, h * w / (early_h * early_w))
    return dataset.transform
