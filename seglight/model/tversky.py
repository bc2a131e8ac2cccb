"""The soft Tversky loss family: Dice (alpha = beta = 0.5), Jaccard (alpha = beta = 1) and Tversky."""

from __future__ import annotations

import torch
from torch import Tensor

from seglight.model.closed_form import ClosedForm, FromLogProbs, SoftmaxBatch


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
        raw = self._denominator(tp, fn, prob_sum)
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

    def _denominator(self, tp: Tensor, fn: Tensor, prob_sum: Tensor) -> Tensor:
        """tp + alpha fp + beta fn + smooth per class (C,), before its clamp at eps; fp = prob_sum - tp."""
        fp = (prob_sum - tp).clamp_min(0)  # >= 0 but for rounding
        return tp + self.alpha * fp + self.beta * fn + self.smooth

    def _index(self, tp: Tensor, fn: Tensor, count: Tensor, prob_sum: Tensor) -> tuple[Tensor, Tensor]:
        """The Tversky index per class and whether the class is present in the batch's targets, both (C,)."""
        index = (tp + self.smooth) / self._denominator(tp, fn, prob_sum).clamp_min(self.eps)
        return index, (count > 0).to(tp.dtype)

    def _value(self, index: Tensor, present: Tensor) -> Tensor:
        weight = present * self.weight  # classes absent from the batch's targets left out
        return (((1 - index) * weight).sum() / weight.sum().clamp_min(self.eps)).float()
