"""The CamVid preset's training step with its loss as it is and as it was: what dice_ce costs the step.

The preset's model (``experiment=camvid``: the light FPN on RegNetX-400MF, batch 8, 224x256 crops, channels_last,
the precision ``precision=auto`` picks) takes AdamW steps on one synthetic batch in memory with, in turn:

- ``dice_ce``: the loss as built now (one log-softmax shared by both terms, the Dice sums without a one-hot tensor);
- ``dice_ce_one_hot``: the same loss as it was until session 25 (two softmaxes, a one-hot target (B,C,H,W));
- ``ce``: cross-entropy alone, the floor a Dice term can approach.

The arms take turns, ``--repeats`` times; medians of img/s, and ``speedup`` = dice_ce / dice_ce_one_hot in the same
run. ``--trainer N`` also times seglight's Trainer on the preset's real batches (its DataModule, loader worker and
callbacks; 2 warm-up steps, then N) with each dice_ce in turn: whether the step's gain reaches the epoch.
Prints one JSON line; --out writes it.

    python experiments/bench/loss_step.py [--repeats 5] [--steps 4] [--trainer 30] [--out FILE]
"""

from __future__ import annotations

import functools
import statistics
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).parent))
from run import (  # noqa: E402
    arm_args,
    cpu_name,
    emit,
    preset_module,
    rates_summary,
    step_rates,
    synthetic_batch,
    train_step,
    trainer_rates,
)

from seglight.model.losses import build_loss  # noqa: E402
from seglight.util.hardware import autocast_dtype, resolve_precision  # noqa: E402


class OneHotDiceCE(nn.Module):
    """dice_ce as seglight computed it until session 25: softmax, a one-hot target, four products of (B,C,N), then
    cross-entropy on its own log-softmax. Same value as ``build_loss("dice_ce", ...)``."""

    def __init__(self, num_classes: int, ignore_index: int, weight: Tensor | None) -> None:
        super().__init__()
        self.c, self.ignore = num_classes, ignore_index
        self.register_buffer("weight", weight if weight is not None else torch.ones(num_classes))
        self.ce = build_loss("ce", num_classes, ignore_index, None if weight is None else weight.tolist())

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        b = logits.shape[0]
        probs = logits.float().softmax(dim=1).reshape(b, self.c, -1)
        flat = target.reshape(b, -1)
        valid = (flat != self.ignore).unsqueeze(1)
        one_hot = F.one_hot(torch.where(valid.squeeze(1), flat, 0), self.c).permute(0, 2, 1).float() * valid
        probs = probs * valid
        tp = (probs * one_hot).sum((0, 2))
        fp = (probs * (1 - one_hot)).sum((0, 2))
        fn = ((1 - probs) * one_hot).sum((0, 2))
        index = tp / (tp + 0.5 * fp + 0.5 * fn).clamp_min(1e-7)
        present = (one_hot.sum((0, 2)) > 0).float() * self.weight
        dice = ((1 - index) * present).sum() / present.sum().clamp_min(1e-7)
        return dice + self.ce(logits, target)


def setattr_loss(module: nn.Module, loss: nn.Module) -> None:
    """A Trainer arm: ``module`` with ``loss`` in place of its configured one."""
    module.loss_fn = loss


def main() -> None:
    args = arm_args(__doc__)
    work = Path(tempfile.mkdtemp())
    cfg, dm, module = preset_module(work)
    fmt = torch.channels_last if cfg.model.channels_last else torch.contiguous_format
    model = module.model.to(memory_format=fmt)
    dtype = autocast_dtype(resolve_precision(cfg.trainer.precision, "cpu"))
    weight = module.loss_fn.terms["dice"].weight
    arms = {
        "dice_ce": module.loss_fn,
        "dice_ce_one_hot": OneHotDiceCE(dm.num_classes, dm.ignore_index, weight),
        "ce": module.loss_fn.terms["ce"],
    }
    x, y = synthetic_batch(dm, fmt, void=True)
    with torch.no_grad(), torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        out = model(x)
        same = [float(arms[k](out, y)) for k in ("dice_ce", "dice_ce_one_hot")]
    if abs(same[0] - same[1]) > 1e-4 * abs(same[1]):
        raise SystemExit(f"the two dice_ce differ: {same}")
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.optimizer.lr)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    steps = {k: functools.partial(train_step, model, loss, x, y, optimizer, scaler, dtype) for k, loss in arms.items()}
    rates = step_rates(steps, args.repeats, args.steps, dm.batch_size)
    med = {k: statistics.median(v) for k, v in rates.items()}
    result = {
        "cpu": cpu_name(),
        "precision": str(dtype),
        **rates_summary(rates, "dice_ce", "dice_ce_one_hot"),
        "dice_share_now": 1 - med["dice_ce"] / med["ce"],
        "dice_share_before": 1 - med["dice_ce_one_hot"] / med["ce"],
    }
    if args.trainer:
        edits = {k: functools.partial(setattr_loss, loss=arms[k]) for k in ("dice_ce", "dice_ce_one_hot")}
        trainer = trainer_rates(work, edits, args.repeats, args.trainer)
        result |= rates_summary(trainer, "dice_ce", "dice_ce_one_hot", prefix="trainer_")
    emit(result, args.out)


if __name__ == "__main__":
    main()
