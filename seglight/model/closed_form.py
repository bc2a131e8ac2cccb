"""Softmax losses that train with their gradient in closed form.

A loss that can start from log-probabilities (``FromLogProbs``) may also give its value and its gradient with respect
to the logits in closed form (``closed_form``), where the gradient takes the form ``ClosedForm`` names. A sum of such
losses then trains through ``ClosedFormLoss``: one log-softmax, a few passes over the logits (B,C,H,W) and one
gradient, where autograd's graph wrote many full-size intermediates. Cross-entropy and the soft Tversky family
(seglight.model.losses, seglight.model.tversky) have it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


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
        return self.autograd_path(logits, target)

    def autograd_path(self, logits: Tensor, target: Tensor) -> Tensor:
        """The loss through autograd's graph: what ``forward`` takes where no closed form applies, and the reference
        the closed form is tested and timed against."""
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
    with respect to the logits (B,C,H,W) is computed with the value, kept in fp32 (contiguous) until the backward
    pass and only then, times the incoming gradient (under 16-mixed: the GradScaler's scale), cast to the logits'
    dtype: cast first, most of a fp16 gradient would fall below fp16's range. The CamVid preset's step ran 1.12-1.23x
    as fast as with autograd's graph, which writes many full-size intermediates (experiments/bench/README.md)."""

    @staticmethod
    def forward(ctx: Any, logits: Tensor, target: Tensor, terms: list[tuple[float, FromLogProbs]]) -> Tensor:
        with torch.autocast(logits.device.type, enabled=False):
            batch = SoftmaxBatch.of(logits, target, terms[0][1].ignore_index)
            forms = [weight * loss.closed_form(batch) for weight, loss in terms]
            total = sum(forms[1:], forms[0])
            ctx.save_for_backward(total.logit_grad(batch))
        ctx.dtype = logits.dtype
        return total.value

    @staticmethod
    def backward(ctx: Any, grad_value: Tensor) -> tuple[Tensor, None, None]:
        if torch.is_grad_enabled():  # create_graph=True: a gradient penalty would silently get no gradient
            raise RuntimeError("the closed-form losses have no second derivative (a gradient of their gradient)")
        (grad,) = ctx.saved_tensors
        return (grad * grad_value).to(ctx.dtype), None, None


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
        # contiguous: the ops below ran slower on channels_last logits (noisy runs; experiments/bench/README.md)
        logp = log_probs(logits.to(torch.float32, memory_format=torch.contiguous_format))
        valid = target != ignore_index
        safe = torch.where(valid, target, 0)
        probs = logp.exp().mul_(valid.unsqueeze(1))
        return cls(logp, probs, safe, valid, probs.gather(1, safe.unsqueeze(1)).squeeze(1))


@dataclass
class ClosedForm:
    """A loss value and its gradient with respect to the logits z (B,C,H,W) in the form
    d value / d z_ik = p_ik * (per_class_k + per_pixel_i) + [k = target_i] * at_target_i at valid pixels i
    (p: the softmax; 0 at ignored pixels), which the cross-entropy and the soft Tversky losses take. A ``per_class``
    of None stands for 0 (the cross-entropy's): the gradient of cross-entropy alone takes one full-size pass less."""

    value: Tensor  # () fp32
    per_class: Tensor | None  # (C,)
    per_pixel: Tensor  # (B,H,W)
    at_target: Tensor  # (B,H,W), 0 at ignored pixels

    def __add__(self, other: ClosedForm) -> ClosedForm:  # field by field: dataclasses.astuple deep-copies tensors
        per_class = _plus(self.per_class, other.per_class)
        return ClosedForm(
            self.value + other.value, per_class, self.per_pixel + other.per_pixel, self.at_target + other.at_target
        )

    def __rmul__(self, weight: float) -> ClosedForm:
        per_class = None if self.per_class is None else weight * self.per_class
        return ClosedForm(weight * self.value, per_class, weight * self.per_pixel, weight * self.at_target)

    def logit_grad(self, batch: SoftmaxBatch) -> Tensor:
        """The gradient (B,C,H,W) fp32 with respect to the logits."""
        c = batch.probs.shape[1]
        grad = batch.probs * self.per_pixel.float().unsqueeze(1)
        if self.per_class is not None:
            grad.addcmul_(batch.probs, self.per_class.float().view(1, c, *[1] * (grad.ndim - 2)))
        return grad.scatter_add_(1, batch.target.unsqueeze(1), self.at_target.float().unsqueeze(1))


def _plus(a: Tensor | None, b: Tensor | None) -> Tensor | None:
    """a + b, where None stands for 0."""
    return b if a is None else a if b is None else a + b
