"""evaluate: a model over a labelled split -> metrics.json, per_class.csv, per_image.csv, confusion.png, and a
printed table. ``split_dataset`` picks the images: a checkpoint's own recorded split where it has one."""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from tqdm import tqdm

from seglight.data.datamodule import SegDataModule
from seglight.data.dataset import SegmentationDataset
from seglight.data.splits import data_differences
from seglight.inference.export import store_temperature
from seglight.inference.predictor import Predictor
from seglight.model.calibration import PixelSample, ReliabilityBins, fit_temperature, sample_ece
from seglight.model.checkpoint import trained_on
from seglight.model.metrics import ACC, IOU, MIOU, class_scores, confusion_matrix, confusion_scores, flatten
from seglight.report.bootstrap import REPLICATES, bootstrap
from seglight.report.confusions import CONFUSIONS, save_confusions
from seglight.report.evaluation_report import Gallery, write_report
from seglight.report.figures import confusion_figure, save_figure
from seglight.report.tables import print_class_table, score_text
from seglight.util.files import write_json
from seglight.util.provenance import code_version

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
            setattr(dm.splits, key, recorded["data"].get(key))
    if not recorded["files"].get(split):
        raise ValueError(f"{ckpt}: its run had no {split} split")
    dm.use_recorded_splits(recorded["files"])
    dataset = dm.raw_dataset(split)
    print(f"scoring the checkpoint's own {split} split: {len(dataset)} images recorded by its run (splits.json)")
    if split == "val" and recorded["data"].get("train_on_val"):
        log.warning("%s was trained on its val images too (data.train_on_val): these are not held-out scores", ckpt)
    return dataset


