"""Guessing what a folder of masks holds (``check_data infer=true``): colour or index masks, the values in them with
their pixel counts, and which value means void, each guess with the evidence for it.

Void is guessed from signs a person can check: value 255 in index masks (the usual void value and seglight's
``ignore_index``); a value that covers the image borders far beyond its share of the image (padding, out of view);
a value most of whose pixels touch another value (thin outlines and gaps between regions, where annotators stop);
black, the usual colour of unlabelled pixels, counts only with one of those two. No sign, no guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from seglight.data.checks import Fault
from seglight.data.io import DataError, _open, image_size
from seglight.data.palette import MAX_LABEL, Palette, pack_rgb

COLOR, INDEX = "colour", "index"
MAX_DISTINCT = 4096  # more distinct values than this: not label masks (photos, JPEG); counting stops there
RING = 0.01  # the image borders: the outer ring of pixels, 1% of the shorter side wide (at least one pixel)
BORDER_SHARE = 0.5  # a void sign: at least half of the border ring ...
BORDER_OVER = 2.0  # ... and at least twice the value's share of all pixels
OUTLINE_SHARE = 0.5  # a void sign: at least half of its pixels touch another value ...
OUTLINE_OVER = 2.0  # ... at least twice as often as the pixels of all other values do
BLACK = 0  # packed (0, 0, 0)
INDEX_VOID = MAX_LABEL  # 255


@dataclass
class ValueStats:
    pixels: int = 0
    border: int = 0  # pixels in the border ring
    touching: int = 0  # pixels next to a pixel of another value (4-neighbourhood)
    masks: int = 0  # masks it appears in


@dataclass
class MaskCensus:
    """Pixel counts per mask value (packed colour ``r<<16|g<<8|b`` or index value) over the masks read."""

    kind: str = ""
    values: dict[int, ValueStats] = field(default_factory=dict)
    border_pixels: int = 0
    masks_read: int = 0
    masks_total: int = 0
    faults: list[Fault] = field(default_factory=list)

    @property
    def pixels(self) -> int:
        return sum(s.pixels for s in self.values.values())

    def share(self, value: int) -> float:
        return self.values[value].pixels / max(self.pixels, 1)


@dataclass
class VoidGuess:
    value: int
    confidence: str  # high | medium (guessed) | low (one sign only: not guessed)
    reasons: list[str]


@dataclass
class DataGuess:
    census: MaskCensus
    void: list[VoidGuess]
    possible: list[VoidGuess]  # values with one sign of void only: named, not guessed
    classes: list[int]  # the class values in class order (index masks: their values, some indices may be unused)

    @property
    def num_classes(self) -> int:
        return max(self.classes) + 1 if self.census.kind == INDEX else len(self.classes)

    def palette(self, ignore_index: int = 255) -> Palette:
        """Colour masks: classes ``class_0``... with their colours, the guessed void colours as void."""
        colors = [unpack(v) for v in self.classes]
        void = [unpack(g.value) for g in self.void]
        return Palette([f"class_{i}" for i in range(len(colors))], colors, ignore_index, void_colors=void)


def unpack(value: int) -> tuple[int, int, int]:
    return (value >> 16) & 255, (value >> 8) & 255, value & 255


def label(kind: str, value: int) -> str:
    """How a value is shown: ``(r, g, b)`` for colour masks, the number for index masks."""
    return str(unpack(value)) if kind == COLOR else str(value)


def read_labels(path: Path) -> tuple[str, np.ndarray]:
    """(kind, (H,W) int64 values) of a mask as training reads it: packed colours of a colour mask, or the stored
    values of a single-channel index mask (mode L, P, I, I;16)."""
    img = _open(path)
    arr = np.asarray(img)
    if arr.ndim == 3:
        return COLOR, pack_rgb(np.asarray(img.convert("RGB"))).astype(np.int64)
    if arr.dtype.kind == "f" and not np.array_equal(arr, np.round(arr)):
        raise DataError(f"{path}: float mask with non-integer values; an index mask holds whole class indices")
    return INDEX, arr.astype(np.int64)


def _add(census: MaskCensus, labels: np.ndarray) -> None:
    """Adds one mask's (H,W) values: pixels, pixels in the border ring, pixels touching another value."""
    h, w = labels.shape
    values, inverse = np.unique(labels.ravel(), return_inverse=True)
    inverse = inverse.reshape(h, w)
    touching = np.zeros((h, w), dtype=bool)
    across, down = labels[:, 1:] != labels[:, :-1], labels[1:] != labels[:-1]
    touching[:, 1:] |= across
    touching[:, :-1] |= across
    touching[1:] |= down
    touching[:-1] |= down
    r = max(1, round(RING * min(h, w)))
    ring = np.ones((h, w), dtype=bool)
    ring[r:-r, r:-r] = False
    census.border_pixels += int(ring.sum())
    n = len(values)
    counts = zip(np.bincount(inverse.ravel(), minlength=n), np.bincount(inverse[ring], minlength=n))
    for v, (pixels, border), touch in zip(values.tolist(), counts, np.bincount(inverse[touching], minlength=n)):
        s = census.values.setdefault(v, ValueStats())
        s.pixels += int(pixels)
        s.border += int(border)
        s.touching += int(touch)
        s.masks += 1


