"""DataLoader pieces: worker and per-sample seeding, the val/test collate, the worker count."""

from __future__ import annotations

import os
import random
from typing import Any, Iterator, Sized

import numpy as np
import torch
from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import Dataset, DistributedSampler, RandomSampler, Sampler, default_collate


def seed_worker(worker_id: int, rank: int = 0) -> None:
    """DataLoader worker init: seed Python's and NumPy's global generators per worker and per DDP rank, for
    anything that draws from them. The augmentations draw from their own generator, seeded for each sample by
    the dataset (``EpochDraws``). torch.initial_seed() differs per worker and is reproducible after
    seed_everything; under DDP every rank draws the same one, so the process rank is mixed in too.
    """
    seed = int(np.random.SeedSequence([torch.initial_seed() % 2**32, rank]).generate_state(1)[0])
    random.seed(seed)
    np.random.seed(seed)


def seed_from(*key: int) -> int:
    """A 32-bit seed drawn from the integers of ``key`` (``np.random.SeedSequence``): keys that differ anywhere give
    unrelated seeds."""
    return int(np.random.SeedSequence(list(key)).generate_state(1)[0])


class EpochDraws:
    """What a training epoch draws, from (seed, epoch) alone: the order (``train_sampler``) and each sample's
    augmentation seed (``self(index)``, called in the DataLoader workers).

    Seeded so, a crop does not depend on the worker count, on the worker the sample lands on, or on a resume: a
    resumed run draws in each epoch what an uninterrupted run would have drawn. The sampler's ``set_epoch``, which
    Lightning calls as each epoch starts, sets the epoch here; it sits in shared memory, so it reaches workers
    already running (``persistent_workers``). A resume sets it before fitting: Lightning starts the first epoch's
    iterator, and the workers prefetch, before it restores the epoch.
    """

    # tags: the seeds of different draws never coincide (GLOBAL: EpochSeeds, PASTE: the CopyPaste callback)
    SAMPLE, ORDER, GLOBAL, PASTE = 1, 2, 3, 4

    def __init__(self, seed: int) -> None:
        self.seed = int(seed) % 2**64
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()

    @property
    def epoch(self) -> int:
        return int(self._epoch[0])

    def set_epoch(self, epoch: int) -> None:
        self._epoch[0] = int(epoch)

    def order_seed(self) -> int:
        return seed_from(self.seed, self.ORDER, self.epoch)

    def __call__(self, index: int) -> int:
        return seed_from(self.seed, self.SAMPLE, self.epoch, int(index))


class EpochOrder(RandomSampler):
    """The training order: a permutation drawn from (seed, epoch) when the epoch's first batch is fetched."""

    def __init__(self, data_source: Sized, draws: EpochDraws) -> None:
        super().__init__(data_source)
        self.draws = draws

    def set_epoch(self, epoch: int) -> None:
        self.draws.set_epoch(epoch)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.draws.order_seed())
        yield from torch.randperm(len(self.data_source), generator=generator).tolist()


class EpochShard(DistributedSampler):
    """``EpochOrder`` under DDP: every rank draws the same permutation from (seed, epoch) and takes its share (the
    set padded to a multiple of the ranks, as DistributedSampler does). Lightning keeps a DistributedSampler as
    it is; its own one takes the epoch only after a resumed run's first iterator has started."""

    def __init__(self, dataset: Dataset, draws: EpochDraws, **kwargs: Any) -> None:
        super().__init__(dataset, shuffle=True, **kwargs)  # kwargs: num_replicas, rank (default: the process group's)
        self.draws = draws

    def set_epoch(self, epoch: int) -> None:
        self.draws.set_epoch(epoch)

    def __iter__(self) -> Iterator[int]:
        self.seed, self.epoch = self.draws.order_seed() % 2**62, 0
        return super().__iter__()


def train_sampler(dataset: Dataset, draws: EpochDraws) -> Sampler:
    """The training order from ``draws``: ``EpochShard`` when DDP is running, else ``EpochOrder``."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return EpochShard(dataset, draws)
    return EpochOrder(dataset, draws)  # type: ignore[arg-type]


def eval_sampler(dataset: Dataset) -> Sampler | None:
    """Val/test order: as stored; under DDP each sample on exactly one rank (the default DistributedSampler pads
    uneven sets by repeating samples, which would count them twice in val/test metrics)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return UnrepeatedDistributedSampler(dataset, shuffle=False)
    return None


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
