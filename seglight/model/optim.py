"""Optimizer and LR-schedule registries, built from plain values (names and numbers)."""

from __future__ import annotations

import math
from typing import Any, Iterable

import torch
from pytorch_lightning.plugins.precision import MixedPrecision
from torch import Tensor
from torch.optim.lr_scheduler import LambdaLR

OPTIMIZERS = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}
SCHEDULERS = ("none", "cosine", "poly", "constant")
FUSED_DEVICES = ("cpu", "cuda")  # where torch has fused (single-kernel) Adam and AdamW steps
# not SGD: its fused step with momentum fails once some parameters have buffers and others not yet (an encoder
# frozen for the first epochs)
FUSED_BY_DEFAULT = ("adamw", "adam")


def build_optimizer(
    name: str,
    params: Iterable,
    lr: float,
    weight_decay: float = 0.0,
    decay_norms_and_biases: bool = True,
    **kwargs,
) -> torch.optim.Optimizer:
    """The optimizer ``name`` over ``params`` (tensors, or groups: dicts with "params"); kwargs go to it (betas,
    momentum, ...).

    ``decay_norms_and_biases=False`` (``optimizer.decay_norms_and_biases=false``) exempts the parameters of at most
    one dimension, the biases and the scales and shifts of the norm layers, from weight decay: each group splits in
    two, the second with ``weight_decay`` 0. A run resumes only with the setting it was saved with: torch refuses an
    optimizer state with another number of groups.

    Adam and AdamW take torch's fused step where ``fused`` is unset or None, no ``foreach`` is given and every
    parameter is a floating tensor on a CPU or a CUDA device (the same update up to rounding; on the CamVid preset's
    4.9M parameters a CPU AdamW step took 3.2 ms against 12.1 ms for the default multi-tensor step,
    experiments/bench/README.md). ``fused=false`` keeps torch's default. A checkpoint's optimizer state loads into
    the step kernel chosen here.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {sorted(OPTIMIZERS)}")
    params = [{**p, "params": tensors(p["params"])} if isinstance(p, dict) else p for p in params]
    if not decay_norms_and_biases:
        params = exempt_from_decay(params)
    default = not ({"foreach", "differentiable"} & set(kwargs)) and kwargs.get("fused") is None
    if name in FUSED_BY_DEFAULT and default:
        kwargs["fused"] = fusable(params) or None
    optimizer = OPTIMIZERS[name](params, lr=lr, weight_decay=weight_decay, **kwargs)
    optimizer.register_load_state_dict_post_hook(keep_step_kernel)
    return optimizer


def tensors(params: Tensor | Iterable[Tensor]) -> list[Tensor]:
    """A parameter group's "params" as a list (torch takes one tensor, or any iterable of them)."""
    return [params] if isinstance(params, Tensor) else list(params)


def exempt_from_decay(params: list) -> list[dict]:
    """``params`` (tensors, or groups with their "params" as lists) as groups in which the tensors of at most one
    dimension sit apart, with ``weight_decay`` 0; empty groups are left out."""
    loose = [p for p in params if not isinstance(p, dict)]
    groups = [p for p in params if isinstance(p, dict)] + ([{"params": loose}] if loose else [])
    split = []
    for group in groups:
        many = [t for t in group["params"] if t.ndim > 1]
        few = [t for t in group["params"] if t.ndim <= 1]
        split += [g for g in ({**group, "params": many}, {**group, "params": few, "weight_decay": 0.0}) if g["params"]]
    return split


def keep_step_kernel(optimizer: torch.optim.Optimizer) -> None:
    """After a checkpoint's state is loaded, its groups step with the kernel this run chose (fused, foreach), not
    the one saved: torch's load_state_dict takes every group setting from the checkpoint."""
    for group in optimizer.param_groups:
        for key in ("fused", "foreach"):
            if key in optimizer.defaults:
                group[key] = optimizer.defaults[key]


def fused_step_allowed(trainer: Any) -> bool:
    """Whether a fused step suits the Lightning ``trainer`` (None: none attached): its mixed-precision plugin refuses
    to clip a fused step's gradients (``trainer.gradient_clip_val``), and under 16-mixed such a step unscales them
    inside, out of Lightning's sight."""
    plugin = getattr(trainer, "precision_plugin", None)
    if not isinstance(plugin, MixedPrecision):
        return True
    return not trainer.gradient_clip_val and plugin.scaler is None


def fusable(params: list) -> bool:
    """Whether torch's fused optimizer steps take ``params`` (tensors, or groups with their "params" as lists):
    floating tensors on CPU or CUDA devices."""
    flat = [t for p in params for t in (p["params"] if isinstance(p, dict) else [p])]
    return bool(flat) and all(t.is_floating_point() and t.device.type in FUSED_DEVICES for t in flat)


def lr_factor(
    name: str, step: int, total_steps: int, warmup_steps: int = 0, power: float = 0.9, min_factor: float = 0.0
) -> float:
    """LR multiplier at ``step``: linear warm-up, then cosine / poly decay to ``min_factor``, or constant."""
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; choose one of {list(SCHEDULERS)}")
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if name in ("none", "constant"):
        return 1.0
    t = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    decay = 0.5 * (1 + math.cos(math.pi * t)) if name == "cosine" else (1 - t) ** power
    return min_factor + (1 - min_factor) * decay


class LRSchedule:
    """``lr_factor`` as a picklable callable for LambdaLR. ``total_steps`` may be changed while training
    (seglight.training.callbacks.TimeBudget fits it to the epochs that fit a time budget); LambdaLR saves it in
    the scheduler's state, so a resumed run continues the same schedule."""

    def __init__(self, name: str, total_steps: int, warmup_steps: int = 0, **kwargs) -> None:
        lr_factor(name, 0, total_steps, warmup_steps, **kwargs)  # validates the name early
        self.name = name
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps
        self.kwargs = kwargs

    def __call__(self, step: int) -> float:
        return lr_factor(self.name, step, self.total_steps, self.warmup_steps, **self.kwargs)


def build_scheduler(
    name: str, optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0, **kwargs
) -> LambdaLR:
    """A per-step LambdaLR following ``lr_factor``."""
    return LambdaLR(optimizer, LRSchedule(name, total_steps, warmup_steps, **kwargs))