def count_values(pairs: Sequence[tuple[Path, Path]], max_masks: int = 1000, seed: int = 0) -> MaskCensus:
    """Counts the values of the masks of ``pairs`` (a seeded sample of ``max_masks`` when there are more).
    Memory holds one mask and the per-value totals. Unreadable masks, masks of another kind than the first,
    masks of another size than their image and index values above 255 become faults naming the file."""
    census = MaskCensus(masks_total=len(pairs))
    if len(pairs) > max_masks:
        keep = np.random.default_rng(seed).choice(len(pairs), size=max_masks, replace=False)
        pairs = [pairs[i] for i in sorted(keep)]
    first: tuple[str, Path] | None = None  # the first readable mask's kind: the others must match it
    mismatched = 0
    for image_path, mask_path in tqdm(pairs, desc="counting mask values", unit="mask"):
        try:
            kind, labels = read_labels(mask_path)
            w, h = image_size(image_path)
        except DataError as e:
            census.faults.append(Fault(str(mask_path), str(e)))
            continue
        first = first or (kind, mask_path)
        problem = None
        if kind != first[0]:
            mismatched += 1
            problem = f"{kind} mask, but {first[1]} is a {first[0]} mask: use one kind"
        elif labels.shape != (h, w):
            problem = (
                f"image {image_path} is {w}x{h} but mask {mask_path} is "
                f"{labels.shape[1]}x{labels.shape[0]} (width x height)"
            )
        elif kind == INDEX and (labels.min() < 0 or labels.max() > MAX_LABEL):
            problem = f"index values {labels.min()}..{labels.max()}: masks hold 8-bit class indices (0..{MAX_LABEL})"
        if problem:
            census.faults.append(Fault(str(mask_path), problem))
            continue
        census.kind = kind
        census.masks_read += 1
        _add(census, labels)
        if len(census.values) > MAX_DISTINCT:
            census.faults.append(
                Fault(
                    str(mask_path),
                    f"over {MAX_DISTINCT} distinct values by this mask: these are not label masks "
                    "(photos, JPEG or anti-aliased masks?); masks need exact class colours or indices (PNG)",
                )
            )
            break
    if first is not None and mismatched > census.masks_read:  # most masks differ from the first: it is the odd one
        other = COLOR if first[0] == INDEX else INDEX
        census.faults.insert(0, Fault(str(first[1]), f"{first[0]} mask, but {mismatched} others are {other} masks"))
    return census


LARGE_SHARE = 0.4  # a black value above this share of pixels needs the outline sign to count as black void


