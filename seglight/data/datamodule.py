"""SegDataModule: folders of images and masks -> train/val/test DataLoaders of {"image", "mask"} batches.

Batches: image (B,3,H,W) float normalised with ``mean``/``std``, mask (B,H,W) long with values in
[0, num_classes) or ``ignore_index``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
from functools import partial
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, default_collate
from tqdm import tqdm

from seglight.data.dataset import SegmentationDataset
from seglight.data.io import DataError, pair_files
from seglight.data.palette import Palette, default_colors
from seglight.data.synthetic import SHAPES_PALETTE, write_shapes
from seglight.files import atomic_write
from seglight.data.transforms import IMAGENET_MEAN, IMAGENET_STD, eval_transform, train_transform

log = logging.getLogger(__name__)


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
    if hasattr(transform, "set_random_seed"):
        transform.set_random_seed(seed)


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


# data options that decide which files go to which split
SPLIT_KEYS = ("val_fraction", "split_seed", "folds", "fold", "group_pattern")
# data options that change neither the files nor their labels (loading and augmentation)
LOADING_KEYS = ("batch_size", "eval_batch_size", "num_workers", "pin_memory", "cache_masks", "cache_dir", "crop_size",
                "scale", "hflip", "color_jitter", "seed", "mean", "std", "require_test")


def data_differences(recorded: dict[str, Any], current: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Keys whose values differ between two data configs: (those naming the files and labels, the split's)."""
    keys = sorted((set(recorded) | set(current)) - set(LOADING_KEYS))
    differ = [k for k in keys if recorded.get(k) != current.get(k)]
    return [k for k in differ if k not in SPLIT_KEYS], [k for k in differ if k in SPLIT_KEYS]


def file_group(stem: str, pattern: str | None) -> str:
    """The group of a file for cross-validation: the text ``pattern`` (a regex searched in the file stem)
    captures, its groups joined by "_" (e.g. CamVid's sequence and frame block); the stem itself without one."""
    if pattern is None:
        return stem
    match = re.search(pattern, stem)
    if match is None:
        raise DataError(f"data.group_pattern={pattern!r} does not match the file name {stem!r}")
    return "_".join(g for g in match.groups() if g is not None) or match.group(0)


def assign_folds(stems: Sequence[str], folds: int, pattern: str | None = None, seed: int = 0) -> list[int]:
    """The fold (0..folds-1) of each file: whole groups (``file_group``) go to one fold, largest first, each to
    the fold with the fewest files so far (groups of equal size in an order drawn with ``seed``)."""
    groups: dict[str, list[int]] = {}
    for i, stem in enumerate(stems):
        groups.setdefault(file_group(stem, pattern), []).append(i)
    if len(groups) < folds:
        raise DataError(f"{len(groups)} groups ({sorted(groups)[:5]}...) cannot fill data.folds={folds}; "
                        "use fewer folds or a finer data.group_pattern")
    names = sorted(groups)
    order = np.random.default_rng(seed).permutation(len(names))
    ranked = sorted((names[i] for i in order), key=lambda g: -len(groups[g]))  # stable: seeded order among ties
    sizes = [0] * folds
    assignment = [0] * len(stems)
    for g in ranked:
        k = int(np.argmin(sizes))
        sizes[k] += len(groups[g])
        for i in groups[g]:
            assignment[i] = k
    return assignment


