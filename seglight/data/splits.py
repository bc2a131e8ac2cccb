"""How files are split: a seeded val hold-out, grouped cross-validation folds, and which data options decide
the split (to tell whether a checkpoint's recorded split applies to a data config)."""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path
from typing import Any

from seglight.data.groups import assign_folds, file_group, holdout, purged
from seglight.data.io import DataError, pair_files

log = logging.getLogger(__name__)

# data options that decide which files go to which split
SPLIT_KEYS = (
    "val_fraction",
    "split_seed",
    "folds",
    "fold",
    "group_pattern",
    "train_on_val",
    "purge_frames",
    "frame_pattern",
)
PATTERN_KEYS = ("group_pattern", "frame_pattern")  # off: None (other split options: 0)
PURGE_KEYS = ("purge_frames", "frame_pattern")  # act on folds and val_fraction hold-outs only
# data options that change neither the files nor their labels (loading and augmentation)
LOADING_KEYS = (
    "batch_size",
    "eval_batch_size",
    "num_workers",
    "pin_memory",
    "cache_masks",
    "cache_dir",
    "crop_size",
    "scale",
    "hflip",
    "color_jitter",
    "photometric",
    "focus_crop",
    "focus_classes",
    "seed",
    "mean",
    "std",
    "in_channels",
    "cache_images",
    "require_test",
)


