"""SegDataModule: folders of images and masks -> train/val/test DataLoaders of {"image", "mask"} batches.

Batches: image (B,N,H,W) float normalised with ``mean``/``std`` (N = ``in_channels``: 3 for RGB pictures, any
other count for multispectral files), mask (B,H,W) long with values in [0, num_classes) or ``ignore_index``.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pytorch_lightning as pl
from torch.utils.data import DataLoader

from seglight.data.class_stats import (
    Normalisation,
    cached_channel_stats,
    cached_pixel_counts,
    median_frequency_weights,
)
from seglight.data.dataset import SegmentationDataset
from seglight.data.image_cache import ImageCache, default_folder, open_cache
from seglight.data.loaders import EpochDraws, auto_workers, collate_eval, eval_sampler, seed_worker, train_sampler
from seglight.data.palette import palette_from_options
from seglight.data.splits import SplitFiles
from seglight.data.transforms import (
    eval_transform,
    photometric_steps,
    train_transform,
)

log = logging.getLogger(__name__)


def _under(root: str | None, folder: str | None) -> str | None:
    """``folder`` relative to ``root`` when a root is given (absolute folders stay as they are)."""
    if folder is None:
        return None
    return str(Path(root).expanduser() / folder) if root else str(folder)


class SegDataModule(pl.LightningDataModule):
    """Images and masks in folders, paired by file stem.

    Classes come from ``palette`` (a CSV ``name,r,g,b``; masks are colour masks) or from ``num_classes`` /
    ``class_names`` (masks are index masks). Without ``val_images`` a seeded ``val_fraction`` of the training pairs
    is held out. A split whose folders are missing is skipped with a notice unless it is required
    (``require_test=True`` for test). Relative folders are taken relative to ``root`` when it is given.

    ``in_channels`` other than 3 reads multispectral images (TIFF, .npy; ``seglight.data.io.read_channels``).
    ``mean``/``std`` per channel: a list, ``"auto"`` (measured on the training images, cached beside the masks),
    or None: ImageNet's for RGB, measured for other channel counts. Measured values are in the units of
    ``seglight.data.transforms.pixel_values`` and end up in the checkpoint through the module's hparams.
    """

    def __init__(
        self,
        images: str,
        masks: str,
        val_images: str | None = None,
        val_masks: str | None = None,
        test_images: str | None = None,
        test_masks: str | None = None,
        palette: str | None = None,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        colors: Sequence[Sequence[int]] | None = None,
        ignore_index: int = 255,
        void_values: Sequence[int] = (),
        val_fraction: float = 0.1,
        require_test: bool = False,
        crop_size: int | Sequence[int] = 256,
        scale: Sequence[float] = (0.5, 2.0),
        hflip: float = 0.5,
        color_jitter: float = 0.5,
        photometric: str = "basic",
        focus_crop: float = 0.0,
        focus_classes: Sequence[str] = (),
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        num_workers: int | str = "auto",
        pin_memory: bool = False,
        cache_masks: bool = False,
        cache_images: bool = False,
        mean: Sequence[float] | str | None = None,
        std: Sequence[float] | str | None = None,
        in_channels: int = 3,
        seed: int = 0,
        split_seed: int = 0,
        folds: int = 0,
        fold: int = 0,
        group_pattern: str | None = None,
        purge_frames: int = 0,
        frame_pattern: str | None = None,
        train_on_val: bool = False,
        cache_dir: str | None = None,
        root: str | None = None,
    ) -> None:
        super().__init__()
        self.dirs = {
            "train": (_under(root, images), _under(root, masks)),
            "val": (_under(root, val_images), _under(root, val_masks)),
            "test": (_under(root, test_images), _under(root, test_masks)),
        }
        self.ignore_index = ignore_index
        self.void_values = tuple(int(v) for v in void_values)
        self.palette = palette_from_options(palette, num_classes, class_names, colors, ignore_index)
        self.is_color = palette is not None
        self.splits = SplitFiles(
            self.dirs,
            val_fraction=val_fraction,
            split_seed=split_seed,
            folds=folds,
            fold=fold,
            group_pattern=group_pattern,
            purge_frames=purge_frames,
            frame_pattern=frame_pattern,
            require_test=require_test,
            train_on_val=train_on_val,
        )
        if train_on_val:
            log.warning("data.train_on_val: the val images are trained on; val scores are not held-out figures")
        self.draws = EpochDraws(seed)  # the shuffle and each crop's draws: from (seed, epoch, index)
        self.crop_size: int | tuple[int, int] = (
            crop_size if isinstance(crop_size, int) else (crop_size[0], crop_size[1])
        )
        photometric_steps(photometric, 0.0)  # an unknown name fails here, not in the first worker
        focus = [self.palette.class_index(name, "data.focus_classes") for name in focus_classes or ()]
        if focus_crop > 0 and not focus:
            raise ValueError(f"data.focus_crop={focus_crop} needs data.focus_classes (class names)")
        self.augment: dict[str, Any] = dict(hflip=hflip, color_jitter=color_jitter, photometric=photometric)
        self.augment.update(scale=(float(scale[0]), float(scale[1])), focus_crop=focus_crop, focus_classes=focus)
        if int(in_channels) != 3 and color_jitter > 0:
            log.info("colour augmentation is for RGB pictures: off for %s-channel images", in_channels)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = auto_workers() if num_workers == "auto" else int(num_workers)
        self.pin_memory = pin_memory
        self.cache_masks = cache_masks
        self.cache_images = cache_images
        self._image_cache: ImageCache | None = None
        self.in_channels = int(in_channels)
        self.normalisation = Normalisation(mean, std, self.in_channels, self._measure)
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None
        self.datasets: dict[str, SegmentationDataset] = {}

    # ---- normalisation ---------------------------------------------------------------------
    @property
    def mean(self) -> tuple[float, ...]:
        """Per-channel mean the images are normalised with (``in_channels`` values)."""
        return self.normalisation.mean

    @property
    def std(self) -> tuple[float, ...]:
        """Per-channel standard deviation the images are normalised with."""
        return self.normalisation.std

    def use_normalisation(self, mean: Sequence[float], std: Sequence[float]) -> None:
        """From now on normalise with these values (a resumed run's, whatever the data would measure now)."""
        self.normalisation = Normalisation(list(mean), list(std), self.in_channels, self._measure)
        self.datasets.clear()

    def _measure(self) -> tuple[list[float], list[float]]:
        return cached_channel_stats(self._dataset(self.split_pairs("train"), None), self._cache_folder())

    # ---- classes -------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return self.palette.num_classes

    @property
    def class_names(self) -> list[str]:
        return list(self.palette.names)

    # ---- datasets ------------------------------------------------------------------------
    def _dataset(self, pairs: list[tuple[Path, Path]], transform, seeds=None) -> SegmentationDataset:
        return SegmentationDataset(
            image_dir=None,
            mask_dir=None,
            pairs=pairs,
            num_classes=self.num_classes,
            palette=self.palette if self.is_color else None,
            transform=transform,
            ignore_index=self.ignore_index,
            void_values=self.void_values,
            cache_masks=self.cache_masks,
            channels=self.in_channels,
            image_cache=self._image_cache,
            seeds=seeds,
        )

    def set_epoch(self, epoch: int) -> None:
        """The epoch the training order and crops are drawn for (``EpochDraws``)."""
        self.draws.set_epoch(epoch)

    def has_split(self, split: str) -> bool:
        """Whether the split's folders are configured and exist (see ``SplitFiles.has``)."""
        return self.splits.has(split)

    def split_pairs(self, split: str) -> list[tuple[Path, Path]]:
        """The (image, mask) files of a split (see ``SplitFiles.pairs``)."""
        return self.splits.pairs(split)

    def split_files(self) -> dict[str, list[str]]:
        """{"train": [...], "val": [...], "test": [...]}: each split's image file names, as in splits.json."""
        return self.splits.files()

    def use_recorded_splits(self, files: dict[str, list[str]]) -> None:
        """From now on each split is exactly the image files named in ``files`` (a run's splits.json)."""
        self.splits.recorded = {k: list(v) for k, v in files.items() if v}
        self.normalisation.forget()  # measured on the configured split: measure the recorded one
        self.datasets.clear()

    def _rank(self) -> int:
        """This process's rank under DDP (0 without a trainer)."""
        return int(self.trainer.global_rank) if self.trainer is not None else 0

    def setup(self, stage: str | None = None) -> None:
        if self.cache_images and self._image_cache is None:
            images = [im for split in ("train", "val") for im, _ in self.split_pairs(split)]  # val: maybe held out
            folder = self.cache_dir / "images" if self.cache_dir else default_folder()
            self._image_cache = open_cache(folder, images, self.in_channels)
        if stage in (None, "fit", "validate") and "val" not in self.datasets:
            self.datasets["train"] = self._dataset(self.split_pairs("train"), self.train_pipeline(), self.draws)
            self.datasets["val"] = self._dataset(self.split_pairs("val"), self.eval_transform())
        if stage in (None, "test") and "test" not in self.datasets and self.has_split("test"):
            self.datasets["test"] = self._dataset(self.split_pairs("test"), self.eval_transform())

    def train_pipeline(self, crop_size: tuple[int, int] | None = None, scale_by: float = 1.0):
        """The training augmentation (``train_transform``); with ``crop_size`` other crops, and the random scale
        range times ``scale_by`` (``seglight.data.phases.resize_early``)."""
        augment = dict(self.augment, scale=tuple(s * scale_by for s in self.augment["scale"]))
        return train_transform(
            crop_size or self.crop_size,
            **augment,
            ignore_index=self.ignore_index,
            mean=self.mean,
            std=self.std,
            channels=self.in_channels,
        )

    def raw_dataset(self, split: str) -> SegmentationDataset:
        """The split's pairs without transforms (``read_pair`` gives the image and mask as stored)."""
        return self._dataset(self.split_pairs(split), None)

    def eval_transform(self):
        return eval_transform(self.ignore_index, self.mean, self.std)

    def _loader(self, split: str, train: bool) -> DataLoader:
        if split not in self.datasets:
            raise RuntimeError(f"no {split} data (call setup first, or the split is missing)")
        dataset = self.datasets[split]
        sampler = train_sampler(dataset, self.draws) if train else eval_sampler(dataset)
        return DataLoader(
            dataset,
            batch_size=self.batch_size if train else self.eval_batch_size,
            sampler=sampler,
            drop_last=train and len(dataset) > self.batch_size,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            collate_fn=None if train else collate_eval,
            worker_init_fn=partial(seed_worker, rank=self._rank()),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)

    # ---- class statistics ----------------------------------------------------------------
    def pixel_counts(self) -> np.ndarray:
        """(C,) int64 pixel count per class over the training masks (void excluded), cached beside the masks
        (or in ``cache_dir``) under a key of everything that defines the counts (see ``class_stats``)."""
        pairs = self.split_pairs("train")
        classes = {
            "names": self.palette.names,
            "colors": self.palette.colors,
            "void": self.palette.void_colors,
            "color_masks": self.is_color,
            "ignore_index": self.ignore_index,
            "void_values": self.void_values,
        }
        return cached_pixel_counts(self._dataset(pairs, None), classes, self._cache_folder())

    def _cache_folder(self) -> Path:
        """Where statistics and decoded images are cached: ``cache_dir``, else beside the training masks."""
        return self.cache_dir or Path(str(self.dirs["train"][1])).parent / ".seglight_cache"

    def class_weights(self, power: float = 1.0) -> list[float]:
        """Median-frequency-balanced weights of the training masks (``median_frequency_weights``)."""
        return median_frequency_weights(self.pixel_counts(), power)
