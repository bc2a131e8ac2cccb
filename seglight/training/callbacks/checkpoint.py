"""The run's checkpoint callback: Lightning's ModelCheckpoint that keeps its scores when the run dir moves."""

from __future__ import annotations

import os
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint

from seglight.model.checkpoint import SAVED_AS


class RunCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that follows its run dir when the run is resumed from another place.

    Lightning restores a ModelCheckpoint's scores only when the checkpoint's saved dirpath is the current one:
    a run dir moved (or copied off a cluster) and resumed forgot best.ckpt's score, and its next validation wrote a
    worse model over it. Here the saved paths are moved to ``dirpath`` when this callback's best file is there
    (or it saved none); otherwise Lightning's behaviour stands (a new best is started). The state is saved under
    ModelCheckpoint's key, so checkpoints of either class resume in the other.

    Each file it writes records its name and, when it is the callback's best file, the metric that chose it
    (``SAVED_AS``), so a best.ckpt copied under another name still says it was chosen on val
    (``seglight.model.checkpoint.chosen_on``).
    """

    _writing: str | None = None

    def save(self, trainer: pl.Trainer, filepath: str) -> None:
        """Writes the trainer's checkpoint to ``filepath`` as this callback's file (marked ``SAVED_AS``)."""
        self._writing = filepath
        try:
            super()._save_checkpoint(trainer, filepath)
        finally:
            self._writing = None

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        self.save(trainer, filepath)

    def on_save_checkpoint(self, trainer: pl.Trainer, module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        if self._writing is not None:  # chosen: this callback's best file (not its last, kept top-k or crash file)
            best = os.path.abspath(self._writing) == os.path.abspath(self.best_model_path or "")
            checkpoint[SAVED_AS] = {"file": os.path.basename(self._writing), "monitor": self.monitor if best else None}

    @property
    def state_key(self) -> str:
        return super().state_key.replace(type(self).__qualname__, ModelCheckpoint.__qualname__, 1)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        old, new = state_dict.get("dirpath"), str(self.dirpath or "")
        best = state_dict.get("best_model_path")
        if old and new and old != new and (not best or os.path.isfile(os.path.join(new, os.path.basename(best)))):
            state_dict = dict(state_dict, dirpath=new)
            for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
                if key in state_dict:
                    state_dict[key] = _rebase(state_dict[key], old, new)
            models = state_dict.get("best_k_models", {})
            state_dict["best_k_models"] = {_rebase(p, old, new): v for p, v in models.items()}
        super().load_state_dict(state_dict)


def _rebase(path: str, old: str, new: str) -> str:
    """``path`` in folder ``new`` when it is a file of folder ``old``."""
    return os.path.join(new, os.path.basename(path)) if path and os.path.dirname(path) == old else path
