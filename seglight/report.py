"""Human-readable results: the per-class table and metrics.json."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from rich.console import Console
from rich.table import Table

from seglight.files import atomic_write


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


def _json_safe(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, inf) in it, nested ones included, replaced by None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_json(path: str | Path, data: Mapping) -> None:
    """Writes JSON atomically (a crash never leaves half a file); NaN and inf become null, so it is valid JSON."""
    text = json.dumps(_json_safe(dict(data)), indent=2, sort_keys=True, allow_nan=False)
    atomic_write(path, lambda f: f.write(text.encode()))
