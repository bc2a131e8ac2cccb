"""Scanning a data set for faults before training: every problem found, each with the file it is in."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from seglight.data.dataset import SegmentationDataset
from seglight.data.io import DataError, list_images, match_by_stem
from seglight.data.palette import Palette


@dataclass
class Fault:
    file: str
    problem: str

    def __str__(self) -> str:
        return f"{self.file}: {self.problem}" if self.file not in self.problem else self.problem


@dataclass
class ScanReport:
    split: str
    pairs: int = 0
    sizes: Counter = field(default_factory=Counter)  # (width, height) -> number of images
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # (C,) px per class, no void
    faults: list[Fault] = field(default_factory=list)


def pair_split(image_dir: str | Path, mask_dir: str | Path) -> tuple[list[tuple[Path, Path]], list[Fault]]:
    """(image, mask) pairs of one split's folders, and a fault for each missing folder and unpaired file."""
    listed, faults = {}, []
    for kind, folder in (("image", image_dir), ("mask", mask_dir)):
        try:
            listed[kind] = list_images(folder)
        except DataError as e:
            faults.append(Fault(str(folder), str(e)))
    if len(listed) < 2:
        return [], faults
    pairs, only_images, only_masks = match_by_stem(listed["image"], listed["mask"])
    for path in only_images:
        faults.append(Fault(str(path), f"image without a mask (no {path.stem}.* in {mask_dir})"))
    for path in only_masks:
        faults.append(Fault(str(path), f"mask without an image (no {path.stem}.* in {image_dir})"))
    return pairs, faults


def scan_split(
    split: str,
    image_dir: str | Path,
    mask_dir: str | Path,
    num_classes: int,
    palette: Palette | None,
    ignore_index: int = 255,
    void_values: tuple[int, ...] = (),
    channels: int = 3,
) -> ScanReport:
    """Reads every pair of one split and collects faults instead of stopping at the first (``channels``: of the
    images, 3 for RGB pictures, else multispectral)."""
    report = ScanReport(split, counts=np.zeros(num_classes, dtype=np.int64))
    pairs, report.faults = pair_split(image_dir, mask_dir)
    dataset = SegmentationDataset(
        None, None, num_classes, palette, None, ignore_index, void_values, pairs=pairs, channels=channels
    )
    for i in tqdm(range(len(dataset)), desc=f"checking {split}", unit="pair", leave=False):
        report.pairs += 1
        try:
            image, mask = dataset.read_pair(i)  # the reads and size check that training does
        except (DataError, ValueError) as e:
            report.faults.append(Fault(str(pairs[i][1]), str(e)))
            continue
        report.sizes[(image.shape[1], image.shape[0])] += 1
        report.counts += np.bincount(mask[mask != ignore_index].ravel(), minlength=num_classes)[:num_classes]
    return report