def data_differences(recorded: dict[str, Any], current: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Keys whose values differ between two data configs: (those naming the files and labels, the split's)."""
    keys = sorted((set(recorded) | set(current)) - set(LOADING_KEYS))

    def value(config: dict[str, Any], key: str) -> Any:  # a/b/../c and a/c name the same folder
        v = config.get(key)
        return os.path.normpath(v) if isinstance(v, str) and "/" in v else v

    # a key one config lacks (an option added since) equals the other's off value (false, null, 0)
    differ = [k for k in keys if value(recorded, k) != value(current, k) and (recorded.get(k) or current.get(k))]
    if not any((c.get("folds") or 0) > 1 or not c.get("val_images") for c in (recorded, current)):
        differ = [k for k in differ if k not in PURGE_KEYS]  # val folders, no folds: nothing is purged
    return [k for k in differ if k not in SPLIT_KEYS], [k for k in differ if k in SPLIT_KEYS]


def recorded_option(data: dict[str, Any], key: str) -> Any:
    """A split option as a run recorded it (``data``: its data config); one it did not record was off."""
    value = data.get(key)
    return 0 if value is None and key not in PATTERN_KEYS else value


def recorded_images(splits: SplitFiles, record: dict[str, Any], split: str, data: dict[str, Any]) -> list[Path] | None:
    """The image files of ``split`` that a run recorded (``record``: a checkpoint's ``data_split``), looked up in
    the folders of ``splits`` under that run's own split options (its folds, hold-out, train_on_val); None when
    the run read other data than the data config ``data`` (other folders or files), where its names say nothing."""
    source, how = data_differences(record["data"], data)
    if source:
        return None
    if not record["files"].get(split):
        return []
    theirs = copy.copy(splits)
    for key in how:
        setattr(theirs, key, recorded_option(record["data"], key))
    theirs.recorded = {split: list(record["files"][split])}
    return [image for image, _ in theirs.pairs(split)]


class SplitFiles:
    """Which (image, mask) files form the train, val and test splits of a data set's folders ``dirs``
    ({split: (images, masks)}): the folders' own, a ``val_fraction`` hold-out of train drawn with
    ``split_seed``, cross-validation ``folds`` over train+val (val = fold ``fold``, groups by
    ``group_pattern``), or ``recorded`` file names (a run's splits.json) where they are set. ``train_on_val`` trains
    on the train and val folders together (the final model once the epochs are fixed; val then scores seen images)."""

    def __init__(
        self,
        dirs: dict[str, tuple[str | None, str | None]],
        val_fraction: float = 0.1,
        split_seed: int = 0,
        folds: int = 0,
        fold: int = 0,
        group_pattern: str | None = None,
        require_test: bool = False,
        train_on_val: bool = False,
        purge_frames: int = 0,
        frame_pattern: str | None = None,
    ) -> None:
        if folds > 1 and not 0 <= fold < folds:
            raise ValueError(f"data.fold={fold} is not one of 0..{folds - 1} (data.folds={folds})")
        if folds <= 1 and fold != 0:
            raise ValueError(f"data.fold={fold} needs data.folds=K > 1 (cross-validation); without it every fold "
                             "would score the same split")  # fmt: skip
        self.dirs = dirs
        self.val_fraction = val_fraction
        self.split_seed = split_seed
        self.folds = folds
        self.fold = fold
        self.group_pattern = group_pattern
        self.require_test = require_test
        self.train_on_val = train_on_val
        self.purge_frames = purge_frames
        self.frame_pattern = frame_pattern
        if purge_frames and not frame_pattern:
            raise ValueError(f"data.purge_frames={purge_frames} needs data.frame_pattern (sequence, frame number)")
        if train_on_val and folds > 1:
            raise ValueError("data.train_on_val trains on every file; cross-validation (data.folds) holds folds out")
        self.recorded: dict[str, list[str]] | None = None

    def has(self, split: str) -> bool:
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

    def pairs(self, split: str) -> list[tuple[Path, Path]]:
        """The (image, mask) files of a split. Without val folders, val is a ``val_fraction`` of the training
        pairs drawn with ``split_seed`` (not the training seed: runs with other seeds hold out the same
        images) and train is the rest. With ``recorded`` files for the split, those, in their order."""
        if split not in self.dirs:
            raise ValueError(f"unknown split {split!r}; choose train, val or test")
        if self.recorded is not None and split in self.recorded:
            return self._recorded_pairs(split)
        if self.folds > 1 and split in ("train", "val"):
            return self._purged(self._fold_pairs(split), split)
        if self.train_on_val and split == "train":
            if not self.has("val"):
                raise ValueError("data.train_on_val needs val folders (data.val_images / data.val_masks)")
            return self._pooled_pairs()
        pairs = self._source_pairs(split)
        if split in ("train", "val") and not self.has("val"):
            if self.val_fraction <= 0:
                if split == "val":
                    raise ValueError("no val split: give data.val_images/val_masks or data.val_fraction > 0")
                return pairs
            groups = [file_group(image.stem, self.group_pattern) for image, _ in pairs] if self.group_pattern else None
            if groups is not None and split == "val":  # runs before 2026-11-27 held out single files here
                log.info("val: whole groups of data.group_pattern, nearest data.val_fraction=%s", self.val_fraction)
            val_idx, train_idx = holdout(len(pairs), self.val_fraction, self.split_seed, groups)
            return self._purged([pairs[i] for i in (val_idx if split == "val" else train_idx)], split)
        return pairs

    def _purged(self, pairs: list[tuple[Path, Path]], split: str) -> list[tuple[Path, Path]]:
        """Train ``pairs`` without those within ``purge_frames`` frames of a val file (``purged``); others as given."""
        if split != "train" or not self.purge_frames:
            return pairs
        val = [image.stem for image, _ in self.pairs("val")]
        keep = purged([image.stem for image, _ in pairs], val, str(self.frame_pattern), int(self.purge_frames))
        left = len(pairs) - sum(keep)
        if left == len(pairs):
            raise DataError(f"data.purge_frames={self.purge_frames} leaves no training file: every one lies that near "
                            "a val file of its sequence")  # fmt: skip
        log.log(logging.WARNING if left > 0.25 * len(pairs) else logging.INFO,
                "train: %d of %d files left out, within data.purge_frames=%s frames of a val file",
                left, len(pairs), self.purge_frames)  # fmt: skip
        return [p for p, k in zip(pairs, keep) if k]

    def _source_pairs(self, split: str) -> list[tuple[Path, Path]]:
        """The pairs a split is drawn from: its own folders, the training folders for a val hold-out, or both
        the train and val folders for cross-validation folds (a file name may then appear once only)."""
        if self.folds > 1 and split in ("train", "val") or self.train_on_val and split == "train":
            return self._pooled_pairs()
        if split == "val" and not self.has("val"):
            split = "train"
        if split != "train" and not self.has(split):
            raise DataError(f"{split} split not found: {self.dirs[split]}")
        return self._folder_pairs(split)

    def _pooled_pairs(self) -> list[tuple[Path, Path]]:
        """The train and val folders' pairs together (each file name once)."""
        pool = self._folder_pairs("train") + (self._folder_pairs("val") if self.has("val") else [])
        names = [image.name for image, _ in pool]
        shared = sorted({n for n in names if names.count(n) > 1})
        if shared:
            raise DataError(f"the train and val folders share file names {shared[:5]}: pooling needs each image once")
        return pool

    def _folder_pairs(self, split: str) -> list[tuple[Path, Path]]:
        images, masks = self.dirs[split]
        if images is None or masks is None:
            raise DataError(f"no {split} folders configured (data.images / data.masks)")
        return pair_files(images, masks)

    def _fold_pairs(self, split: str) -> list[tuple[Path, Path]]:
        """Cross-validation: the train and val folders' pairs, grouped by ``group_pattern``, in ``folds`` folds;
        val is fold ``fold``, train the others."""
        pool = self._source_pairs(split)
        assignment = assign_folds([image.stem for image, _ in pool], self.folds, self.group_pattern, self.split_seed)
        return [p for p, k in zip(pool, assignment) if (k == self.fold) == (split == "val")]

    def files(self) -> dict[str, list[str]]:
        """{"train": [...], "val": [...], "test": [...]}: the image file names of each split (empty where the
        split is missing), as written to a run's splits.json."""
        files = {}
        for split in ("train", "val", "test"):
            present = (
                split == "train" or self.has(split) or (split == "val" and (self.val_fraction > 0 or self.folds > 1))
            )
            files[split] = [image.name for image, _ in self.pairs(split)] if present else []
        return files

    def _recorded_pairs(self, split: str) -> list[tuple[Path, Path]]:
        """The recorded image files of ``split``, looked up among the pairs the split is drawn from."""
        pool = {image.name: (image, mask) for image, mask in self._source_pairs(split)}
        wanted = self.recorded[split]  # type: ignore[index]
        missing = [n for n in wanted if n not in pool]
        if missing:
            raise DataError(
                f"{len(missing)} of the {len(wanted)} recorded {split} images are not in the configured "
                f"{split} folders {self.dirs[split]}: {missing[:5]}"
            )
        return [pool[n] for n in wanted]
