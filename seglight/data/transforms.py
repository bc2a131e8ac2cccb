"""Albumentations pipelines: one pipeline moves image and mask together, so they stay aligned."""

from __future__ import annotations

import albumentations as A
import cv2
from albumentations.pytorch import ToTensorV2

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def train_transform(crop_size: int | tuple[int, int], scale: tuple[float, float] = (0.5, 2.0),
                    hflip: float = 0.5, color_jitter: float = 0.5, ignore_index: int = 255,
                    mean=IMAGENET_MEAN, std=IMAGENET_STD, seed: int | None = None) -> A.Compose:
    """Random scale, crop (padding with ignore_index where the image is smaller), flip, colour jitter.

    Output: image (3,h,w) float normalised, mask (h,w) uint8, with (h,w) = crop_size. albumentations 2
    draws from its own generator: ``seed`` makes it reproducible (DataLoader workers reseed it, see
    seglight.data.datamodule.seed_worker).
    """
    h, w = (crop_size, crop_size) if isinstance(crop_size, int) else tuple(crop_size)
    steps = []
    if scale[0] != 1.0 or scale[1] != 1.0:
        steps.append(A.RandomScale(scale_limit=(scale[0] - 1.0, scale[1] - 1.0), p=1.0,
                                   interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST))
    steps += [
        A.PadIfNeeded(min_height=h, min_width=w, border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=ignore_index),
        A.RandomCrop(height=h, width=w),
        A.HorizontalFlip(p=hflip),
    ]
    if color_jitter > 0:
        steps.append(A.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.03, p=color_jitter))
    steps += [A.Normalize(mean=mean, std=std), ToTensorV2()]
    return A.Compose(steps, seed=seed)


def eval_transform(divisor: int = 32, ignore_index: int = 255, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> A.Compose:
    """Pad (bottom/right) to a multiple of ``divisor``; padded mask pixels are ignore_index."""
    return A.Compose([
        A.PadIfNeeded(min_height=None, min_width=None, pad_height_divisor=divisor, pad_width_divisor=divisor,
                      position="top_left", border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=ignore_index),
        A.Normalize(mean=mean, std=std),
        ToTensorV2(),
    ])
