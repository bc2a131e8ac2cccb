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
    """SegmentationModule rebuilt from a checkpoint's hyperparameters and weights (or from an exported folder,
    ``load_folder``), in eval mode."""
    if Path(path).is_dir():
        return load_folder(Path(path)).to(device).eval()
    ckpt = load_checkpoint(path)
    hp = dict(ckpt["hyper_parameters"])
    hp["encoder_weights"] = None  # the trained weights come from the state dict, not a file or the hub
    module = SegmentationModule(**hp)
    module.load_state_dict(ckpt["state_dict"])
    module.on_load_checkpoint(ckpt)  # the run's recorded data split
    return module.to(device).eval()


def load_folder(folder: Path) -> SegmentationModule:
    """A folder of ``export format=hf`` (smp's save_pretrained files + seglight.json) as a SegmentationModule
    for prediction: smp's model with seglight's classes, colours, normalisation and temperature."""
    import json

    import segmentation_models_pytorch as smp

    meta_file = folder / "seglight.json"
    if not meta_file.exists() or not (folder / "config.json").exists():
        raise FileNotFoundError(f"{folder}: not an exported model folder (needs config.json and seglight.json)")
    info = json.loads(meta_file.read_text())
    module = SegmentationModule(
        info["class_names"],
        arch=info["arch"],
        encoder_name=info["encoder_name"],
        in_channels=info.get("in_channels", 3),
        colors=info["colors"],
        ignore_index=info["ignore_index"],
        mean=info["mean"],
        std=info["std"],
    )
    module.model = smp.from_pretrained(str(folder))  # the architecture and weights as smp saved them
    module.temperature = float(info.get("temperature", 1.0))
    module.code_version = info.get("code_version")
    split = folder / "data_split.json"  # written by export format=hf (seglight.inference.hub.DATA_SPLIT)
    module.data_split = json.loads(split.read_text()) if split.exists() else None
    return module
