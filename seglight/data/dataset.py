"""SegmentationDataset: paired image/mask files -> {"image": (N,H,W) float, "mask": (H,W) long} (N = 3: RGB)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from seglight.data.image_cache import ImageCache
from seglight.data.io import DataError, pair_files, read_image, read_mask
from seglight.data.palette import Palette
from seglight.data.transforms import pixel_values, seeded

Sample = dict[str, torch.Tensor]


class SegmentationDataset(Dataset):
    """Pairs images and masks by file stem and runs ONE albumentations pipeline on both.

    Args:
        image_dir, mask_dir: folders; files are paired by stem (``a.jpg`` <-> ``a.png``).
        num_classes: number of classes; mask values must lie in [0, num_classes) or be ignore_index.
        palette: given for colour masks (H,W,3); None for index masks (H,W).
        transform: albumentations Compose called as ``transform(image=, mask=)``; must end in ToTensorV2.
        void_values: index-mask values that mean "ignore" (CamVid's 11), mapped to ignore_index.
        cache_masks: keep decoded index masks in memory (worth it for colour masks read every epoch).
        pairs: the (image, mask) files, already paired (the folders are then not read).
        channels: image channels; 3 reads RGB pictures (uint8), any other count multispectral files
            (float32 as stored, ``seglight.data.io.read_channels``).
        image_cache: decoded images kept as memory-mapped .npy files (``data.cache_images``), or None.
        seeds: index -> the seed the transform's generator takes before that sample (training:
            ``seglight.data.loaders.EpochDraws``); None: the transform draws on from where it is.
    """

    def __init__(
        self,
        image_dir: str | Path | None,
        mask_dir: str | Path | None,
        num_classes: int,
        palette: Palette | None = None,
        transform: Callable | None = None,
        ignore_index: int = 255,
        void_values: tuple[int, ...] = (),
        cache_masks: bool = False,
        pairs: list[tuple[Path, Path]] | None = None,
        channels: int = 3,
        image_cache: ImageCache | None = None,
        seeds: Callable[[int], int] | None = None,
    ) -> None:
        if pairs is None and (image_dir is None or mask_dir is None):
            raise ValueError("give the image and mask folders, or the pairs")
        self.pairs = pairs if pairs is not None else pair_files(image_dir, mask_dir)  # type: ignore[arg-type]
        self.num_classes = num_classes
        self.palette = palette
        self.transform = transform
        self.ignore_index = ignore_index
        self.void_values = tuple(void_values)
        self.cache_masks = cache_masks
        self.channels = channels
        self.image_cache = image_cache
        self.seeds = seeds
        self._masks: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.pairs)

    def read_mask(self, i: int) -> np.ndarray:
        """Index mask (H,W) uint8 of pair i, decoded once if caching."""
        if i in self._masks:
            return self._masks[i]
        mask = read_mask(self.pairs[i][1], self.num_classes, self.palette, self.ignore_index, self.void_values)
        if self.cache_masks:
            self._masks[i] = mask
        return mask

    def read_image(self, i: int) -> np.ndarray:
        """Image of pair i: (H,W,3) uint8, or (H,W,channels) float32 for multispectral data."""
        path = self.pairs[i][0]
        if self.image_cache is None:
            return read_image(path, self.channels)
        return np.array(self.image_cache.read(path, lambda: read_image(path, self.channels)))  # a writable copy

    def read_pair(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(image (H,W,3) uint8 or (H,W,channels) float32, mask (H,W) uint8), checked to be the same size."""
        image_path, mask_path = self.pairs[i]
        image, mask = self.read_image(i), self.read_mask(i)
        if image.shape[:2] != mask.shape:
            raise DataError(
                f"image {image_path} is {image.shape[1]}x{image.shape[0]} but mask {mask_path} is "
                f"{mask.shape[1]}x{mask.shape[0]} (width x height)"
            )
        return image, mask

    def __getitem__(self, i: int) -> Sample:
        image, mask = self.read_pair(i)
        if self.transform is not None:
            if self.seeds is not None:
                seeded(self.transform, self.seeds(i))
            out = self.transform(image=image, mask=mask)
            return {"image": out["image"].float(), "mask": torch.as_tensor(out["mask"]).long()}
        x = torch.from_numpy(np.ascontiguousarray(pixel_values(image).transpose(2, 0, 1)))
        return {"image": x, "mask": torch.from_numpy(mask).long()}
