"""Loss registry: name -> loss for multiclass logits (B,C,H,W) and targets (B,H,W) long.

Every loss ignores pixels equal to ``ignore_index`` and takes optional per-class weights (C,). A batch whose
pixels are all ignored gives a loss of 0 with zero gradient (not NaN), so one void crop does not stop training.
Build one with ``build_loss(name, num_classes, ignore_index, class_weights, **kwargs)``.

Cross-entropy and the soft Tversky family (dice, jaccard, tversky) and their sums (dice_ce) train with their
gradient with respect to the logits in closed form (seglight.model.closed_form); evaluation, and losses without a
closed form, take autograd's path.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seglight.model.closed_form import (
    ClosedForm,
    ClosedFormLoss,
    FromLogProbs,
    SoftmaxBatch,
    closed_form_applies,
    log_probs,
)
from seglight.model.tversky import SoftTverskyLoss

LOSSES: dict[str, Callable[..., nn.Module]] = {}


def register(name: str):
    def add(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        LOSSES[name] = factory
        return factory

    return add


def build_loss(
    name: str, num_classes: int, ignore_index: int = 255, class_weights: Sequence[float] | None = None, **kwargs
) -> nn.Module:
    """The registered loss ``name``; kwargs are the loss's own options (focal: alpha, gamma; ...)."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}")
    weight = None
    if class_weights is not None:
        weight = torch.as_tensor(list(class_weights), dtype=torch.float32)
        if weight.numel() != num_classes:
            raise ValueError(f"{weight.numel()} class weights given for {num_classes} classes")
    return LOSSES[name](num_classes=num_classes, ignore_index=ignore_index, weight=weight, **kwargs)


class FocalLoss(nn.Module):
    """Focal loss: mean over valid pixels of -alpha * w[y] * (1 - p_y)^gamma * log p_y."""

    weight: Tensor  # (C,) a buffer

    def __init__(
        self,
        num_classes: int,
        ignore_index: int = 255,
        weight: Tensor | None = None,
        alpha: float = 1.0,
        gamma: float = 2.0,
    ) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.alpha = alpha
        self.gamma = gamma
        self.register_buffer("weight", weight if weight is not None else torch.ones(num_classes))

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        valid = target != self.ignore_index
        safe = torch.where(valid, target, 0)
        logp = F.log_softmax(logits.float(), dim=1).gather(1, safe.unsqueeze(1)).squeeze(1)  # (B,H,W)
        loss = -self.alpha * self.weight[safe] * (1 - logp.exp()).pow(self.gamma) * logp
        return (loss * valid).sum() / valid.sum().clamp_min(1)


class LovaszLoss(nn.Module):
    """smp's Lovasz-softmax (multiclass, ignore_index); class weights are not defined for it."""

    def __init__(self, num_classes: int, ignore_index: int = 255, weight: Tensor | None = None) -> None:
        super().__init__()
        if weight is not None:
            raise ValueError("the lovasz loss takes no class weights; use ce, dice, focal, dice_ce or tversky")
        from segmentation_models_pytorch.losses import LovaszLoss as SmpLovasz

        self.loss = SmpLovasz("multiclass", ignore_index=ignore_index, from_logits=True)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return self.loss(logits.float(), target).sum()  # smp gives an empty (0,C) tensor if every pixel is ignored


class WeightedSum(nn.Module):
    """sum_k weight_k * loss_k(logits, target); terms that start from log-probabilities share one log-softmax."""

    def __init__(self, terms: dict[str, tuple[float, nn.Module]]) -> None:
        super().__init__()
        self.weights = {k: float(w) for k, (w, _) in terms.items()}
        self.terms = nn.ModuleDict({k: m for k, (_, m) in terms.items()})

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        if closed_form_applies(logits, list(self.terms.values())):
            return ClosedFormLoss.apply(logits, target, [(self.weights[k], m) for k, m in self.terms.items()])
        return self.autograd_path(logits, target)

    def autograd_path(self, logits: Tensor, target: Tensor) -> Tensor:
        """The sum through autograd's graph, the terms that share log-probabilities from one log-softmax: what
        ``forward`` takes where no closed form applies, and the reference the closed form is tested and timed
        against."""
        sharing = {k: m for k, m in self.terms.items() if isinstance(m, FromLogProbs) and m.shares_log_probs}
        logp = log_probs(logits) if sharing else logits
        values = [
            self.weights[k] * (sharing[k].from_log_probs(logp, target) if k in sharing else m(logits, target))
            for k, m in self.terms.items()
        ]
        return sum(values[1:], values[0])


