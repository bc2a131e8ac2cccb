"""Augmentations across the samples of a training batch: the pixels of chosen classes pasted between images."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor


def paste_classes(
    image: Tensor, mask: Tensor, classes: Sequence[int], p: float, generator: torch.Generator
) -> tuple[Tensor, Tensor, Tensor]:
    """Copy-paste of classes within a batch: with probability ``p`` a sample receives the pixels of ``classes``
    from another sample of the batch (image values and labels alike), so rare or thin classes appear more often
    and on other backgrounds. Sources are the batch as it came in, so a pasted region is never pasted on.

    image (B,C,H,W) float, mask (B,H,W) long -> new (image, mask) of the same shapes, and source (B,) long: the
    sample each one received pixels from, -1 where it received none (it did not draw a paste, its batch has one
    sample, or its source holds none of ``classes``). ``generator`` (CPU) makes the draws reproducible.
    """
    n = len(mask)
    source = torch.full((n,), -1, dtype=torch.long)
    if n < 2 or p <= 0 or not len(classes):
        return image, mask, source
    paste = torch.rand(n, generator=generator) < p
    other = (torch.arange(n) + torch.randint(1, n, (n,), generator=generator)) % n  # never the sample itself
    source = torch.where(paste, other, source)
    chosen = source >= 0
    if not chosen.any():
        return image, mask, source
    keep = torch.tensor(list(classes), device=mask.device)
    targets, sources = chosen.nonzero()[:, 0].to(mask.device), source[chosen].to(mask.device)
    region = torch.isin(mask[sources], keep)  # (K,H,W): the source's pixels of the chosen classes
    image, mask = image.clone(), mask.clone()
    image[targets] = torch.where(region[:, None], image[sources], image[targets])
    mask[targets] = torch.where(region, mask[sources], mask[targets])
    source[chosen] = torch.where(region.flatten(1).any(1), sources, -1).cpu()
    return image, mask, source
