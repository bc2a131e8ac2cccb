"""check_data's report: pairs, sizes, class frequencies (table and optional bar chart), faults."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
from omegaconf import OmegaConf
from rich.console import Console
from rich.table import Table

from seglight.data.checks import Fault, ScanReport, pair_split, scan_split
from seglight.data.infer import COLOR, INDEX_VOID, DataGuess, count_values, guess_data, label, train_overrides
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
            split,
            images,
            masks,
            dm.num_classes,
            dm.palette if dm.is_color else None,
            dm.ignore_index,
            dm.void_values,
            dm.in_channels,
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


def infer_data(data_cfg, output: str | None = None, max_masks: int = 1000, seed: int = 0) -> int:
    """check_data infer=true: counts the values of the configured folders' masks, guesses their kind, classes and
    void, writes palette.csv for colour masks into ``output`` (default: the masks folder's parent), prints what it
    guessed and why, and as its last line the training command; returns the exit code."""
    root = OmegaConf.select(data_cfg, "root", default=None)
    dirs: dict[str, tuple[str, str]] = {}
    for split, prefix in (("train", ""), ("val", "val_"), ("test", "test_")):
        images, masks = (OmegaConf.select(data_cfg, f"{prefix}{k}", default=None) for k in ("images", "masks"))
        if images is not None and masks is not None:  # absolute, so the printed command runs from anywhere
            dirs[split] = (_absolute(root, images), _absolute(root, masks))
    if "train" not in dirs:
        print("1 fault:\n  infer=true reads folders: give data=folder data.images=DIR data.masks=DIR")
        return 1
    pairs, faults = [], []
    for images, masks in dirs.values():
        found, missing = pair_split(images, masks)
        pairs += found
        faults += missing
    census = count_values(pairs, max_masks, seed) if not faults else None
    guess = guess_data(census) if census is not None and not census.faults else None
    if census is not None:
        faults += census.faults
    if guess is not None and len(guess.classes) < 2:
        only = ", ".join(map(str, sorted(guess.census.values)))
        faults.append(
            Fault(
                dirs["train"][1],
                f"the masks hold only the values {only}: fewer than two classes besides void (255 is always read as "
                "void). Binary masks with 255 as the foreground need it remapped to 1 before training",
            )
        )
    palette = None
    if guess is not None and not faults and guess.census.kind == COLOR:
        palette = Path(output or Path(dirs["train"][1]).parent).absolute() / "palette.csv"
        faults += write_palette(guess, palette)
    if faults or guess is None:
        print(f"{len(faults)} fault(s):")
        for f in faults:
            print(f"  {f}")
        print(f"fix the {len(faults)} fault(s) above, then run check_data infer=true again")
        return 1
    print_guess(guess, palette)
    if len(pairs) > max_masks:
        check = ["python", "-m", "seglight.check_data", *train_overrides(dirs, guess, palette)]
        print(
            f"sampled {max_masks} of {len(pairs)} masks (drawn with seed={seed}; infer_max_masks=N reads more): a "
            f"value only in the others fails training; check every file first with\n  {shlex.join(check)}"
        )
    print("train with:")
    print(shlex.join(["python", "-m", "seglight.train", *train_overrides(dirs, guess, palette)]))
    return 0


def _absolute(root: str | None, folder: str) -> str:
    """``folder`` as an absolute path (relative to ``root`` when given, else to the current directory)."""
    return os.path.abspath(Path(root or "", folder).expanduser())


def write_palette(guess: DataGuess, path: Path) -> list[Fault]:
    """Writes the guessed palette CSV; a fault instead of overwriting a different file already there."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        guess.palette().to_csv(tmp)
        if path.exists() and path.read_text() != tmp.read_text():
            return [
                Fault(str(path), f"{path}: exists and differs from the guessed palette; move it or give output=DIR")
            ]
        os.replace(tmp, path)
    except (OSError, ValueError) as e:
        return [Fault(str(path), f"{path}: cannot write the palette ({e})")]
    finally:
        tmp.unlink(missing_ok=True)
    return []


def print_guess(guess: DataGuess, palette: Path | None) -> None:
    """What the masks hold, what was guessed and why, and how to override it."""
    census, kind = guess.census, guess.census.kind
    void = {g.value for g in guess.void}
    role = {v: f"class_{i}" for i, v in enumerate(guess.classes)} if kind == COLOR else {}
    role |= {g.value: "possible void" for g in guess.possible} | dict.fromkeys(void, "void")
    table = Table(title=f"{kind} mask values in {census.masks_read} masks")
    for name in ("value", "pixels", "of borders", "touching others", "masks", "guess"):
        table.add_column(name, justify="left" if name in ("value", "guess") else "right")
    ranked = sorted(census.values, key=lambda v: -census.values[v].pixels)
    for v in ranked[:40]:
        s = census.values[v]
        border, touch = s.border / max(census.border_pixels, 1), s.touching / max(s.pixels, 1)
        cells = (f"{census.share(v):.2%}", f"{border:.0%}", f"{touch:.0%}", str(s.masks), role.get(v, "class"))
        table.add_row(label(kind, v), *cells)
    Console().print(table)
    if len(ranked) > 40:
        print(f"... and {len(ranked) - 40} more values")
    print(
        f"{kind} masks ({'RGB colours' if kind == COLOR else 'single-channel class indices'}): "
        f"{guess.num_classes} classes"
    )
    if kind != COLOR:
        unused = sorted(set(range(guess.num_classes)) - set(census.values))
        if unused:
            print(f"index values {unused} of 0..{guess.num_classes - 1} are in no mask read: classes without pixels")
    for g in guess.void:
        print(f"void guessed: {label(kind, g.value)} (confidence {g.confidence}): {'; '.join(g.reasons)}")
    for g in guess.possible:
        print(f"possible void, not guessed (one sign only): {label(kind, g.value)}: {'; '.join(g.reasons)}")
    if not guess.void:
        signs = "it covers the image borders far beyond its share of the image; most of its pixels touch others"
        print(
            f"no void guessed: no value shows two signs of void ({signs}; it is black)"
            if kind == COLOR
            else f"no void guessed: {INDEX_VOID} is in no mask and no value shows both signs of void ({signs})"
        )
    if palette is not None:
        print(f"wrote {palette}: one row name,r,g,b per class (class_0...: rename them), rows named void are ignored")
        print("override: rename a class row to void to ignore that colour, or a void row to a name to train on it")
    else:
        dropping = (
            ", dropping data.void_values trains on them" if any(g.value != INDEX_VOID for g in guess.void) else ""
        )
        value = str(guess.possible[0].value) if guess.possible else "v"
        print(f"override: {INDEX_VOID} is always ignored; data.void_values=[{value}] ignores {value}{dropping}")
