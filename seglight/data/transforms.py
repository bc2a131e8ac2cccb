"""Albumentations pipelines: one pipeline moves image and mask together, so they stay aligned."""

from __future__ import annotations

import random
from typing import Sequence

import albumentations as A
import cv2
import numpy as np
import torch
import torch.nn.functional as F
from albumentations.augmentations.crops.transforms import BaseCrop
from albumentations.pytorch import ToTensorV2

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

PHOTOMETRIC = ("basic", "strong")


def photometric_steps(kind: str, p: float) -> list[A.BasicTransform]:
    """The colour augmentation ``kind`` applied with probability ``p`` (image only; masks are untouched).

    basic: moderate colour jitter. strong: wider brightness/contrast plus gamma, for data whose scenes differ
    in light (CamVid's dusk sequence 0001TP against its daylight ones), and occasional blur or grey.
    """
    if kind not in PHOTOMETRIC:
        raise ValueError(f"data.photometric={kind!r}: expected one of {', '.join(PHOTOMETRIC)}")
    if p <= 0:
        return []
    if kind == "basic":
        return [A.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.03, p=p)]
    return [
        A.ColorJitter(brightness=0.5, contrast=0.5, saturation=0.5, hue=0.05, p=p),
        A.RandomGamma(gamma_limit=(60, 160), p=p / 2),
        A.OneOf([A.GaussianBlur(blur_limit=(3, 5)), A.ToGray()], p=p / 5),
    ]


class FocusCrop(A.CropNonEmptyMaskIfExists):
    """A crop holding a pixel of one of ``classes``: one of the classes the mask holds is drawn uniformly, then one
    of its pixels, and the crop is placed at random around it; a random crop where the mask holds none of them.
    Thin or rare classes (CamVid's Pole, SignSymbol, Bicyclist) then fill more crops than their pixel share."""

    class InitSchema(BaseCrop.InitSchema):
        height: int
        width: int
        classes: list[int]

    def __init__(self, height: int, width: int, classes: Sequence[int], p: float = 1.0) -> None:
        super().__init__(height=height, width=width, p=p)
        self.classes = [int(c) for c in classes]

    def _preprocess_mask(self, mask: np.ndarray) -> np.ndarray:
        """mask (H,W) class indices -> (H,W) uint8, 1 on the drawn class (all 0 when none is present)."""
        present = [c for c in self.classes if (mask == c).any()]
        chosen = self.py_random.choice(present) if present else -1
        return super()._preprocess_mask((mask == chosen).astype(np.uint8))


def train_transform(
    crop_size: int | tuple[int, int],
    scale: tuple[float, float] = (0.5, 2.0),
    hflip: float = 0.5,
    color_jitter: float = 0.5,
    ignore_index: int = 255,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    seed: int | None = None,
    photometric: str = "basic",
    channels: int = 3,
    focus_crop: float = 0.0,
    focus_classes: Sequence[int] = (),
) -> A.Compose:
    """Random scale, crop (padding with ignore_index where the image is smaller), flip, colour augmentation
    (``photometric_steps``, with probability ``color_jitter``; RGB only). With probability ``focus_crop`` the crop
    is a ``FocusCrop`` around a pixel of one of ``focus_classes`` (class indices) instead of a random one.

    Input: image (H,W,3) uint8, or (H,W,channels) float32 as stored for ``channels`` other than 3 (no colour
    augmentation; mean/std in the file's units). Output: image (channels,h,w) float normalised like
    ``to_input``, mask (h,w) uint8, with (h,w) = crop_size. albumentations 2
    draws from its own generator: ``seed`` makes it reproducible (the training dataset reseeds it before each
    sample, from (seed, epoch, index): ``seglight.data.loaders.EpochDraws``).
    """
    h, w = (crop_size, crop_size) if isinstance(crop_size, int) else tuple(crop_size)
    rgb = channels == 3
    # multispectral values are normalised first: the crop's padding (0) is then the mean, not an extreme raw 0
    steps: list[A.BasicTransform] = [] if rgb else [A.Normalize(mean=mean, std=std, max_pixel_value=1.0)]
    if scale[0] != 1.0 or scale[1] != 1.0:
        steps.append(
            A.RandomScale(
                scale_limit=(scale[0] - 1.0, scale[1] - 1.0),
                p=1.0,
                interpolation=cv2.INTER_LINEAR,
                mask_interpolation=cv2.INTER_NEAREST,
            )
        )
    steps += [
        A.PadIfNeeded(min_height=h, min_width=w, border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=ignore_index),
        A.RandomCrop(height=h, width=w)
        if focus_crop <= 0
        else A.OneOf([A.RandomCrop(h, w, p=1 - focus_crop), FocusCrop(h, w, focus_classes, p=focus_crop)], p=1.0),
        A.HorizontalFlip(p=hflip),
    ]
    if rgb:
        steps += photometric_steps(photometric, color_jitter)
        steps.append(A.Normalize(mean=mean, std=std))
    steps.append(ToTensorV2())
    return seeded(A.Compose(steps), seed)


