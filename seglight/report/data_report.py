"""check_data's report: pairs, sizes, class frequencies (table and optional bar chart), faults."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
from rich.console import Console
from rich.table import Table

from seglight.data.checks import Fault, ScanReport, scan_split
from seglight.report.figures import save_figure


def check_data(data_cfg, splits: Sequence[str] = ("train", "val", "test"), plot: str | None = None) -> int:
    """Builds the data module from its config, scans the splits, prints the report; returns the exit code."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        dm = instantiate(data_cfg, _convert_="all")
    except InstantiationException as e:  # bad palette CSV, missing classes, ...
        print(f"1 fault:\n  {e.__cause__ or e}")
        return 1
    reports, faults = [], []
    for split in splits:
        if split != "train" and not dm.has_split(split):
            continue  # not configured, or missing (a notice is logged)
        images, masks = dm.dirs[split]
        r = scan_split(
            split, images, masks, dm.num_classes, dm.palette if dm.is_color else None, dm.ignore_index, dm.void_values
        )
        reports.append(r)
        faults += r.faults
    print_report(reports, dm.class_names, faults)
    if plot and reports:
        print(f"class frequency chart: {frequency_chart(reports, dm.class_names, plot)}")
    return 1 if faults else 0


def print_report(reports: Sequence[ScanReport], class_names: Sequence[str], faults: Sequence[Fault]) -> None:
    console = Console()
    for r in reports:
        sizes = ", ".join(f"{w}x{h} ({n})" for (w, h), n in r.sizes.most_common(5))
        more = f" and {len(r.sizes) - 5} more sizes" if len(r.sizes) > 5 else ""
        print(f"{r.split}: {r.pairs} pairs; image sizes (WxH): {sizes or '-'}{more}")
    table = Table(title="class pixel frequencies (void excluded)")
    table.add_column("class")
    for r in reports:
        table.add_column(r.split, justify="right")
    for k, name in enumerate(class_names):
        cells = [f"{r.counts[k] / max(r.counts.sum(), 1):.2%}" for r in reports]
        table.add_row(name, *cells)
    console.print(table)
    # faults as plain lines: never wrapped, one per line, easy to grep
    print(f"{len(faults)} fault(s):" if faults else "no faults")
    for f in faults:
        print(f"  {f}")


def frequency_chart(reports: Sequence[ScanReport], class_names: Sequence[str], path: str | Path) -> Path:
    """Bar chart of class pixel shares per split, as PNG."""
    fig, ax = plt.subplots(figsize=(max(5, 0.7 * len(class_names) + 2), 3.5))
    width = 0.8 / max(len(reports), 1)
    x = np.arange(len(class_names))
    for i, r in enumerate(reports):
        ax.bar(x + i * width, r.counts / max(r.counts.sum(), 1), width, label=r.split)
    ax.set_xticks(x + width * (len(reports) - 1) / 2, class_names, rotation=45, ha="right")
    ax.set_ylabel("pixel share")
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)
