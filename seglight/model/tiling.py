"""Whole-image prediction at any size: the one rule that validation, evaluate and predict share.

An image (B,3,H,W) is padded at the bottom and right to a multiple of the model's divisor (reflected, see
``pad_to_multiple``) and the output cropped back; an image with a side above ``tile_size`` is cut into
overlapping windows whose probabilities are averaged.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from seglight.data.transforms import pad_to_multiple

TILE_SIZE = 1024  # images with a side above this are predicted in windows (predict, evaluate, validation)
TILE_OVERLAP = 0.25  # the fraction of a window shared with its neighbour


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
) -> Tensor:
    """Probabilities (B,C,H,W) averaged over overlapping windows of ``tile_size``.

    ``probs_fn`` maps a window (B,3,h,w) of any size to probabilities (B,C,h,w) (it pads by itself).
    """
    h, w = images.shape[-2:]
    stride = max(divisor, int(tile_size * (1 - tile_overlap)))
    out = torch.zeros(images.shape[0], num_classes, h, w)
    count = torch.zeros(1, 1, h, w)
    for y in tile_starts(h, tile_size, stride):
        for x in tile_starts(w, tile_size, stride):
            window = images[..., y : y + tile_size, x : x + tile_size]
            out[..., y : y + tile_size, x : x + tile_size] += probs_fn(window).float().cpu()
            count[..., y : y + tile_size, x : x + tile_size] += 1
    return out / count
