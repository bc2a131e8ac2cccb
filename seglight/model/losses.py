"""Loss registry: name -> loss for multiclass logits (B,C,H,W) and targets (B,H,W) long.

Every loss ignores pixels equal to ``ignore_index`` and takes optional per-class weights (C,). A batch whose
pixels are all ignored gives a loss of 0 with zero gradient (not NaN), so one void crop does not stop training.
Build one with ``build_loss(name, num_classes, ignore_index, class_weights, **kwargs)``.

Cross-entropy and the soft Tversky family (dice, jaccard, tversky) and their sums (dice_ce) train through
``ClosedFormLoss``: their gradient with respect to the logits in closed form, in a few passes over the logits where
autograd's graph wrote many full-size intermediates; evaluation, and losses without a closed form, take autograd's.
"""

from __future__ import annotations

import math
from dataclasses import astuple, dataclass
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

    ignore_index: int

    @property
    def shares_log_probs(self) -> bool:
        return True

    @property
    def has_closed_form(self) -> bool:
        return False

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        if closed_form_applies(logits, [self]):
            return ClosedFormLoss.apply(logits, target, [(1.0, self)])
        return self.from_log_probs(log_probs(logits), target)

    def from_log_probs(self, logp: Tensor, target: Tensor) -> Tensor:  # logp (B,C,H,W) fp32, target (B,H,W)
        raise NotImplementedError

    def closed_form(self, batch: SoftmaxBatch) -> ClosedForm:
        """The loss on ``batch`` and its gradient with respect to the logits in closed form (where
        ``has_closed_form``): the same loss as ``from_log_probs``, in fewer passes over the batch than autograd's."""
        raise NotImplementedError


def closed_form_applies(logits: Tensor, terms: Sequence[nn.Module]) -> bool:
    """Whether the loss summed over ``terms`` takes ``ClosedFormLoss``: a gradient is wanted and every term has a
    closed form, with one ignore_index."""
    return (
        torch.is_grad_enabled()
        and logits.requires_grad
        and all(isinstance(m, FromLogProbs) and m.has_closed_form for m in terms)
        and len({m.ignore_index for m in terms}) == 1
    )


class ClosedFormLoss(torch.autograd.Function):
    """sum_k weight_k * loss_k(logits, target) for ``terms`` [(weight_k, loss_k)] with a closed form: the gradient
    with respect to the logits (B,C,H,W) is computed with the value and kept in the logits' dtype and layout until
    the backward pass. On the CamVid preset's (8,11,224,256) logits this did the loss and its backward in about
    half the time of autograd's graph (experiments/bench/README.md), which writes many full-size intermediates."""

    @staticmethod
    def forward(ctx: Any, logits: Tensor, target: Tensor, terms: list[tuple[float, FromLogProbs]]) -> Tensor:
        with torch.autocast(logits.device.type, enabled=False):
            batch = SoftmaxBatch.of(logits, target, terms[0][1].ignore_index)
            forms = [weight * loss.closed_form(batch) for weight, loss in terms]
            total = sum(forms[1:], forms[0])
            ctx.save_for_backward(total.logit_grad(batch).to(logits.dtype))
        return total.value

    @staticmethod
    def backward(ctx: Any, grad_value: Tensor) -> tuple[Tensor, None, None]:
        (grad,) = ctx.saved_tensors
        return grad * grad_value, None, None


@dataclass
class SoftmaxBatch:
    """What losses of a softmax share, computed once per batch without autograd; all fp32 but the target."""

    logp: Tensor  # (B,C,H,W) log-softmax of the logits
    probs: Tensor  # (B,C,H,W) softmax, 0 at ignored pixels
    target: Tensor  # (B,H,W) long, 0 at ignored pixels
    valid: Tensor  # (B,H,W) bool, False at ignored pixels
    p_true: Tensor  # (B,H,W) the probability of the target class, 0 at ignored pixels

    @classmethod
    def of(cls, logits: Tensor, target: Tensor, ignore_index: int) -> SoftmaxBatch:
        # contiguous: the ops below ran about 1.4x as long on channels_last logits (experiments/bench/README.md)
        logp = log_probs(logits.to(torch.float32, memory_format=torch.contiguous_format))
        valid = target != ignore_index
        safe = torch.where(valid, target, 0)
        probs = logp.exp().mul_(valid.unsqueeze(1))
        return cls(logp, probs, safe, valid, probs.gather(1, safe.unsqueeze(1)).squeeze(1))