def evaluate(
    predictor: Predictor,
    dataset: SegmentationDataset,
    output: str | Path,
    report: bool = True,
    calibrate: bool = False,
    top_k: int = 6,
    provenance: dict[str, Any] | None = None,
    store_into: str | Path | None = None,
    notes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Predicts every image of ``dataset`` at its own size and scores it against its mask (void ignored).

    Writes into ``output``: ``metrics.json`` (``mIoU``, ``dice``, ``acc``, ``iou/<class>``, each with its 95%
    bootstrap interval over images as ``mIoU_ci``, ``dice_ci``, ``acc_ci``, ``iou_ci/<class>`` [low, high]),
    ``per_class.csv`` (class, IoU, Dice, pixel share), ``per_image.csv`` (``image`` path, ``mIoU``, ``acc``,
    ``iou/<class>``; empty where a class is in neither mask nor prediction), ``confusions.npz``
    (``save_confusions``) and ``confusion.png`` (row-normalised); with ``report`` also ``report.html`` (and
    ``ece`` in metrics.json). ``calibrate`` fits a softmax temperature on these images (metrics.json:
    ``temperature``, ``ece_sample_before``/``after``), stored into the model file ``store_into`` where given;
    ``notes`` go into metrics.json as they are (``trained_on_images``: see ``inherited_notes``).
    Returns the metrics.
    """
    names, ignore = predictor.class_names, dataset.ignore_index
    if calibrate and predictor.tta:  # before the long loop, not after it
        raise ValueError(
            "calibrate=true fits the temperature on the plain model's probabilities; with TTA they are averaged "
            "over passes: use tta.flip=false tta.scales=[1.0]"
        )
    if dataset.num_classes != len(names):
        raise ValueError(f"the model has {len(names)} classes {names}, the data {dataset.num_classes}")
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    reliability, sample = ReliabilityBins(), PixelSample()
    gallery = Gallery(top_k, predictor.palette) if report else None
    per_image, confusions = [], []
    for i in tqdm(range(len(dataset)), desc="evaluate", unit="img"):
        image, mask = dataset.read_pair(i)
        if report or calibrate:  # probabilities: calibration needs them
            probs = predictor.predict_images([image])[0]  # (C,H,W)
            pred = probs.argmax(axis=0)
            reliability.update(probs, mask, ignore, pred)
            if calibrate:
                sample.update(probs, mask, ignore)
        else:
            pred = predictor.predict_masks([image])[0]
        target = torch.from_numpy(mask.astype(np.int64))[None]  # (1,H,W)
        confusion = confusion_matrix(torch.from_numpy(pred.astype(np.int64))[None], target, len(names), ignore)
        confusions.append(confusion.numpy())
        scores = confusion_scores(confusion)
        per_image.append((str(dataset.pairs[i][0]), scores))
        if gallery is not None and confusion.sum() > 0:  # an all-void image has no score to rank it by
            gallery.offer(dataset.pairs[i][0].name, float(scores[MIOU]), image, mask, pred)
    total = np.sum(confusions, axis=0) if confusions else np.zeros((len(names),) * 2, np.int64)
    stats = bootstrap(np.stack(confusions)) if confusions else None
    result: dict[str, Any] = flatten(confusion_scores(torch.from_numpy(total)), "", names)
    if stats is not None:
        result.update(intervals(stats, names))
    calibration: dict[str, Any] = {"ece": reliability.ece(), "bins": len(reliability.count)}
    if report or calibrate:
        calibration["temperature"] = predictor.temperature
        result.update(ece=calibration["ece"], ece_temperature=predictor.temperature)
    if calibrate:
        calibration.update(_calibrate(predictor, sample, store_into))
        result.update(
            temperature=calibration["fitted"],
            ece_sample_before=calibration["ece_before"],
            ece_sample_after=calibration["ece_after"],
        )
    result.update(notes or {})
    write_json(output / "metrics.json", result)
    _write_per_class(output / "per_class.csv", result, total, names)
    _write_per_image(output / "per_image.csv", per_image, names)
    save_confusions(output / CONFUSIONS, [image for image, _ in per_image], confusions, names)
    save_figure(confusion_figure(total, names), output / "confusion.png")
    if gallery is not None and stats is not None:
        provenance = {
            "checkpoint": "(a model given in code)",
            "split": "(a dataset given in code)",
            **(provenance or {}),
        }
        stats["replicates"] = REPLICATES
        write_report(
            output / "report.html",
            stats,
            names,
            predictor.palette,
            total,
            reliability,
            gallery,
            calibration,
            provenance,
            len(dataset),
        )
    print_class_table(
        {f"eval/{k}": v for k, v in result.items()}, "eval", names, title=f"evaluation ({len(dataset)} images)"
    )
    if stats is not None and result["mIoU_ci"] is not None:
        low, high = result["mIoU_ci"]
        print(f"mIoU {result['mIoU']:.4f}, 95% CI [{low:.4f}, {high:.4f}] (bootstrap over {len(dataset)} images)")
    return result


def _calibrate(predictor: Predictor, sample: PixelSample, store_into: str | Path | None) -> dict[str, Any]:
    """Fits a softmax temperature on the sampled pixels and stores it into the model file ``store_into``."""
    log_probs, labels = sample.arrays()
    fitted = fit_temperature(log_probs, labels)
    temperature = predictor.temperature * fitted  # the sample's log-probabilities already had T applied
    stored = store_temperature(store_into, temperature) if store_into is not None else None
    if stored is not None:
        print(f"softmax temperature {temperature:.4f} stored in {stored}")
    return {
        "fitted": temperature,
        "ece_before": sample_ece(log_probs, labels),
        "ece_after": sample_ece(log_probs, labels, fitted),
        "sample_pixels": len(labels),
        "stored_in": str(stored) if stored else "nowhere (evaluate was called from code without store_into)",
    }


def intervals(stats: dict[str, Any], names: list[str]) -> dict[str, list[float] | None]:
    """Bootstrap intervals as metrics.json keys: mIoU_ci, dice_ci, acc_ci, iou_ci/<class> -> [low, high]
    (None for a class with no interval)."""
    out: dict[str, list[float] | None] = {f"{k}_ci": _pair(stats[f"{k}_ci"]) for k in (MIOU, "dice", ACC)}
    out.update({f"{IOU}_ci/{name}": _pair(stats["iou_ci"][k]) for k, name in enumerate(names)})
    return out


def _pair(ci: np.ndarray) -> list[float] | None:
    return None if np.isnan(ci).any() else [float(ci[0]), float(ci[1])]


def _write_per_class(path: Path, result: dict[str, Any], total: np.ndarray, names: list[str]) -> None:
    """per_class.csv: class, IoU, Dice, pixel share (an absent class: empty cells)."""
    share = total.sum(axis=1) / max(total.sum(), 1)
    per_class_dice = class_scores(torch.from_numpy(total))[1].tolist()
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["class", "IoU", "Dice", "pixel_share"])
        for k, name in enumerate(names):
            iou = score_text(result[f"iou/{name}"], digits=6, missing="")
            dice = score_text(per_class_dice[k], digits=6, missing="")
            w.writerow([name, iou, dice, f"{share[k]:.6f}"])


def _write_per_image(path: Path, rows: list[tuple[str, dict[str, torch.Tensor]]], names: list[str]) -> None:
    """per_image.csv: image, mIoU, acc, iou/<class> per image, in the dataset's order (an image with no scored
    pixel, all void: empty cells)."""
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", MIOU, ACC, *(f"{IOU}/{n}" for n in names)])
        for image, scores in rows:
            ious = [score_text(v, digits=6, missing="") for v in scores[IOU].tolist()]
            scored = any(cell for cell in ious)
            mean = [f"{float(scores[k]):.6f}" if scored else "" for k in (MIOU, ACC)]
            w.writerow([image, *mean, *ious])


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


def evaluate_checkpoint(
    ckpt: str | Path,
    data: dict[str, Any],
    split: str,
    output: str | Path,
    report: bool = True,
    calibrate: bool = False,
    top_k: int = 6,
    **predictor: Any,
) -> dict[str, Any]:
    """``evaluate`` of the model at ``ckpt`` on ``split`` of the data config ``data`` (plain values, resolved;
    the split the checkpoint recorded where it applies, see ``split_dataset``), run with ``predictor`` options.
    With ``calibrate`` the fitted temperature is written into the model file (``store_temperature``)."""
    model, dataset, recorded = checkpoint_dataset(ckpt, data, split, **predictor)
    provenance = _provenance(Path(ckpt), split, recorded, model)
    seen = split == "val" and bool((model.data_split or {}).get("data", {}).get("train_on_val"))
    if seen:
        if calibrate:
            raise ValueError(f"{ckpt} trained on its val images (data.train_on_val): calibrate on held-out images")
        provenance["split"] += ": images the model was trained on (data.train_on_val), not held-out scores"
    notes = inherited_notes(model, dataset, provenance, ckpt, calibrate)
    return evaluate(model, dataset, output, report, calibrate, top_k, provenance, store_into=ckpt, notes=notes)


def inherited_notes(
    model: Predictor, dataset: SegmentationDataset, provenance: dict[str, Any], ckpt: str | Path, calibrate: bool
) -> dict[str, Any]:
    """For a model fine-tuned from another checkpoint (``init_from``): ``trained_on_images``, how many of the
    scored images that start was trained on (None: not known), for metrics.json; said in the provenance and the
    log when not 0. Calibrating on such images is refused."""
    if "init_from" not in (model.data_split or {}):
        return {}
    start = trained_on(model.data_split)
    if start is None:
        log.warning("%s was fine-tuned from a model whose training images are not known: held-out unchecked", ckpt)
        provenance["split"] += ": fine-tuned from a model whose training images are not known"
        return {"trained_on_images": None}
    trained = start & {str(image.resolve()) for image, _ in dataset.pairs}
    if trained:
        if calibrate:
            raise ValueError(f"{ckpt} was trained on {len(trained)} of these images: calibrate on held-out images")
        log.warning("%s was trained on %d of these %d images: not held-out scores", ckpt, len(trained), len(dataset))
        provenance["split"] += f": {len(trained)} of {len(dataset)} images the model was trained on (init_from)"
    return {"trained_on_images": len(trained)}


def _provenance(ckpt: Path, split: str, recorded: bool, model: Predictor) -> dict[str, Any]:
    """What report.html says about where the model and the images came from."""
    run_dir = ckpt.resolve().parent.parent
    config = run_dir / "config.yaml"
    return {
        "checkpoint": str(ckpt.resolve()),
        "run dir": str(run_dir) if config.exists() else "-",
        "split": f"{split} ({'recorded by the run, splits.json' if recorded else 'as configured'})",
        "classes": ", ".join(model.class_names),
        "trained with seglight": model.code_version or "not recorded",
        "evaluated with seglight": code_version() or "not a git checkout",
        "config": config.read_text() if config.exists() else "",
    }
