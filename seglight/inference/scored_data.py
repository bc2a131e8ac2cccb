"""Which images a checkpoint is scored on: its run's own recorded split where the data config is the data it
was trained on (``split_dataset``), read with its channel count and checked against its classes."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

from seglight.data.datamodule import SegDataModule
from seglight.data.dataset import SegmentationDataset
from seglight.data.splits import data_differences, recorded_option
from seglight.inference.predictor import Predictor

log = logging.getLogger(__name__)


def split_dataset(
    dm: SegDataModule,
    split: str,
    recorded: dict[str, Any] | None,
    data_cfg: dict[str, Any],
    ckpt: str | Path = "the model",
) -> SegmentationDataset:
    """The images to score for ``split``: those the checkpoint's run recorded for it (``recorded``, the
    checkpoint's ``data_split``: its data config and splits.json) when the configured data is the data it was
    trained on, else the configured split, with a warning naming the data options that differ."""
    if recorded is None:
        log.warning("%s records no data split: scoring the configured %s split", ckpt, split)
        return dm.raw_dataset(split)
    source, how = data_differences(recorded["data"], data_cfg)
    if source:
        log.warning(
            "the data config differs from the checkpoint's in %s: scoring the configured %s split, not the run's",
            ", ".join(f"data.{k} ({recorded['data'].get(k)!r} -> {data_cfg.get(k)!r})" for k in source),
            split,
        )
        return dm.raw_dataset(split)
    if how:
        log.warning(
            "data.%s differ from the checkpoint's; the run's recorded split is scored all the same", ", data.".join(how)
        )
        for key in how:  # the recorded files are looked up where the run drew them from
            setattr(dm.splits, key, recorded_option(recorded["data"], key))
    if not recorded["files"].get(split):
        raise ValueError(f"{ckpt}: its run had no {split} split")
    dm.use_recorded_splits(recorded["files"])
    dataset = dm.raw_dataset(split)
    print(f"scoring the checkpoint's own {split} split: {len(dataset)} images recorded by its run (splits.json)")
    if split == "val" and recorded["data"].get("train_on_val"):
        log.warning("%s was trained on its val images too (data.train_on_val): these are not held-out scores", ckpt)
    return dataset


def check_classes(model: Sequence[str], data: Sequence[str], ckpt: str | Path) -> None:
    """Masks index the data config's classes, the model's outputs its own: a class both name (case aside) at
    another index (a palette CSV with rows swapped) would be scored against another class, so it is an error
    naming both lists; other names (index masks named differently) are warned about: scores are reported under
    the model's."""
    if list(model) == list(data):
        return
    folded = [n.strip().casefold() for n in model], [n.strip().casefold() for n in data]
    moved = [n for i, n in enumerate(folded[0]) if n in folded[1] and folded[1].index(n) != i]
    if moved or len(model) != len(data):  # a class both name, at another index: scored against another class
        raise ValueError(f"{ckpt} predicts the classes {list(model)}; the data config's masks index {list(data)}")
    log.warning("%s names its classes %s, the data config %s: scores are reported under the model's names",
                ckpt, list(model), list(data))  # fmt: skip


def checkpoint_dataset(
    ckpt: str | Path, data: dict[str, Any], split: str, **predictor: Any
) -> tuple[Predictor, SegmentationDataset, bool]:
    """The model at ``ckpt`` (run with ``predictor`` options), the images of ``split`` it is scored on (read with
    its channel count; see ``split_dataset``) and whether they are the split its run recorded."""
    from hydra.utils import instantiate

    model = Predictor.load(ckpt, **predictor)
    dm = instantiate(data, _convert_="all", in_channels=len(model.mean))  # the channels the model reads
    check_classes(model.class_names, dm.class_names, ckpt)
    dataset = split_dataset(dm, split, model.data_split, data, ckpt)
    return model, dataset, dm.splits.recorded is not None


def named_like(model: Predictor, dataset: SegmentationDataset, ckpt: str | Path) -> dict[str, int] | None:
    """For images scored outside the split the model's run recorded (other folders): how many are named like the
    images its run trained on and validated on, {"train": n, "val": m} (splits.json records file names; with
    train_on_val the train list holds the val images too). None where the names do not tell the run's images apart
    (its splits share names, as generated shapes' do) or were not recorded."""
    files = (model.data_split or {}).get("files") or {}
    train, val = files.get("train") or [], files.get("val") or []
    pooled = train if model.train_on_val else train + val
    if not train:
        return None
    if len(set(pooled)) < len(pooled):
        log.warning("%s: its run's file names do not tell its images apart: whether it trained on these is "
                    "unchecked", ckpt)  # fmt: skip
        return None
    scored = {image.name for image, _ in dataset.pairs}
    return {"train": len(set(train) & scored), "val": len(set(val) & scored)}
