"""evaluate: a model over a labelled split -> metrics.json, per_class.csv, per_image.csv, confusion.png, and a
printed table. ``seglight.inference.scored_data`` picks the images: a checkpoint's own recorded split where it has
one."""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from tqdm import tqdm

from seglight.data.dataset import SegmentationDataset
from seglight.inference.export import store_temperature
from seglight.inference.predictor import Predictor
from seglight.inference.scored_data import checkpoint_dataset, named_like
from seglight.model.calibration import PixelSample, ReliabilityBins, fit_temperature, sample_ece
from seglight.model.checkpoint import trained_on
from seglight.model.metrics import ACC, IOU, MIOU, class_scores, confusion_matrix, confusion_scores, flatten
from seglight.report.bootstrap import REPLICATES, bootstrap, frames_per_block, resampling_blocks
from seglight.report.confusions import CONFUSIONS, save_confusions
from seglight.report.evaluation_report import Gallery, write_report
from seglight.report.figures import confusion_figure, save_figure
from seglight.report.tables import print_class_table, score_text
from seglight.util.files import write_json
from seglight.util.provenance import code_version

log = logging.getLogger(__name__)


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
    blocks: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Predicts every image of ``dataset`` at its own size and scores it against its mask (void ignored).

    Writes into ``output``: ``metrics.json`` (``mIoU``, ``dice``, ``acc``, ``iou/<class>``, each with its 95%
    bootstrap interval as ``mIoU_ci``, ``dice_ci``, ``acc_ci``, ``iou_ci/<class>`` [low, high]: over images, or
    over ``blocks`` (each image's: ``bootstrap.resampling_blocks``), ``ci_blocks`` of them),
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
    stats = bootstrap(np.stack(confusions), blocks=blocks) if confusions else None
    result: dict[str, Any] = flatten(confusion_scores(torch.from_numpy(total)), "", names)
    if stats is not None:
        result.update(intervals(stats, names))
        stats["blocks"] = result["ci_blocks"] = len(set(blocks)) if blocks else None  # None: images one by one
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
    elif (output / "report.html").exists():  # an earlier evaluation's, with its model's numbers: not these
        (output / "report.html").unlink()
        log.info("removed %s: an earlier evaluation's report (this one writes none)", output / "report.html")
    print_class_table(
        {f"eval/{k}": v for k, v in result.items()}, "eval", names, title=f"evaluation ({len(dataset)} images)"
    )
    if stats is not None and result["mIoU_ci"] is not None:
        low, high = result["mIoU_ci"]
        unit = f"{result['ci_blocks']} blocks of frames" if result["ci_blocks"] else f"{len(dataset)} images"
        print(f"mIoU {result['mIoU']:.4f}, 95% CI [{low:.4f}, {high:.4f}] (bootstrap over {unit})")
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


def evaluate_checkpoint(
    ckpt: str | Path,
    data: dict[str, Any],
    split: str,
    output: str | Path,
    report: bool = True,
    calibrate: bool = False,
    top_k: int = 6,
    block_frames: int | str | None = "auto",
    **predictor: Any,
) -> dict[str, Any]:
    """``evaluate`` of the model at ``ckpt`` on ``split`` of the data config ``data`` (plain values, resolved;
    the split the checkpoint recorded where it applies, see ``scored_data.split_dataset``), run with
    ``predictor`` options.
    With ``calibrate`` the fitted temperature is written into the model file (``store_temperature``)."""
    model, dataset, recorded = checkpoint_dataset(ckpt, data, split, **predictor)
    provenance = _provenance(Path(ckpt), split, recorded, model)
    seen = model.train_on_val if split == "val" else False  # None: the model records no data split
    if split == "train" and calibrate:
        raise ValueError(f"{ckpt}: split=train holds training images: calibrate on held-out images")
    if split == "train" and not recorded:  # another data set's train split, or no record: it may not have seen them
        log.warning("%s: not the train split its run recorded (or it records none): held-out unchecked", ckpt)
        provenance["split"] += ": held-out unchecked (not a train split the model records)"
        seen = None
    elif split == "train":  # the run's own training images: never held out
        log.warning("%s is scored on the train split, the images it was trained on: not held-out scores", ckpt)
        provenance["split"] += ": the images the model was trained on, not held-out scores"
    elif seen:
        if calibrate:
            raise ValueError(f"{ckpt} trained on its val images (data.train_on_val): calibrate on held-out images")
        provenance["split"] += ": images the model was trained on (data.train_on_val), not held-out scores"
    elif seen is None:
        log.warning("%s records no data split: whether it trained on these val images is unchecked", ckpt)
        provenance["split"] += ": held-out unchecked (the model records no data split)"
    notes = inherited_notes(model, dataset, provenance, ckpt, calibrate)
    named = named_like(model, dataset, ckpt) if split != "train" and not recorded else None  # other folders
    if named and named["train"]:
        log.warning("%s: %d of these %d images are named like images its run trained on (splits.json): not held-out "
                    "scores", ckpt, named["train"], len(dataset))  # fmt: skip
        provenance["split"] += f": {named['train']} of {len(dataset)} images named like the model's training images"
        notes["named_like_training"] = named["train"]
    if split == "val" and model.chosen_on and (recorded or (named and named["val"])):  # best.ckpt on its own val
        log.info("%s was chosen on these val images (best %s): an optimistic score", ckpt, model.chosen_on)
        provenance["split"] += f": the checkpoint was chosen on these images (best {model.chosen_on} of its run)"
        notes["chosen_on"] = model.chosen_on
    # metrics.json: compare and the summary say when these are not held-out scores (``val_caveat``)
    notes.update(split=split, train_on_val=seen)
    blocks = resampling_blocks([str(image) for image, _ in dataset.pairs], data.get("frame_pattern"), block_frames)
    if blocks:  # what compare draws by when it is given these confusions without the data config
        notes.update(frame_pattern=data["frame_pattern"], block_frames=frames_per_block(block_frames or "auto"))
    return evaluate(model, dataset, output, report, calibrate, top_k, provenance, ckpt, notes, blocks)


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
