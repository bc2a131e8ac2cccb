"""Whole-image prediction at any size: the one rule that validation, evaluate and predict share.

An image (B,3,H,W) is padded at the bottom and right to a multiple of the model's divisor (reflected, see
``pad_to_multiple``) and the output cropped back; an image with a side above ``tile_size`` is cut into
overlapping windows whose probabilities are averaged, each weighted by a Gaussian that falls from the window's
centre towards its edges (``blend="gaussian"``, the default): a window's border pixels see the least context,
and uniform averaging leaves visible seams where one window's border meets the next window's inside.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from seglight.data.transforms import pad_to_multiple

TILE_SIZE = 1024  # model.tile_size's default: validation (and predict/evaluate, tile_size=auto) windows larger images
TILE_OVERLAP = 0.25  # the fraction of a window shared with its neighbour
BLENDS = ("gaussian", "uniform")
GAUSSIAN_SIGMA = 1 / 8  # of the window's side, as nnU-Net weighs its sliding windows


def window_weights(h: int, w: int, blend: str = "gaussian") -> Tensor:
    """(1,1,h,w) weights of one window's pixels: a separable Gaussian centred on the window (sigma = side / 8,
    at least 1e-3 of the peak so every pixel counts) or ones."""
    if blend not in BLENDS:
        raise ValueError(f"tile_blend={blend!r}: expected one of {', '.join(BLENDS)}")
    if blend == "uniform":
        return torch.ones(1, 1, h, w)

    def bell(n: int) -> Tensor:
        x = torch.arange(n, dtype=torch.float32) - (n - 1) / 2
        return torch.exp(-0.5 * (x / max(n * GAUSSIAN_SIGMA, 1e-6)) ** 2)

    weights = bell(h)[:, None] * bell(w)[None, :]
    return (weights / weights.max()).clamp(min=1e-3)[None, None]


def tile_starts(size: int, tile: int, stride: int) -> list[int]:
    """Window offsets along one side: every ``stride``, the last window flush with the end."""
    if size <= tile:
        return [0]
    return sorted(set(range(0, size - tile, stride)) | {size - tile})


def padded(fn: Callable[[Tensor], Tensor], images: Tensor, divisor: int) -> Tensor:
    """``fn`` on images (B,3,H,W) padded to a multiple of ``divisor``, its output (B,C,H',W') cropped to (H,W)."""
    h, w = images.shape[-2:]
    return fn(pad_to_multiple(images, divisor))[..., :h, :w]


def needs_tiles(images: Tensor, tile_size: int | None) -> bool:
    return tile_size is not None and max(images.shape[-2:]) > tile_size


def sliding_window(
    probs_fn: Callable[[Tensor], Tensor],
    images: Tensor,
    num_classes: int,
    tile_size: int,
    tile_overlap: float,
    divisor: int,
    blend: str = "gaussian",
) -> Tensor:
    """Probabilities (B,C,H,W): the weighted mean over overlapping windows of ``tile_size`` (``window_weights``).

    ``probs_fn`` maps a window (B,3,h,w) of any size to probabilities (B,C,h,w) (it pads by itself).
    """
    h, w = images.shape[-2:]
    stride = max(divisor, int(tile_size * (1 - tile_overlap)))
    out = torch.zeros(images.shape[0], num_classes, h, w)
    count = torch.zeros(1, 1, h, w)
    for y in tile_starts(h, tile_size, stride):
        for x in tile_starts(w, tile_size, stride):
            window = images[..., y : y + tile_size, x : x + tile_size]
            weight = window_weights(window.shape[-2], window.shape[-1], blend)
            out[..., y : y + tile_size, x : x + tile_size] += probs_fn(window).float().cpu() * weight
            count[..., y : y + tile_size, x : x + tile_size] += weight
    return out / count