class CrossEntropy(nn.CrossEntropyLoss, FromLogProbs):
    """nn.CrossEntropyLoss's mean in fp32 (logits from bf16 autocast are upcast first): the summed loss over
    the valid pixels divided by their summed class weights w[y] (their count if unweighted), 0 if there are none
    (torch's mean is 0/0 = NaN then).

    ``ohem`` in (0, 1] keeps only that fraction of the valid pixels, those with the largest loss, in each batch
    (online hard example mining): the mean is then over the kept pixels. ``ohem=None`` keeps every pixel.
    """

    def __init__(self, *args: Any, ohem: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if ohem is not None and not 0.0 < ohem <= 1.0:
            raise ValueError(f"ohem is the fraction of pixels kept, in (0, 1]; got {ohem}")
        self.ohem = ohem

    @property
    def shares_log_probs(self) -> bool:  # torch smooths the labels from the logits
        return not self.label_smoothing

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        if self.shares_log_probs:
            return FromLogProbs.forward(self, logits, target)
        pixel = F.cross_entropy(
            logits.float(),
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction="none",
            label_smoothing=self.label_smoothing,
        )
        return self._mean(pixel, target)

    @property
    def has_closed_form(self) -> bool:
        return self.ohem is None and not self.label_smoothing

    def closed_form(self, batch: SoftmaxBatch) -> ClosedForm:
        # value: sum_i w[y_i] (-logp_i,y_i) / N over valid pixels, N = sum_i w[y_i] (1 if 0);
        # d value / d z_ik = w[y_i] / N (p_ik - [k = y_i])
        weight = batch.valid.float() if self.weight is None else self.weight[batch.target] * batch.valid
        norm = weight.sum()
        weight = weight / torch.where(norm > 0, norm, torch.ones_like(norm))
        nll = -batch.logp.gather(1, batch.target.unsqueeze(1)).squeeze(1)
        value = torch.where(batch.valid, weight * nll, 0).sum()
        return ClosedForm(value, None, weight, -weight)

    def from_log_probs(self, logp: Tensor, target: Tensor) -> Tensor:
        if self.label_smoothing:
            raise ValueError("label smoothing needs the logits: call the loss itself")
        pixel = F.nll_loss(logp, target, weight=self.weight, ignore_index=self.ignore_index, reduction="none")
        return self._mean(pixel, target)

    def _mean(self, pixel: Tensor, target: Tensor) -> Tensor:
        """The mean of the per-pixel losses ``pixel`` (B,H,W): w[y] * -log p_y, 0 where ignored."""
        pixel, target = pixel.flatten(), target.flatten()
        valid = target != self.ignore_index
        if self.ohem is not None and bool(valid.any()):
            k = max(1, math.ceil(self.ohem * int(valid.sum()) - 1e-9))  # 0.07 * 100 is 7, not 8
            kept = torch.where(valid, pixel, torch.full_like(pixel, -1.0)).topk(k).indices  # ignored rank last
            pixel, target, valid = pixel[kept], target[kept], valid[kept]
        if self.weight is None:
            norm = valid.sum().float()
        else:
            norm = (self.weight[torch.where(valid, target, 0)] * valid).sum()
        return pixel.sum() / torch.where(norm > 0, norm, torch.ones_like(norm))


@register("ce")
def ce(
    num_classes: int,
    ignore_index: int,
    weight: Tensor | None = None,
    label_smoothing: float = 0.0,
    ohem: float | None = None,
) -> nn.Module:
    """Cross-entropy; ``ohem`` = fraction of the hardest valid pixels kept per batch (None: all)."""
    return CrossEntropy(weight=weight, ignore_index=ignore_index, label_smoothing=label_smoothing, ohem=ohem)


@register("dice")
def dice(num_classes: int, ignore_index: int, weight: Tensor | None = None, smooth: float = 0.0) -> nn.Module:
    return SoftTverskyLoss(num_classes, ignore_index, weight, alpha=0.5, beta=0.5, smooth=smooth)


@register("jaccard")
def jaccard(num_classes: int, ignore_index: int, weight: Tensor | None = None, smooth: float = 0.0) -> nn.Module:
    return SoftTverskyLoss(num_classes, ignore_index, weight, alpha=1.0, beta=1.0, smooth=smooth)


@register("tversky")
def tversky(
    num_classes: int,
    ignore_index: int,
    weight: Tensor | None = None,
    alpha: float = 0.3,
    beta: float = 0.7,
    smooth: float = 0.0,
) -> nn.Module:
    """alpha weighs false positives, beta false negatives (beta > alpha favours recall)."""
    return SoftTverskyLoss(num_classes, ignore_index, weight, alpha=alpha, beta=beta, smooth=smooth)


@register("focal")
def focal(
    num_classes: int, ignore_index: int, weight: Tensor | None = None, alpha: float = 1.0, gamma: float = 2.0
) -> nn.Module:
    return FocalLoss(num_classes, ignore_index, weight, alpha=alpha, gamma=gamma)


@register("lovasz")
def lovasz(num_classes: int, ignore_index: int, weight: Tensor | None = None) -> nn.Module:
    return LovaszLoss(num_classes, ignore_index, weight)


@register("dice_ce")
def dice_ce(
    num_classes: int,
    ignore_index: int,
    weight: Tensor | None = None,
    dice_weight: float = 1.0,
    ce_weight: float = 1.0,
    ohem: float | None = None,
) -> nn.Module:
    """dice_weight * Dice + ce_weight * cross-entropy (``ohem``: of the cross-entropy term, as in ``ce``)."""
    return WeightedSum(
        {
            "dice": (dice_weight, dice(num_classes, ignore_index, weight)),
            "ce": (ce_weight, ce(num_classes, ignore_index, weight, ohem=ohem)),
        }
    )
