"""Loss registry: name -> loss for multiclass logits (B,C,H,W) and targets (B,H,W) long.

Every loss ignores pixels equal to ``ignore_index`` and takes optional per-class weights (C,). A batch whose
pixels are all ignored gives a loss of 0 with zero gradient (not NaN), so one void crop does not stop training.
Build one with ``build_loss(name, num_classes, ignore_index, class_weights, **kwargs)``.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

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


def log_probs(logits: Tensor) -> Tensor:
    """Log-softmax over the classes (B,C,H,W), in fp32 (logits from bf16 autocast are upcast first)."""
    return F.log_softmax(logits.float(), dim=1)


class FromLogProbs(nn.Module):
    """A loss that can start from log-probabilities, so that losses summed over one batch share one log-softmax
    (``WeightedSum``) where ``shares_log_probs``; ``forward(logits, target)`` takes the log-softmax itself."""

    @property
    def shares_log_probs(self) -> bool:
        return True

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return self.from_log_probs(log_probs(logits), target)

    def from_log_probs(self, logp: Tensor, target: Tensor) -> Tensor:  # logp (B,C,H,W) fp32, target (B,H,W)
        raise NotImplementedError


class SoftTverskyLoss(FromLogProbs):
    """1 - Tversky index per class, computed over the whole batch, averaged over classes present.

    alpha = beta = 0.5 is the soft Dice loss, alpha = beta = 1 the soft Jaccard loss. Classes absent
    from the batch's targets are left out of the mean (as in smp); ``weight`` (C,) weights the mean.
    """

    weight: Tensor  # (C,) a buffer

    def __init__(
        self,
        num_classes: int,
        ignore_index: int = 255,
        weight: Tensor | None = None,
        alpha: float = 0.5,
        beta: float = 0.5,
        smooth: float = 0.0,
        eps: float = 1e-7,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.alpha = alpha
        self.beta = beta
        self.smooth = smooth
        self.eps = eps
        self.register_buffer("weight", weight if weight is not None else torch.ones(num_classes))

    def from_log_probs(self, logp: Tensor, target: Tensor) -> Tensor:
        # No one-hot tensor (B,C,H,W): per class c, tp = the summed probability of c on c's pixels, fn = the summed
        # 1 - p there, fp = the summed probability of c on all valid pixels - tp. The same sums in fewer passes over
        # the batch: the one-hot form made the CamVid preset's step 1.2-1.35x slower (experiments/bench/README.md).
        # The sums are taken in float64: fp is a small difference of two sums over up to millions of pixels, and
        # scatter_add adds one value at a time (in fp32 that lost a third of fp on a preset-sized batch).
        c, dims = logp.shape[1], (0, *range(2, logp.ndim))
        exact = torch.float32 if logp.device.type == "mps" else torch.float64  # MPS has no float64
        probs = logp.exp()
        valid = target != self.ignore_index  # (B,H,W)
        safe = torch.where(valid, target, 0)
        valid_d = valid.to(exact)
        p_true = probs.gather(1, safe.unsqueeze(1)).squeeze(1).to(exact) * valid_d  # (B,H,W)
        per_class = probs.new_zeros(c, dtype=exact)
        safe = safe.flatten()
        tp = per_class.scatter_add(0, safe, p_true.flatten())
        fn = per_class.scatter_add(0, safe, (valid_d - p_true).flatten())
        count = per_class.scatter_add(0, safe, valid_d.flatten())
        # a plain sum, not an einsum: autocast would take the einsum's matmul to bf16 (or fp16, which overflows)
        prob_sum = (probs * valid.unsqueeze(1)).sum(dims, dtype=exact)  # (C,)
        fp = (prob_sum - tp).clamp_min(0)  # >= 0 but for rounding
        index = (tp + self.smooth) / (tp + self.alpha * fp + self.beta * fn + self.smooth).clamp_min(self.eps)
        present = (count > 0).to(exact) * self.weight
        return (((1 - index) * present).sum() / present.sum().clamp_min(self.eps)).float()


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
            return self.from_log_probs(log_probs(logits), target)
        pixel = F.cross_entropy(
            logits.float(),
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction="none",
            label_smoothing=self.label_smoothing,
        )
        return self._mean(pixel, target)

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
