"""Models in channels_last: ``to_channels_last(model)`` is the one way seglight puts a model in that layout.

oneDNN's convolutions run faster on channels_last (B,C,H,W) tensors on a CPU, but torch's CPU GroupNorm does not:
on a channels_last bf16 input it is about 20x slower than on a contiguous one (forward and backward, (8,32,56,64),
torch 2.14; experiments/bench/README.md). smp's FPN puts a GroupNorm in every segmentation block, which made it about
12 % of the CamVid preset's training step. ``ContiguousGroupNorm`` runs the same GroupNorm on a contiguous copy of
such an input and hands the result back in channels_last: the same parameters, so checkpoints load either way, and
the same normalisation; the contiguous kernel sums in another order, so values differ by rounding (runs are not
bit-identical to ones from before session 26). Only plain ``nn.GroupNorm`` is swapped: subclasses such as timm's
GroupNormAct keep their own forward.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ContiguousGroupNorm(nn.GroupNorm):
    """``nn.GroupNorm`` that normalises a channels_last CPU input (B,C,H,W) in the contiguous layout; the output
    (B,C,H,W) keeps the input's layout. Other inputs (CUDA, contiguous, not 4-D) go straight to GroupNorm."""

    def forward(self, input: Tensor) -> Tensor:
        if input.device.type != "cpu" or input.ndim != 4 or input.is_contiguous():
            return super().forward(input)
        if not input.is_contiguous(memory_format=torch.channels_last):
            return super().forward(input)
        return super().forward(input.contiguous()).contiguous(memory_format=torch.channels_last)


def to_channels_last(model: nn.Module) -> nn.Module:
    """``model`` (changed in place and returned) with its parameters in channels_last and each plain
    ``nn.GroupNorm`` made a ``ContiguousGroupNorm``: the same module state, so state dicts load either way."""
    for module in model.modules():
        if type(module) is nn.GroupNorm:
            module.__class__ = ContiguousGroupNorm
    return model.to(memory_format=torch.channels_last)
