"""Palette: class names and RGB colours; colour masks (H,W,3) <-> index masks (H,W).

The colour -> index direction goes through a lookup table indexed by the packed colour
``r<<16 | g<<8 | b`` (2^24 entries, built once per palette), so a 720x960 mask is converted in
a few milliseconds with no per-colour Python loop. Colours not in the palette are reported
with their pixel counts.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

UNKNOWN = np.uint16(65535)  # lookup-table value of a colour that is not in the palette
MAX_LABEL = 255  # masks are stored as 8-bit class indices: classes 0..254 at most, and ignore_index, all in 0..255


def check_label_range(num_classes: int, ignore_index: int) -> None:
    """ValueError unless the classes and ``ignore_index`` fit the 8-bit masks (no label may wrap around)."""
    if num_classes > MAX_LABEL:
        raise ValueError(
            f"{num_classes} classes, but at most {MAX_LABEL} are supported: masks are stored as "
            f"8-bit class indices (0..{MAX_LABEL - 1} for classes, {MAX_LABEL} for ignore_index); "
            f"merge classes to {MAX_LABEL} or fewer"
        )
    if not 0 <= ignore_index <= MAX_LABEL:
        raise ValueError(
            f"ignore_index {ignore_index} is outside 0..{MAX_LABEL}: masks are stored as 8-bit class "
            f"indices; use ignore_index={MAX_LABEL}"
        )


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """(...,3) uint8 -> (...) int32 holding r<<16 | g<<8 | b."""
    rgb = np.asarray(rgb)
    return (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]


def default_colors(n: int) -> list[tuple[int, int, int]]:
    """n distinct colours for index-mask data sets that bring none (Pascal VOC's bit pattern)."""
    colors = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        colors.append((r, g, b))
    return colors


class UnknownColorError(ValueError):
    """A colour mask holds colours that are not in the palette."""


@dataclass
class Palette:
    """Class names with one RGB colour each; index i <-> colours[i].

    ``void_colors`` are colours that mean "ignore" (mapped to ``ignore_index``); ``to_color``
    paints ignored pixels with ``void_color``. Masks are 8-bit, so a
    palette holds at most 255 classes and ``ignore_index`` lies in 0..255 (and is no class index):
    checked here, at construction, with a ValueError naming the fix.
    """

    names: list[str]
    colors: list[tuple[int, int, int]]
    ignore_index: int = 255
    void_colors: list[tuple[int, int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.names = [str(n) for n in self.names]
        self.colors = [tuple(int(v) for v in c) for c in self.colors]  # type: ignore[misc]
        self.void_colors = [tuple(int(v) for v in c) for c in self.void_colors]  # type: ignore[misc]
        if len(self.names) != len(self.colors):
            raise ValueError(f"palette has {len(self.names)} names but {len(self.colors)} colours")
        if not self.names:
            raise ValueError("palette is empty")
        for c in self.colors + self.void_colors:
            if len(c) != 3 or not all(0 <= v <= 255 for v in c):
                raise ValueError(f"palette colour {c} is not an RGB triple in 0..255")
        _no_duplicates("class name", self.names)
        _no_duplicates("colour", self.colors + self.void_colors)
        check_label_range(len(self.names), self.ignore_index)
        if self.ignore_index < len(self.names):
            raise ValueError(
                f"ignore_index {self.ignore_index} collides with class {self.names[self.ignore_index]!r}; "
                f"use ignore_index={MAX_LABEL}"
            )
        self._lut: np.ndarray | None = None

    def class_index(self, name: str, option: str = "class") -> int:
        """The index of the class called ``name``; a ValueError naming ``option`` and the classes otherwise."""
        if name not in self.names:
            raise ValueError(f"{option}: no class {name!r}; the classes are {', '.join(self.names)}")
        return self.names.index(name)

    @property
    def num_classes(self) -> int:
        return len(self.names)

    @classmethod
    def from_csv(
        cls,
        path: str | Path,
        ignore_index: int = 255,
        void_names: tuple[str, ...] = ("void", "ignore", "unlabelled", "unlabeled"),
    ) -> Palette:
        """Reads a CSV with a header ``name,r,g,b``; rows named like ``void`` become void colours."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"palette file not found: {path}")
        names, colors, void = [], [], []
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            missing = {"name", "r", "g", "b"} - set(reader.fieldnames or [])
            if missing:
                raise ValueError(f"{path}: palette CSV needs columns name,r,g,b; missing {sorted(missing)}")
            for line, row in enumerate(reader, start=2):
                try:
                    color = (int(row["r"]), int(row["g"]), int(row["b"]))
                except (TypeError, ValueError) as e:
                    raise ValueError(f"{path}:{line}: bad colour {row}") from e
                if row["name"].strip().lower() in void_names:
                    void.append(color)
                else:
                    names.append(row["name"].strip())
                    colors.append(color)
        try:
            return cls(names, colors, ignore_index=ignore_index, void_colors=void)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None

    def to_csv(self, path: str | Path) -> None:
        with Path(path).open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["name", "r", "g", "b"])
            for n, c in zip(self.names, self.colors):
                w.writerow([n, *c])
            for c in self.void_colors:
                w.writerow(["void", *c])

    def lut(self) -> np.ndarray:
        """(2^24,) uint16: packed colour -> class index, ignore_index, or UNKNOWN."""
        if self._lut is None:
            lut = np.full(1 << 24, UNKNOWN, dtype=np.uint16)
            lut[pack_rgb(np.array(self.colors, dtype=np.uint8))] = np.arange(self.num_classes)
            if self.void_colors:
                lut[pack_rgb(np.array(self.void_colors, dtype=np.uint8))] = self.ignore_index
            self._lut = lut
        return self._lut

    def to_index(self, rgb: np.ndarray, source: str = "mask") -> np.ndarray:
        """Colour mask (H,W,3) uint8 -> index mask (H,W) uint8; raises UnknownColorError naming ``source``."""
        if rgb.ndim != 3 or rgb.shape[-1] < 3:
            raise ValueError(f"{source}: expected a colour mask (H,W,3), got shape {rgb.shape}")
        index = self.lut()[pack_rgb(rgb[..., :3])]
        unknown = index == UNKNOWN
        if unknown.any():
            colors, counts = np.unique(rgb[..., :3][unknown], axis=0, return_counts=True)
            listed = ", ".join(f"{tuple(int(v) for v in c)} x{int(n)} px" for c, n in zip(colors[:10], counts[:10]))
            more = f" and {len(colors) - 10} more" if len(colors) > 10 else ""
            raise UnknownColorError(f"{source}: {len(colors)} colour(s) not in the palette: {listed}{more}")
        return index.astype(np.uint8)

    @property
    def void_color(self) -> tuple[int, int, int]:
        """What ``to_color`` paints ignored pixels: ``void_colors[0]``; without one black, or white (else grey) where
        a class is black (default_colors' first), so that void and that class differ in pictures."""
        if self.void_colors:
            return self.void_colors[0]
        return next((c for c in ((0, 0, 0), (255, 255, 255)) if c not in self.colors), (40, 40, 40))

    def to_color(self, index: np.ndarray) -> np.ndarray:
        """Index mask (...,H,W) integer -> colour mask (...,H,W,3) uint8; ignore/unknown indices -> ``void_color``."""
        table = np.zeros((MAX_LABEL + 1, 3), dtype=np.uint8)
        table[:] = self.void_color
        table[: self.num_classes] = np.array(self.colors, dtype=np.uint8)
        index = np.asarray(index)
        if index.dtype != np.uint8:
            index = np.where((index >= 0) & (index <= MAX_LABEL), index, self.ignore_index).astype(np.uint8)
        return table[index]


def _no_duplicates(what: str, items: list) -> None:
    seen, dup = set(), []
    for item in items:
        if item in seen:
            dup.append(item)
        seen.add(item)
    if dup:
        raise ValueError(f"palette has duplicate {what}(s): {dup}")


def palette_from_options(
    path: str | None,
    num_classes: int | None,
    class_names: Sequence[str] | None,
    colors: Sequence[Sequence[int]] | None,
    ignore_index: int = 255,
) -> Palette:
    """The classes of a data config: a palette CSV (colour masks), or ``num_classes`` / ``class_names`` with
    optional ``colors`` (index masks; default colours otherwise)."""
    if path is not None:
        pal = Palette.from_csv(path, ignore_index=ignore_index)
        if num_classes is not None and num_classes != pal.num_classes:
            raise ValueError(
                f"data.num_classes={num_classes} disagrees with {path} ({pal.num_classes} classes: {pal.names})"
            )
        return pal
    if num_classes is None and class_names is None:
        raise ValueError("give the classes: data.palette=FILE.csv (colour masks) or data.num_classes=N (index masks)")
    n = int(num_classes) if num_classes is not None else len(class_names)  # type: ignore[arg-type]
    names = list(class_names) if class_names is not None else [f"class_{i}" for i in range(n)]
    if len(names) != n:
        raise ValueError(f"data.num_classes={n} but {len(names)} class_names were given: {names}")
    cols = [(int(c[0]), int(c[1]), int(c[2])) for c in colors] if colors is not None else default_colors(n)
    return Palette(names, cols[:n], ignore_index=ignore_index)