@dataclass
class ClosedForm:
    """A loss value and its gradient with respect to the logits z (B,C,H,W) in the form
    d value / d z_ik = p_ik * (per_class_k + per_pixel_i) + [k = target_i] * at_target_i at valid pixels i
    (p: the softmax; 0 at ignored pixels), which the cross-entropy and the soft Tversky losses take."""

    value: Tensor  # () fp32
    per_class: Tensor  # (C,)
    per_pixel: Tensor  # (B,H,W)
    at_target: Tensor  # (B,H,W), 0 at ignored pixels

    def __add__(self, other: ClosedForm) -> ClosedForm:
        return ClosedForm(*(a + b for a, b in zip(astuple(self), astuple(other))))

    def __rmul__(self, weight: float) -> ClosedForm:
        return ClosedForm(*(weight * a for a in astuple(self)))

    def logit_grad(self, batch: SoftmaxBatch) -> Tensor:
        """The gradient (B,C,H,W) fp32 with respect to the logits."""
        c = batch.probs.shape[1]
        grad = batch.probs * self.per_pixel.float().unsqueeze(1)
        grad.addcmul_(batch.probs, self.per_class.float().view(1, c, *[1] * (grad.ndim - 2)))
        return grad.scatter_add_(1, batch.target.unsqueeze(1), self.at_target.float().unsqueeze(1))


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
        valid = target != self.ignore_index  # (B,H,W)
        safe = torch.where(valid, target, 0)
        probs = logp.exp() * valid.unsqueeze(1)
        p_true = probs.gather(1, safe.unsqueeze(1)).squeeze(1)
        return self._value(*self._index(*self._class_sums(probs, p_true, safe, valid)))

    @property
    def has_closed_form(self) -> bool:
        return True

    def closed_form(self, batch: SoftmaxBatch) -> ClosedForm:
        tp, fn, count, prob_sum = self._class_sums(batch.probs, batch.p_true, batch.target, batch.valid)
        index, present = self._index(tp, fn, count, prob_sum)
        # index = (tp + smooth) / D with D = max(tp + alpha fp + beta fn + smooth, eps), fp = max(prob_sum - tp, 0),
        # fn = count - tp. a_c = d loss / d tp_c, b_c = d loss / d prob_sum_c; a clamp that holds passes nothing.
        weight = present * self.weight
        dloss_dindex = -weight / weight.sum().clamp_min(self.eps)
        fp_open = (prob_sum - tp >= 0).to(tp.dtype)
        raw = tp + self.alpha * (prob_sum - tp).clamp_min(0) + self.beta * fn + self.smooth
        denom = raw.clamp_min(self.eps)
        open_ = (raw >= self.eps).to(tp.dtype)
        a = dloss_dindex * (1 - index * open_ * (1 - self.alpha * fp_open - self.beta)) / denom
        b = dloss_dindex * -index * open_ * self.alpha * fp_open / denom
        # d loss / d p_ic = a_c [y_i = c] + b_c at valid pixels, so through the softmax
        # d loss / d z_ik = p_ik (b_k - a_{y_i} p_{i y_i} - p_i . b) + [k = y_i] a_{y_i} p_{i y_i}
        a_true = a.float()[batch.target] * batch.p_true  # (B,H,W), 0 at ignored pixels
        p_dot_b = (batch.probs * b.float().view(1, -1, *[1] * (batch.probs.ndim - 2))).sum(1)
        return ClosedForm(self._value(index, present), b, -(a_true + p_dot_b), a_true)

    def _class_sums(
        self, probs: Tensor, p_true: Tensor, target: Tensor, valid: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """tp, fn, count and prob_sum per class (C,), from ``probs`` (B,C,H,W) and ``p_true`` (B,H,W), both 0 at
        ignored pixels, ``target`` (B,H,W) with any class at ignored pixels and ``valid`` (B,H,W) bool."""
        # No one-hot tensor (B,C,H,W): per class c, tp = the summed probability of c on c's pixels, fn = the summed
        # 1 - p there, fp = the summed probability of c on all valid pixels - tp. The same sums in fewer passes over
        # the batch: the one-hot form made the CamVid preset's step 1.2-1.35x slower (experiments/bench/README.md).
        # The sums are taken in float64: fp is a small difference of two sums over up to millions of pixels, and
        # scatter_add adds one value at a time (in fp32 that lost a third of fp on a preset-sized batch).
        exact = torch.float32 if probs.device.type == "mps" else torch.float64  # MPS has no float64
        dims = (0, *range(2, probs.ndim))
        valid_d = valid.flatten().to(exact)
        per_class = probs.new_zeros(probs.shape[1], dtype=exact)
        flat, p_true = target.flatten(), p_true.flatten().to(exact)
        tp = per_class.scatter_add(0, flat, p_true)
        fn = per_class.scatter_add(0, flat, valid_d - p_true)
        count = per_class.scatter_add(0, flat, valid_d)
        # a plain sum, not an einsum: autocast would take the einsum's matmul to bf16 (or fp16, which overflows)
        return tp, fn, count, probs.sum(dims, dtype=exact)

    def _index(self, tp: Tensor, fn: Tensor, count: Tensor, prob_sum: Tensor) -> tuple[Tensor, Tensor]:
        """The Tversky index per class and whether the class is present in the batch's targets, both (C,)."""
        fp = (prob_sum - tp).clamp_min(0)  # >= 0 but for rounding
        index = (tp + self.smooth) / (tp + self.alpha * fp + self.beta * fn + self.smooth).clamp_min(self.eps)
        return index, (count > 0).to(tp.dtype)

    def _value(self, index: Tensor, present: Tensor) -> Tensor:
        weight = present * self.weight  # classes absent from the batch's targets left out
        return (((1 - index) * weight).sum() / weight.sum().clamp_min(self.eps)).float()


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
        return ClosedForm(value, weight.new_zeros(batch.logp.shape[1]), weight, -weight)

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