def seeded(transform: A.BaseCompose, seed: int | None) -> A.BaseCompose:
    """``transform`` with every step drawing from one shared generator seeded with ``seed`` (None: fresh
    entropy). Not ``Compose(seed=...)`` / ``set_random_seed``: those give each step its own generator with the
    same seed, so steps that draw one number each draw the same one (crops flipped exactly when zoomed out)."""
    transform.set_random_state(np.random.default_rng(seed), random.Random(seed))
    return transform


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(...,N,H,W) float (RGB: in [0,1]) -> normalised like the training data, one mean/std per channel."""
    return (x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]


def pixel_values(image: np.ndarray) -> np.ndarray:
    """(H,W,N) image -> float32 in the units ``data.mean``/``data.std`` are given in: RGB pictures (N = 3) divided
    by 255, multispectral images (any other N, ``read_channels``) as stored."""
    if image.shape[-1] == 3:
        return image.astype(np.float32) / 255.0
    return image.astype(np.float32, copy=False)


def to_input(image: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(H,W,N) image (RGB picture or multispectral) -> (1,N,H,W) float normalised: the input of the model in
    validation and prediction (``pixel_values``, then ``normalize``)."""
    if image.shape[-1] != len(mean):
        raise ValueError(f"image has {image.shape[-1]} channels, the model's normalisation {len(mean)}")
    x = torch.tensor(pixel_values(image)).permute(2, 0, 1)  # copies: PIL arrays are read-only
    return normalize(x, mean, std).unsqueeze(0)


def display_rgb(image: np.ndarray) -> np.ndarray:
    """An image as a picture (H,W,3) uint8: RGB unchanged; a multispectral (H,W,N) array shows its first three
    channels (one channel as grey), each stretched from its 2nd to its 98th percentile."""
    if image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
        return image
    arr = np.asarray(image, dtype=np.float32)
    arr = arr[..., None] if arr.ndim == 2 else arr
    arr = arr[..., :3] if arr.shape[2] >= 3 else np.repeat(arr[..., :1], 3, axis=2)
    lo, hi = np.percentile(arr, [2, 98], axis=(0, 1))
    out = (arr - lo) / np.where(hi > lo, hi - lo, 1.0)
    return (np.clip(out, 0, 1) * 255).round().astype(np.uint8)


def pad_to_multiple(x: torch.Tensor, divisor: int = 32, value: float | None = None) -> torch.Tensor:
    """(...,H,W) -> (...,H',W') with H', W' the next multiples of ``divisor``, padded at the bottom and right:
    reflected where the image is large enough (else zeros), or filled with ``value`` when it is given.
    Crop an output back with ``[..., :H, :W]``."""
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % divisor, (-w) % divisor
    if not (pad_h or pad_w):
        return x
    if value is not None:
        return F.pad(x, (0, pad_w, 0, pad_h), value=value)
    return F.pad(x, (0, pad_w, 0, pad_h), mode="reflect" if min(h, w) > max(pad_h, pad_w) else "constant")


class EvalTransform:
    """Normalise with ``to_input``, the Predictor's own input function; no resizing or padding: the model pads
    (and tiles) each image as ``Predictor`` does (seglight.model.tiling), so val/test metrics during training
    equal ``seglight.evaluate``'s. Called like an albumentations pipeline:
    ``t(image=(H,W,3) uint8, mask=(H,W))`` -> {"image": (3,H,W) float, "mask": (H,W) long}.
    """

    def __init__(self, ignore_index: int = 255, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> None:
        self.ignore_index = ignore_index
        self.mean = mean
        self.std = std

    def __call__(self, image: np.ndarray, mask: np.ndarray | None = None) -> dict[str, torch.Tensor]:
        result = {"image": to_input(image, self.mean, self.std)[0]}
        if mask is not None:
            result["mask"] = torch.from_numpy(mask.astype(np.int64))
        return result


def eval_transform(ignore_index: int = 255, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> EvalTransform:
    return EvalTransform(ignore_index, mean, std)