def void_signs(census: MaskCensus, value: int) -> tuple[int, list[str]]:
    """(number of signs, what they are, in words) that ``value`` means void; black counts only with another sign."""
    s, kind = census.values[value], census.kind
    word = "colour" if kind == COLOR else "value"
    signs, reasons = 0, []
    if kind == INDEX and value == INDEX_VOID:
        reasons.append("255 is the usual void value of index masks (Pascal VOC) and seglight's ignore_index")
    share, ring = census.share(value), s.border / max(census.border_pixels, 1)
    if ring >= BORDER_SHARE and ring >= BORDER_OVER * share:
        signs += 1
        reasons.append(f"it covers {ring:.0%} of the image borders but only {share:.0%} of all pixels")
    touch = s.touching / max(s.pixels, 1)
    other_pixels = census.pixels - s.pixels
    others = (sum(t.touching for t in census.values.values()) - s.touching) / max(other_pixels, 1)
    if other_pixels and touch >= OUTLINE_SHARE and touch >= OUTLINE_OVER * others:
        signs += 1
        reasons.append(
            f"{touch:.0%} of its pixels touch another {word} (thin outlines or gaps between regions; "
            f"{others:.0%} for the other {word}s)"
        )
    outlines = bool(other_pixels and touch >= OUTLINE_SHARE and touch >= OUTLINE_OVER * others)
    if kind == COLOR and value == BLACK and signs and (outlines or share <= LARGE_SHARE):
        signs += 1
        reasons.append("black is the usual colour of unlabelled pixels (CamVid, Cityscapes)")
    elif kind == COLOR and value == BLACK and signs:
        reasons.append(
            f"it is black, but {share:.0%} of all pixels with no outlines around regions: more likely a background "
            "class (centred objects leave the borders to it)"
        )
    return signs, reasons


def guess_data(census: MaskCensus) -> DataGuess:
    """Classes and void of the counted masks. Guessed void: 255 in index masks, or any value with two signs
    (high confidence with three); one sign makes it a possible void, named but not guessed."""
    void, possible = [], []
    for value in sorted(census.values):
        signs, reasons = void_signs(census, value)
        if census.kind == INDEX and value == INDEX_VOID:
            void.append(VoidGuess(value, "high", reasons))
        elif signs >= 2:
            void.append(VoidGuess(value, "high" if signs >= 3 else "medium", reasons))
        elif signs == 1:
            possible.append(VoidGuess(value, "low", reasons))
    classes = [v for v in sorted(census.values) if v not in {g.value for g in void}]
    if len(classes) < 2:  # segmentation needs two classes: a void guess that leaves one is a real class
        keep = [g for g in void if census.kind == INDEX and g.value == INDEX_VOID]  # 255: read as void regardless
        for g in void:
            if g not in keep:
                reason = f"guessing it void would leave {len(classes)} class(es), so it is taken as a class"
                possible.append(VoidGuess(g.value, "low", [*g.reasons, reason]))
        void = keep
        classes = [v for v in sorted(census.values) if v not in {g.value for g in void}]
    return DataGuess(census, void, possible, classes)


_PLAIN = re.compile(r"[\w./\-+@%~ ]*")


def hydra_value(text: str) -> str:
    """``text`` as a Hydra override value: as it is when plain, else single-quoted (commas, brackets, quotes)."""
    if _PLAIN.fullmatch(text) and text == text.strip():
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def train_overrides(dirs: dict[str, tuple[str, str]], guess: DataGuess, palette: Path | None) -> list[str]:
    """The ``data...`` overrides that train on ``dirs`` (split -> absolute image and mask folders) as guessed."""
    out = ["data=folder"]
    for split, (images, masks) in dirs.items():
        prefix = "" if split == "train" else f"{split}_"
        out += [f"data.{prefix}images={hydra_value(images)}", f"data.{prefix}masks={hydra_value(masks)}"]
    if palette is not None:
        return [*out, f"data.palette={hydra_value(str(palette))}"]
    out.append(f"data.num_classes={guess.num_classes}")
    void_values = [g.value for g in guess.void if g.value != INDEX_VOID]  # 255 is ignore_index already
    return out + ([f"data.void_values=[{','.join(map(str, void_values))}]"] if void_values else [])
