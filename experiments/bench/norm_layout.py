"""GroupNorm on channels_last: the CamVid preset's step with smp's GroupNorm as it is and run contiguous.

seglight puts models in channels_last (``seglight.model.memory_format.to_channels_last``), and torch's CPU GroupNorm
is slow on channels_last input. Since session 26 each GroupNorm of such a model is a ``ContiguousGroupNorm``: the
same norm on a contiguous copy of its input. This bench measures, arms taking turns in one process:

- ``norm_alone``: GroupNorm(32, 32) forward + backward at the preset's largest decoder shape (8,32,56,64), bf16
  input and fp32 weights as under autocast: plain on channels_last, ContiguousGroupNorm on channels_last, plain on a
  contiguous input (ms);
- the step of the preset's model (``experiment=camvid``: light FPN on RegNetX-400MF, batch 8, 224x256, channels_last,
  the precision ``precision=auto`` picks, its loss) on one synthetic batch in memory, with ``contiguous_gn`` (as
  built now) and ``plain_gn`` (its GroupNorms made plain again); img/s and ``speedup`` = contiguous_gn / plain_gn;
- ``--trainer N``: the same two arms in seglight's Trainer on the preset's real batches (2 warm-up steps, then N).

Prints one JSON line; --out writes it.

    python experiments/bench/norm_layout.py [--repeats 5] [--steps 4] [--trainer 30] [--out FILE]
"""

from __future__ import annotations

import copy
import functools
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from run import (  # noqa: E402
    arm_args,
    cpu_name,
    emit,
    in_turns,
    preset_module,
    rates_summary,
    step_rates,
    synthetic_batch,
    train_step,
    trainer_rates,
)

from seglight.model.memory_format import ContiguousGroupNorm  # noqa: E402
from seglight.util.hardware import autocast_dtype, resolve_precision  # noqa: E402

ARMS = ["contiguous_gn", "plain_gn"]


def plain_group_norms(model: nn.Module) -> nn.Module:
    """``model`` (in place) with each ContiguousGroupNorm made a plain nn.GroupNorm again: as before session 26."""
    for m in model.modules():
        if type(m) is ContiguousGroupNorm:
            m.__class__ = nn.GroupNorm
    return model


def norm_alone(repeats: int, shape: tuple[int, ...] = (8, 32, 56, 64)) -> dict[str, float]:
    """ms of GroupNorm(32, C) forward + backward on a bf16 input (fp32 weights, as under autocast), per arm."""
    torch.manual_seed(0)
    arms = {
        "plain_channels_last": (nn.GroupNorm(32, shape[1]), torch.channels_last),
        "contiguous_gn_channels_last": (ContiguousGroupNorm(32, shape[1]), torch.channels_last),
        "plain_contiguous": (nn.GroupNorm(32, shape[1]), torch.contiguous_format),
    }
    x0, g0 = torch.randn(shape).bfloat16(), torch.randn(shape).bfloat16()
    times: dict[str, list[float]] = {k: [] for k in arms}
    for name in in_turns(list(arms), repeats):
        norm, fmt = arms[name]
        x = x0.contiguous(memory_format=fmt).requires_grad_()
        g = g0.contiguous(memory_format=fmt)
        norm(x).backward(g)  # warm-up
        start = time.perf_counter()
        for _ in range(10):
            norm(x).backward(g)
        times[name].append((time.perf_counter() - start) / 10 * 1e3)
    return {f"norm_alone_{k}_ms": statistics.median(v) for k, v in times.items()}


def main() -> None:
    args = arm_args(__doc__)
    work = Path(tempfile.mkdtemp())
    cfg, dm, module = preset_module(work)
    fast = module.model
    models = {"contiguous_gn": fast, "plain_gn": plain_group_norms(copy.deepcopy(fast))}
    dtype = autocast_dtype(resolve_precision(cfg.trainer.precision, "cpu"))
    x, y = synthetic_batch(dm, torch.channels_last)
    with torch.no_grad(), torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        same = [models[k].eval()(x).float() for k in ARMS]  # eval: without the decoder's dropout
    for m in models.values():
        m.train()
    gap = float((same[0] - same[1]).abs().max() / same[1].abs().max())
    if gap > 2e-2:
        raise SystemExit(f"the two arms' logits differ by {gap:.3g} (relative)")
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    steps = {}
    for k, m in models.items():
        opt = torch.optim.AdamW(m.parameters(), lr=cfg.optimizer.lr)
        steps[k] = functools.partial(train_step, m, module.loss_fn, x, y, opt, scaler, dtype)
    rates = step_rates(steps, args.repeats, args.steps, dm.batch_size)
    result: dict[str, float | str] = {
        "cpu": cpu_name(),
        "precision": str(dtype),
        "logits_gap_relative": gap,
        **norm_alone(args.repeats),
        **rates_summary(rates, *ARMS),
    }
    if args.trainer:
        edits = {"contiguous_gn": None, "plain_gn": lambda m: plain_group_norms(m.model)}
        trainer = trainer_rates(work, edits, args.repeats, args.trainer)
        result |= rates_summary(trainer, *ARMS, prefix="trainer_")
    emit(result, args.out)


if __name__ == "__main__":
    main()
