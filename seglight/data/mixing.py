"""Augmentations across the samples of a training batch: the pixels of chosen classes pasted between images."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor


def paste_classes(
    image: Tensor, mask: Tensor, classes: Sequence[int], p: float, generator: torch.Generator
) -> tuple[Tensor, Tensor, Tensor]:
    """Copy-paste of classes within a batch: with probability ``p`` a sample receives the pixels of ``classes``
    from another sample of the batch that holds some (image values and labels alike), drawn uniformly among those,
    so rare or thin classes appear more often and on other backgrounds. Sources are the batch as it came in, so a
    pasted region is never pasted on.

    image (B,C,H,W) float, mask (B,H,W) long -> new (image, mask) of the same shapes, and source (B,) long on the
    mask's device: the sample each one received pixels from, -1 where it received none (it did not draw a paste,
    or no other sample of its batch holds one of ``classes``). ``generator`` (CPU) draws; the rest runs on the
    batch's device without waiting for it.
    """
    n, device = len(mask), mask.device
    if n < 2 or p <= 0 or not len(classes):
        return image, mask, torch.full((n,), -1, dtype=torch.long, device=device)
    paste = (torch.rand(n, generator=generator) < p).to(device)
    scores = torch.rand(n, n, generator=generator).to(device)  # row i: a random order of the candidate sources
    inside = torch.isin(mask, torch.tensor(list(classes), device=device))  # (B,H,W)
    eligible = inside.flatten(1).any(1)[None, :] & ~torch.eye(n, dtype=torch.bool, device=device)  # (B,B)
    best, other = scores.masked_fill(~eligible, -1.0).max(1)
    source = torch.where(paste & (best >= 0), other, -1)
    take = source.clamp(min=0)
    region = inside[take] & (source >= 0)[:, None, None]  # (B,H,W): the pixels each sample receives
    image = torch.where(region[:, None], image[take], image)
    mask = torch.where(region, mask[take], mask)
    return image, mask, source