class SegDataModule(pl.LightningDataModule):
    """Images and masks in folders, paired by file stem.

    Classes come from ``palette`` (a CSV ``name,r,g,b``; masks are colour masks) or from
    ``num_classes`` / ``class_names`` (masks are index masks). Without ``val_images`` a seeded
    ``val_fraction`` of the training pairs is held out. A split whose folders are missing is
    skipped with a notice unless it is required (``require_test=True`` for test). Relative folders
    are taken relative to ``root`` when it is given.
    """

    def __init__(self, images: str, masks: str, val_images: str | None = None,
                 val_masks: str | None = None, test_images: str | None = None, test_masks: str | None = None,
                 palette: str | None = None, num_classes: int | None = None,
                 class_names: Sequence[str] | None = None, colors: Sequence[Sequence[int]] | None = None,
                 ignore_index: int = 255, void_values: Sequence[int] = (), val_fraction: float = 0.1,
                 require_test: bool = False, crop_size: int | Sequence[int] = 256,
                 scale: Sequence[float] = (0.5, 2.0), hflip: float = 0.5, color_jitter: float = 0.5,
                 batch_size: int = 8, eval_batch_size: int | None = None,
                 num_workers: int | str = "auto", pin_memory: bool = False, cache_masks: bool = False,
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                 seed: int = 0, split_seed: int = 0, folds: int = 0, fold: int = 0, group_pattern: str | None = None,
                 cache_dir: str | None = None, root: str | None = None) -> None:
        super().__init__()
        base = Path(root).expanduser() if root else None
        at = lambda p: None if p is None else str(base / p) if base is not None else str(p)  # noqa: E731
        self.dirs = {"train": (at(images), at(masks)), "val": (at(val_images), at(val_masks)),
                     "test": (at(test_images), at(test_masks))}
        self.ignore_index = ignore_index
        self.void_values = tuple(int(v) for v in void_values)
        self.palette_path = palette
        self.palette = self._build_palette(palette, num_classes, class_names, colors)
        self.is_color = palette is not None
        self.val_fraction, self.require_test, self.seed = val_fraction, require_test, seed
        self.split_seed = split_seed
        if folds > 1 and not 0 <= fold < folds:
            raise ValueError(f"data.fold={fold} is not one of 0..{folds - 1} (data.folds={folds})")
        self.folds, self.fold, self.group_pattern = folds, fold, group_pattern
        self.recorded_splits: dict[str, list[str]] | None = None  # see use_recorded_splits
        self.crop_size = tuple(crop_size) if not isinstance(crop_size, int) else crop_size
        self.scale, self.hflip, self.color_jitter = tuple(scale), hflip, color_jitter
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = auto_workers() if num_workers == "auto" else int(num_workers)
        self.pin_memory, self.cache_masks = pin_memory, cache_masks
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None
        self.datasets: dict[str, torch.utils.data.Dataset] = {}

    # ---- classes -------------------------------------------------------------------------
    def _build_palette(self, path, num_classes, class_names, colors) -> Palette:
        if path is not None:
            pal = Palette.from_csv(path, ignore_index=self.ignore_index)
            if num_classes is not None and num_classes != pal.num_classes:
                raise ValueError(f"data.num_classes={num_classes} disagrees with {path} "
                                 f"({pal.num_classes} classes: {pal.names})")
            return pal
        if num_classes is None and class_names is None:
            raise ValueError("give the classes: data.palette=FILE.csv (colour masks) or data.num_classes=N "
                             "(index masks)")
        n = int(num_classes) if num_classes is not None else len(class_names)  # type: ignore[arg-type]
        names = list(class_names) if class_names is not None else [f"class_{i}" for i in range(n)]
        if len(names) != n:
            raise ValueError(f"data.num_classes={n} but {len(names)} class_names were given: {names}")
        cols = [tuple(c) for c in colors] if colors is not None else default_colors(n)
        return Palette(names, cols[:n], ignore_index=self.ignore_index)

    @property
    def num_classes(self) -> int:
        return self.palette.num_classes

    @property
    def class_names(self) -> list[str]:
        return list(self.palette.names)

    # ---- datasets ------------------------------------------------------------------------
    def _dataset(self, pairs: list[tuple[Path, Path]], transform) -> SegmentationDataset:
        return SegmentationDataset(None, None, self.num_classes, self.palette if self.is_color else None,
                                   transform, self.ignore_index, self.void_values, self.cache_masks, pairs)

    def has_split(self, split: str) -> bool:
        """Whether the split's folders are configured and exist; a missing required split is an error."""
        images, masks = self.dirs[split]
        if images is None or masks is None:
            return False
        present = Path(images).is_dir() and Path(masks).is_dir()
        if not present:
            if split == "train" or (split == "test" and self.require_test):
                raise DataError(f"{split} split not found: {images} / {masks}")
            log.warning("%s split not found (%s, %s): skipped", split, images, masks)
        return present

    def split_pairs(self, split: str) -> list[tuple[Path, Path]]:
        """The (image, mask) files of a split. Without val folders, val is a ``val_fraction`` of the training
        pairs drawn with ``split_seed`` (not the training seed: runs with other seeds hold out the same
        images) and train is the rest. After ``use_recorded_splits`` the recorded files, in their order."""
        if split not in self.dirs:
            raise ValueError(f"unknown split {split!r}; choose train, val or test")
        if self.recorded_splits is not None and split in self.recorded_splits:
            return self._recorded_pairs(split)
        if self.folds > 1 and split in ("train", "val"):
            return self._fold_pairs(split)
        pairs = self._source_pairs(split)
        if split in ("train", "val") and not self.has_split("val"):
            if self.val_fraction <= 0:
                if split == "val":
                    raise ValueError("no val split: give data.val_images/val_masks or data.val_fraction > 0")
                return pairs
            val_idx, train_idx = self._holdout(len(pairs))
            return [pairs[i] for i in (val_idx if split == "val" else train_idx)]
        return pairs

    def _source_pairs(self, split: str) -> list[tuple[Path, Path]]:
        """The pairs a split is drawn from: its own folders, the training folders for a val hold-out, or both
        the train and val folders for cross-validation folds (a file name may then appear once only)."""
        if self.folds > 1 and split in ("train", "val"):
            pool = pair_files(*self.dirs["train"]) + (pair_files(*self.dirs["val"]) if self.has_split("val") else [])
            names = [image.name for image, _ in pool]
            shared = sorted({n for n in names if names.count(n) > 1})
            if shared:
                raise DataError(f"the train and val folders share file names {shared[:5]}: cross-validation needs "
                                "each image once")
            return pool
        if split == "val" and not self.has_split("val"):
            split = "train"
        if split != "train" and not self.has_split(split):
            raise DataError(f"{split} split not found: {self.dirs[split]}")
        return pair_files(*self.dirs[split])

    def _holdout(self, n: int) -> tuple[list[int], list[int]]:
        order = np.random.default_rng(self.split_seed).permutation(n)
        k = max(1, int(round(n * self.val_fraction)))
        return sorted(order[:k].tolist()), sorted(order[k:].tolist())

    def _fold_pairs(self, split: str) -> list[tuple[Path, Path]]:
        """Cross-validation: the train and val folders' pairs, grouped by ``group_pattern``, in ``folds`` folds;
        val is fold ``fold``, train the others."""
        pool = self._source_pairs(split)
        assignment = assign_folds([image.stem for image, _ in pool], self.folds, self.group_pattern, self.split_seed)
        return [p for p, k in zip(pool, assignment) if (k == self.fold) == (split == "val")]

    def split_files(self) -> dict[str, list[str]]:
        """{"train": [...], "val": [...], "test": [...]}: the image file names of each split (empty where the
        split is missing), as written to a run's splits.json."""
        files = {}
        for split in ("train", "val", "test"):
            present = split == "train" or self.has_split(split) or \
                (split == "val" and (self.val_fraction > 0 or self.folds > 1))
            files[split] = [image.name for image, _ in self.split_pairs(split)] if present else []
        return files

    def use_recorded_splits(self, files: dict[str, list[str]]) -> None:
        """From now on each split is exactly the image files named in ``files`` (a run's splits.json), found
        among the pairs that split is drawn from; a named file that is not there is an error."""
        self.recorded_splits = {k: list(v) for k, v in files.items() if v}
        self.datasets.clear()

    def _recorded_pairs(self, split: str) -> list[tuple[Path, Path]]:
        """The recorded image files of ``split``, looked up among the pairs the split is drawn from."""
        pool = {image.name: (image, mask) for image, mask in self._source_pairs(split)}
        wanted = self.recorded_splits[split]  # type: ignore[index]
        missing = [n for n in wanted if n not in pool]
        if missing:
            raise DataError(f"{len(missing)} of the {len(wanted)} recorded {split} images are not in the configured "
                            f"{split} folders {self.dirs[split]}: {missing[:5]}")
        return [pool[n] for n in wanted]

    def _rank(self) -> int:
        """This process's rank under DDP (0 without a trainer)."""
        return int(self.trainer.global_rank) if self.trainer is not None else 0

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit", "validate") and "val" not in self.datasets:
            seed = int(np.random.SeedSequence([self.seed, self._rank()]).generate_state(1)[0])  # per rank
            self.datasets["train"] = self._dataset(self.split_pairs("train"), train_transform(
                self.crop_size, self.scale, self.hflip, self.color_jitter, self.ignore_index, self.mean, self.std,
                seed=seed))
            self.datasets["val"] = self._dataset(self.split_pairs("val"), self.eval_transform())
        if stage in (None, "test") and "test" not in self.datasets and self.has_split("test"):
            self.datasets["test"] = self._dataset(self.split_pairs("test"), self.eval_transform())

    def raw_dataset(self, split: str) -> SegmentationDataset:
        """The split's pairs without transforms (``read_pair`` gives the image and mask as stored)."""
        return self._dataset(self.split_pairs(split), None)

    def eval_transform(self):
        return eval_transform(self.ignore_index, self.mean, self.std)

    def _loader(self, split: str, train: bool) -> DataLoader:
        if split not in self.datasets:
            raise RuntimeError(f"no {split} data (call setup first, or the split is missing)")
        dataset = self.datasets[split]
        sampler = None
        if not train and torch.distributed.is_available() and torch.distributed.is_initialized():
            # each sample on exactly one rank: the default DistributedSampler pads uneven sets by repeating
            # samples, which would count them twice in val/test metrics
            sampler = UnrepeatedDistributedSampler(dataset, shuffle=False)
        return DataLoader(dataset, batch_size=self.batch_size if train else self.eval_batch_size,
                          shuffle=train, sampler=sampler, drop_last=train and len(dataset) > self.batch_size,
                          num_workers=self.num_workers, pin_memory=self.pin_memory,
                          persistent_workers=self.num_workers > 0, collate_fn=None if train else collate_eval,
                          worker_init_fn=partial(seed_worker, rank=self._rank()))

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)

    # ---- class statistics ----------------------------------------------------------------
    def pixel_counts(self) -> np.ndarray:
        """(C,) int64 pixel count per class over the training masks (void excluded), cached on disk.

        The cache is keyed by everything that defines the counts (``_counts_key``): reorder the palette,
        change the void values or touch a mask and the counts are computed anew. It is written atomically,
        so a process reading it while another rank writes it sees the whole file or none."""
        pairs = self.split_pairs("train")
        cache = (self.cache_dir or Path(self.dirs["train"][1]).parent / ".seglight_cache") / \
            f"counts-{self._counts_key(pairs)}.json"
        if cache.exists():
            return np.array(json.loads(cache.read_text()), dtype=np.int64)
        ds = self._dataset(pairs, None)
        counts = np.zeros(self.num_classes, dtype=np.int64)
        for i in tqdm(range(len(ds)), desc="counting class pixels", leave=False):
            m = ds.read_mask(i)
            counts += np.bincount(m[m != self.ignore_index].ravel(), minlength=self.num_classes)[: self.num_classes]
        try:
            atomic_write(cache, lambda f: f.write(json.dumps(counts.tolist()).encode()))
        except OSError as e:  # a read-only data folder: recompute next time
            log.warning("could not cache class pixel counts at %s: %s", cache, e)
        return counts

    def _counts_key(self, pairs: list[tuple[Path, Path]]) -> str:
        """A hash of the mask files (path, size, mtime), the classes (names, colours, void colours), whether
        masks are colour or index masks, ignore_index and the void values."""
        masks = [[str(m), m.stat().st_size, m.stat().st_mtime_ns] for _, m in pairs]
        classes = {"names": self.palette.names, "colors": self.palette.colors, "void": self.palette.void_colors,
                   "color_masks": self.is_color, "ignore_index": self.ignore_index, "void_values": self.void_values}
        return hashlib.sha1(json.dumps([masks, classes]).encode()).hexdigest()[:16]

    def class_weights(self, power: float = 1.0) -> list[float]:
        """Median-frequency-balanced weights: (median(freq) / freq_c) ** power (0 for classes absent from
        training). power=0.5 (``loss.class_weights=auto_sqrt``) softens them: on CamVid the full weights span
        about 0.2-30x and made an undertrained model paint buildings as rare classes."""
        counts = self.pixel_counts().astype(np.float64)
        freq = counts / max(counts.sum(), 1)
        present = freq > 0
        weights = np.zeros_like(freq)
        weights[present] = (np.median(freq[present]) / freq[present]) ** power
        return weights.round(6).tolist()


