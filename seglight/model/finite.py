"""Stopping training on a non-finite loss, without a host sync per step on accelerators."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch import Tensor


class NonFiniteCheck:
    """Raises FloatingPointError on a non-finite training loss, before validation or a checkpoint sees the weights.

    On CPU it looks at every step (reading a CPU tensor costs nothing). On an accelerator reading the loss would
    sync the host every step, so a flag is kept on the device and read every ``log_every_n_steps`` steps (when
    Lightning reads logged values anyway), on the last batch of each epoch, at the end of every epoch (one that
    ``max_time`` or ``max_steps`` cut short has no last batch) and before every validation during fit.
    """

    def __init__(self) -> None:
        self.flag: Tensor | None = None  # on accelerators: a non-finite loss since the last read

    @staticmethod
    def defers(loss: Tensor) -> bool:
        return loss.device.type != "cpu"

    def step(self, module: pl.LightningModule, loss: Tensor, batch_idx: int) -> None:
        bad = ~torch.isfinite(loss.detach())
        if not self.defers(loss):
            self._stop_if(bad, module, f"at global step {module.global_step}", batch_idx)
            return
        self.flag = bad if self.flag is None else self.flag | bad
        every = max(1, int(getattr(module.trainer, "log_every_n_steps", 1)))
        if (module.global_step + 1) % every == 0 or module.trainer.is_last_batch:
            self.read(module, batch_idx)

    def read(self, module: pl.LightningModule, batch_idx: int | None = None) -> None:
        """Reads the deferred flag now: in a training step (``batch_idx``), at the end of an epoch, and before a
        validation during fit (``max_time`` validates an epoch it cuts short before the epoch ends)."""
        bad, self.flag = self.flag, None
        if bad is not None:
            when = (
                f"by global step {module.global_step - 1}"
                if batch_idx is None
                else f"at global step {module.global_step}"
            )
            self._stop_if(bad, module, when, batch_idx)

    @staticmethod
    def _stop_if(bad: Tensor, module: pl.LightningModule, when: str, batch_idx: int | None) -> None:
        """Raises on every rank if any rank saw a non-finite loss (one rank stopping alone would hang the others)."""
        trainer = module._trainer  # None: a step called outside fit (tests)
        if trainer.strategy.reduce_boolean_decision(bool(bad), all=False) if trainer else bool(bad):
            where = f"epoch {module.current_epoch}" + ("" if batch_idx is None else f", batch {batch_idx}")
            raise FloatingPointError(
                f"non-finite training loss {when} ({where}; on an accelerator it may have started up to "
                "log_every_n_steps earlier); stopping. The last checkpoint is kept: lower the learning rate, check "
                "the data (python -m seglight.check_data) or use trainer.precision=32"
            )
