"""The CamVid preset's step with dice_ce's closed-form gradient and the fused AdamW, against the step before them.

Since session 27 a loss made of cross-entropy and soft Tversky / Dice terms computes its gradient with respect to
the logits in closed form (``seglight.model.closed_form.ClosedFormLoss``) instead of through autograd's graph of
full-size intermediates, and Adam and AdamW take torch's fused step on CPU and CUDA
(``seglight.model.optim.build_optimizer``). Arms, taking turns in one process:

- ``now``: the loss's closed form and the fused AdamW (as built now);
- ``autograd_loss``: the same loss through autograd's graph (``AutogradLoss``), the fused AdamW;
- ``foreach_adamw``: the closed form, torch's default multi-tensor AdamW;
- ``before``: autograd's graph and the multi-tensor AdamW (the step as it was in session 26).

The step of the preset's model (``experiment=camvid``: light FPN on RegNetX-400MF, batch 8, 224x256, channels_last,
the precision ``precision=auto`` picks) on one synthetic batch in memory; img/s (medians) and ``speedup`` = now /
before. ``--trainer N``: ``now`` and ``before`` in seglight's Trainer on the preset's real batches (2 warm-up steps,
then N). Prints one JSON line; --out writes it.

    python experiments/bench/closed_form_step.py [--repeats 5] [--steps 4] [--trainer 30] [--out FILE]
"""

from __future__ import annotations

import functools
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).parent))
import run  # noqa: E402

from seglight.model.losses import WeightedSum  # noqa: E402
from seglight.util.hardware import autocast_dtype, resolve_precision  # noqa: E402


class AutogradLoss(nn.Module):
    """The loss it wraps through autograd's graph (``WeightedSum.autograd_path``): dice_ce as it ran until session
    27. Same value."""

    def __init__(self, loss: WeightedSum) -> None:
        super().__init__()
        self.loss = loss

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return self.loss.autograd_path(logits, target)


def before(module: Any, loss: bool = True, adamw: bool = True) -> None:
    """A Trainer arm: ``module`` with autograd's loss (``loss``) and the multi-tensor AdamW (``adamw``)."""
    if loss:
        module.loss_fn = AutogradLoss(module.loss_fn)
    if adamw:
        module.hparams.optimizer_kwargs = {**(module.hparams.optimizer_kwargs or {}), "fused": False}


def main() -> None:
    args = run.arm_args(__doc__)
    work = Path(tempfile.mkdtemp())
    cfg, dm, module = run.preset_module(work)
    model = module.model  # channels_last as the module put it (the preset's model.channels_last)
    fmt = torch.channels_last if cfg.model.channels_last else torch.contiguous_format
    dtype = autocast_dtype(resolve_precision(cfg.trainer.precision, "cpu"))
    closed, graph = module.loss_fn, AutogradLoss(module.loss_fn)
    x, y = run.synthetic_batch(dm, fmt, void=True)
    with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        out = model(x)
        same = [loss(out, y).item() for loss in (closed, graph)]  # out needs a gradient: the closed form
    if abs(same[0] - same[1]) > 1e-5 * abs(same[1]):
        raise SystemExit(f"the two losses differ: {same}")
    params = list(model.parameters())
    fused = torch.optim.AdamW(params, lr=cfg.optimizer.lr, fused=True)
    foreach = torch.optim.AdamW(params, lr=cfg.optimizer.lr, foreach=True)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    arms = {"now": (closed, fused), "autograd_loss": (graph, fused), "foreach_adamw": (closed, foreach)}
    arms["before"] = (graph, foreach)
    step = functools.partial(run.train_step, model, x=x, y=y, scaler=scaler, dtype=dtype)
    steps = {k: functools.partial(step, loss_fn=loss, optimizer=opt) for k, (loss, opt) in arms.items()}
    rates = run.step_rates(steps, args.repeats, args.steps, dm.batch_size)
    result = {"cpu": run.cpu_name(), "precision": str(dtype), **run.rates_summary(rates, "now", "before")}
    for arm in ("autograd_loss", "foreach_adamw"):
        result[f"speedup_now_vs_{arm}"] = result["now_img_s"] / result[f"{arm}_img_s"]
    if args.trainer:
        trainer = run.trainer_rates(work, {"now": None, "before": before}, args.repeats, args.trainer)
        result |= run.rates_summary(trainer, "now", "before", prefix="trainer_")
    run.emit(result, args.out)


if __name__ == "__main__":
    main()
