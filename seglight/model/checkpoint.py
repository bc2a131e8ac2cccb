"""Checkpoint files: written atomically, loaded safely.

Saving: ``AtomicCheckpointIO`` writes a temporary file beside the target, fsyncs it and renames it over
the target, so a kill at any moment leaves either the old or the new checkpoint, never a torn one
(Lightning's own save moves a file from the system temp dir, which is a copy across filesystems).
Loading: ``torch.load(weights_only=True)``, so a checkpoint crafted to run code when unpickled is
refused instead of executed.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from seglight.model.module import SegmentationModule
from seglight.util.files import atomic_write


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning CheckpointIO: temp file in the same folder, fsync, os.replace."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        atomic_write(path, lambda f: torch.save(checkpoint, f), fsync=True)


class UnsafeCheckpointError(RuntimeError):
    """The checkpoint holds objects other than tensors and plain values."""


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict, loaded with weights_only=True (tensors, numbers, strings, lists, dicts)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise UnsafeCheckpointError(
            f"{path}: refused to load: it holds objects other than tensors and plain values, which could run code "
            f"when unpickled. Only load it with weights_only=False if you trust its source. ({str(e).splitlines()[0]})"
        ) from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "hyper_parameters" not in ckpt:
        raise ValueError(f"{path}: not a seglight checkpoint (needs state_dict and hyper_parameters)")
    return ckpt


def load_module(path: str | Path, device: str | torch.device = "cpu") -> SegmentationModule:
    """SegmentationModule rebuilt from a checkpoint's hyperparameters and weights, in eval mode."""
    ckpt = load_checkpoint(path)
    hp = dict(ckpt["hyper_parameters"])
    hp["encoder_weights"] = None  # the trained weights come from the state dict, not a file or the hub
    module = SegmentationModule(**hp)
    module.load_state_dict(ckpt["state_dict"])
    module.on_load_checkpoint(ckpt)  # the run's recorded data split
    return module.to(device).eval()
