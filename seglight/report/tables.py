"""Human-readable results: scores as text and the per-class table."""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from rich.console import Console
from rich.table import Table

from seglight.model.metrics import FINAL_MONITOR


def score_text(value: float | None, digits: int = 4, missing: str = "-") -> str:
    """A score with ``digits`` decimals; ``missing`` for None or NaN (a class absent from target and prediction)."""
    return missing if value is None or math.isnan(value) else f"{value:.{digits}f}"


def class_table(metrics: Mapping[str, float], stage: str, class_names: Sequence[str], title: str = "") -> Table:
    """Rich table: one row per class with its IoU ("-" if it has none), then the mean rows."""
    table = Table(title=title or f"{stage} per-class IoU")
    table.add_column("class")
    table.add_column("IoU", justify="right")
    for name in class_names:
        table.add_row(name, score_text(metrics.get(f"{stage}/iou/{name}")))
    for key in ("mIoU", "dice", "acc"):
        if f"{stage}/{key}" in metrics:
            table.add_row(f"[bold]{key}[/bold]", f"[bold]{score_text(metrics[f'{stage}/{key}'])}[/bold]")
    return table


def print_class_table(metrics: Mapping[str, float], stage: str, class_names: Sequence[str], title: str = "") -> None:
    Console().print(class_table(metrics, stage, class_names, title))


SELECTION_TOLERANCE = 1e-3  # mIoU: two validations of the same weights can differ by a few pixels (GPU kernels)


def selected_above_final(metrics: Mapping[str, Any]) -> float | None:
    """The score of the weights a run ended with (``final_weights_val/mIoU`` of its metrics.json) where best.ckpt,
    chosen among the run's validations on the same val images, scores higher by more than ``SELECTION_TOLERANCE``;
    None where they agree or the final score was not recorded."""
    final, best = metrics.get(FINAL_MONITOR), metrics.get("val/mIoU")
    return final if final is not None and best is not None and final < best - SELECTION_TOLERANCE else None


def chosen_caveat(monitor: str) -> str:
    """The caveat of a checkpoint scored on the images that chose it among its run's validations (best.ckpt)."""
    return f"checkpoint chosen on these images (best {monitor})"


def val_caveat(metrics: Mapping[str, Any]) -> str | None:
    """Why scores are not held out, from a metrics.json: the model trained on its val images (``train_on_val``,
    training's and evaluate's; evaluate's is None for a model that records no split: unchecked), or the
    checkpoint it started from trained on some of the scored images (training's ``init_from_seen_val``,
    evaluate's ``trained_on_images``: how many; None when that start's images could not be found here), or
    evaluate scored a checkpoint on the val images its run chose it on (``chosen_on``: best.ckpt), or outside its
    run's recorded split on images named like its training images (``named_like_training``: how many). None
    for a clean score. An evaluate of the train split (``split``) is never held out."""
    if metrics.get("split") == "train":  # train_on_val None: not the run's recorded train split
        return "scored on its training images" if metrics.get("train_on_val") is not None else "held-out unchecked"
    if metrics.get("train_on_val"):
        return "trained on val"
    if metrics.get("named_like_training"):  # evaluate outside the run's recorded split (other folders)
        return f"{metrics['named_like_training']} images named like its training images"
    if metrics.get("chosen_on"):  # evaluate of best.ckpt on the val images its run chose it on
        return chosen_caveat(metrics["chosen_on"])
    if "train_on_val" in metrics and metrics["train_on_val"] is None:  # evaluate of a model with no split record
        return "held-out unchecked: the model records no data split"
    for key, images in (("init_from_seen_val", "val images"), ("trained_on_images", "of these images")):
        if key in metrics:
            seen = metrics[key]
            if seen is None:
                return "init_from: start's images unknown"
            return f"init_from trained on {seen} {images}" if seen else None
    return None