class ShapesDataModule(SegDataModule):
    """The embedded default: procedurally generated shapes (see seglight.data.synthetic), colour masks."""

    def __init__(self, root: str = "~/.cache/seglight", num_train: int = 512, num_val: int = 128,
                 num_test: int = 0, image_size: int = 128, data_seed: int = 0, **kwargs) -> None:
        name = f"shapes-{num_train}-{num_val}-{num_test}-{image_size}-s{data_seed}"
        self.root = Path(root).expanduser() / name
        self.splits = {"train": num_train, "val": num_val, "test": num_test}
        d = {s: (str(self.root / s / "images"), str(self.root / s / "masks")) if n > 0 else (None, None)
             for s, n in self.splits.items()}
        self.image_size, self.data_seed = image_size, data_seed
        kwargs.setdefault("crop_size", image_size)
        super().__init__(*d["train"], *d["val"], *d["test"], palette=None,
                         class_names=SHAPES_PALETTE.names, colors=SHAPES_PALETTE.colors, **kwargs)
        self.is_color = True  # masks are written as colours through the palette
        self.generate()

    def generate(self) -> None:
        write_shapes(self.root, {k: v for k, v in self.splits.items() if v > 0}, self.image_size, self.data_seed,
                     self.palette)

    def prepare_data(self) -> None:
        self.generate()
