"""Human-readable results: the per-class table and metrics.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

from rich.console import Console
from rich.table import Table

from seglight.files import atomic_write


def class_table(metrics: Mapping[str, float], stage: str, class_names: Sequence[str], title: str = "") -> Table:
    """Rich table: one row per class with its IoU, then the mean rows."""
    table = Table(title=title or f"{stage} per-class IoU")
    table.add_column("class")
    table.add_column("IoU", justify="right")
    for name in class_names:
        v = metrics.get(f"{stage}/iou/{name}")
        table.add_row(name, "-" if v is None else f"{v:.4f}")
    for key in ("mIoU", "dice", "acc"):
        if f"{stage}/{key}" in metrics:
            table.add_row(f"[bold]{key}[/bold]", f"[bold]{metrics[f'{stage}/{key}']:.4f}[/bold]")
    return table


def print_class_table(metrics: Mapping[str, float], stage: str, class_names: Sequence[str], title: str = "") -> None:
    Console().print(class_table(metrics, stage, class_names, title))


def write_json(path: str | Path, data: Mapping) -> None:
    """Writes JSON atomically: a crash never leaves half a file."""
    atomic_write(path, lambda f: f.write(json.dumps(dict(data), indent=2, sort_keys=True).encode()))
