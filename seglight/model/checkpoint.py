"""Checkpoint files: written atomically, loaded safely.

Saving: ``AtomicCheckpointIO`` writes a temporary file beside the target, fsyncs it and renames it over
the target, so a kill at any moment leaves either the old or the new checkpoint, never a torn one
(Lightning's own save moves a file from the system temp dir, which is a copy across filesystems).
Loading: ``torch.load(weights_only=True)``, so a checkpoint crafted to run code when unpickled is
refused instead of executed.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from seglight.data.io import DataError
from seglight.data.splits import SplitFiles, recorded_images
from seglight.model.factory import saved_module
from seglight.model.module import SegmentationModule
from seglight.model.tiling import TILE_OVERLAP, TILE_SIZE
from seglight.util.files import atomic_write

log = logging.getLogger(__name__)


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
    with saved_module(str(path)):  # model_kwargs older checkpoints saved that smp dropped are left out
        module = SegmentationModule(**hp)
    module.load_state_dict(ckpt["state_dict"])
    module.on_load_checkpoint(ckpt)  # the run's recorded data split
    module.chosen_on = chosen_on(ckpt, path)
    return module.to(device).eval()


SAVED_AS = "saved_as"  # the checkpoint callback that wrote a file: {"file": name, "monitor": metric or None}


def chosen_on(ckpt: dict[str, Any], path: str | Path) -> str | None:
    """The metric that chose the checkpoint at ``path`` among its run's validations (``val/mIoU`` for best.ckpt),
    None for the others (last.ckpt: the weights the run ended with). Read from ``SAVED_AS`` (written by a monitored
    callback, under any name it has now); in checkpoints from before that key, from the file name: the best file of
    a monitored checkpoint callback whose state it carries."""
    if isinstance(saved := ckpt.get(SAVED_AS), dict):
        return str(saved["monitor"]) if saved.get("monitor") else None
    for state in (ckpt.get("callbacks") or {}).values():
        best = state.get("best_model_path") if isinstance(state, dict) and state.get("monitor") else None
        if best and Path(best).name == Path(path).resolve().name:  # a link to best.ckpt too; not a renamed copy
            return str(state["monitor"])
    return None


def init_weights(module: SegmentationModule, ckpt: dict[str, Any], path: str | Path) -> None:
    """Loads the model weights of ``ckpt`` (the seglight checkpoint read from ``path``) into ``module.model``, the
    start of a fine-tuning run with its own loss, optimizer and schedule (``init_from``; not a resume). The
    architecture, encoder, input channels and classes must be the checkpoint's: a mismatch is an error naming
    the file."""
    theirs, mine = ckpt["hyper_parameters"], module.hp
    for key in ("arch", "encoder_name", "in_channels", "class_names"):
        if key in theirs and list_or_value(theirs[key]) != list_or_value(mine.get(key)):
            raise ValueError(f"init_from={path}: its {key} is {theirs.get(key)!r}, this run's is {mine.get(key)!r}")
    weights = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    try:
        module.model.load_state_dict(weights)
    except RuntimeError as e:  # model_kwargs differ: missing, unexpected or reshaped tensors
        detail = " ".join(str(e).split())[:400]
        raise ValueError(f"init_from={path}: its weights do not fit this run's model ({detail})") from None


def list_or_value(value: Any) -> Any:
    """Lists and tuples as lists (hyperparameters come back from a checkpoint as either)."""
    return list(value) if isinstance(value, (list, tuple)) else value


def trained_on_val(data_split: dict[str, Any] | None) -> bool | None:
    """Whether a checkpoint's run trained on its val images too (``data.train_on_val``); None: no split recorded."""
    return None if data_split is None else bool(data_split.get("data", {}).get("train_on_val"))


def trained_on(data_split: dict[str, Any] | None) -> set[str] | None:
    """The image files (absolute paths) a checkpoint's weights were trained on before its own run: those of the
    checkpoint it was fine-tuned from (``init_from``, recorded by ``inherited``); empty when there was none, None
    when there was one whose images are not known."""
    start = (data_split or {}).get("init_from")
    if start is None:
        return set()
    return None if start.get("trained_on") is None else set(start["trained_on"])


def trained_normalisation(ckpt: dict[str, Any]) -> tuple[list, list] | None:
    """The mean and std a checkpoint's weights were trained with; None where it recorded none."""
    hp = ckpt.get("hyper_parameters") or {}
    return None if hp.get("mean") is None else (list(hp["mean"]), list(hp["std"]))


def start_normalisation(init: dict[str, Any], path: str | Path, in_channels: int) -> tuple[list, list] | None:
    """``trained_normalisation`` of the start checkpoint ``init`` (read from ``path``) for a run reading
    ``in_channels`` channels. A start reading other channels is an error naming the file."""
    hp = init["hyper_parameters"]
    if hp.get("in_channels", 3) != in_channels:
        raise ValueError(f"init_from={path}: its in_channels is {hp.get('in_channels', 3)}, this run's {in_channels}")
    return trained_normalisation(init)


def inherited(
    path: str | Path, init: dict[str, Any], splits: SplitFiles, data: dict[str, Any], files: dict[str, list[str]]
) -> dict[str, Any]:
    """What a run on the data config ``data`` (its folders: ``splits``; its split files: ``files``) inherits
    from the checkpoint ``init`` read from ``path``, kept in the new checkpoints' ``data_split`` as ``init_from``:
    ``trained_on``, the image files its weights were trained on (its train split, found in these folders under
    its own split options, and what it had inherited), None when they cannot be known here (it read other data,
    or its files are gone); ``seen``, how many of this run's val and test images are among them (None: unknown).
    Warns when some are (their scores are then not held-out) or when this cannot be told."""
    record = init.get("data_split")
    earlier = trained_on(record)
    try:
        images = recorded_images(splits, record, "train", data) if record else None
    except DataError:  # its recorded images are not in these folders
        images = None
    if images is None or earlier is None:
        log.warning("init_from=%s: its training images are not known in this data: held-out is not checked", path)
        return {"ckpt": str(path), "trained_on": None, "seen": {"val": None, "test": None}}
    seen = earlier | {str(image.resolve()) for image in images}
    counts = {}
    for split in ("val", "test"):
        scored = {str(image.resolve()) for image, _ in splits.pairs(split)} if files.get(split) else set()
        counts[split] = len(seen & scored)
        if counts[split]:
            log.warning(
                "init_from=%s was trained on %d of this run's %d %s images: their scores are not held-out",
                path, counts[split], len(scored), split,
            )  # fmt: skip
    return {"ckpt": str(path), "trained_on": sorted(seen), "seen": counts}


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
        tile_size=info.get("tile_size", TILE_SIZE),  # as its validation tiled large images (older exports: default)
        tile_overlap=info.get("tile_overlap", TILE_OVERLAP),
    )
    module.model = smp.from_pretrained(str(folder))  # the architecture and weights as smp saved them
    module.temperature = float(info.get("temperature", 1.0))
    module.code_version = info.get("code_version")
    split = folder / "data_split.json"  # where hf exports before 2026-11-27 kept it
    module.data_split = info.get("data_split") or (json.loads(split.read_text()) if split.exists() else None)
    module.chosen_on = info.get("chosen_on")
    return module
