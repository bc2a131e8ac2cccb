"""Which files belong together: groups read from file names (a sequence and block of frames), whole groups to
cross-validation folds or a val hold-out, and train files left out for lying a few frames from a val file."""

from __future__ import annotations

import logging
import re
from typing import Sequence

import numpy as np

from seglight.data.errors import DataError

log = logging.getLogger(__name__)


def file_group(stem: str, pattern: str | None) -> str:
    """The group of a file for cross-validation: the text ``pattern`` (a regex searched in the file stem)
    captures, its groups joined by "_" (e.g. CamVid's sequence and frame block); the stem itself without one."""
    if pattern is None:
        return stem
    match = re.search(pattern, stem)
    if match is None:
        raise DataError(f"data.group_pattern={pattern!r} does not match the file name {stem!r}")
    return "_".join(g for g in match.groups() if g is not None) or match.group(0)


def assign_folds(stems: Sequence[str], folds: int, pattern: str | None = None, seed: int = 0) -> list[int]:
    """The fold (0..folds-1) of each file: whole groups (``file_group``) go to one fold, largest first, each to
    the fold with the fewest files so far (groups of equal size in an order drawn with ``seed``)."""
    groups: dict[str, list[int]] = {}
    for i, stem in enumerate(stems):
        groups.setdefault(file_group(stem, pattern), []).append(i)
    if len(groups) < folds:
        raise DataError(
            f"{len(groups)} groups ({sorted(groups)[:5]}...) cannot fill data.folds={folds}; "
            "use fewer folds or a finer data.group_pattern"
        )
    names = sorted(groups)
    order = np.random.default_rng(seed).permutation(len(names))
    ranked = sorted((names[i] for i in order), key=lambda g: -len(groups[g]))  # stable: seeded order among ties
    sizes = [0] * folds
    assignment = [0] * len(stems)
    for g in ranked:
        k = int(np.argmin(sizes))
        sizes[k] += len(groups[g])
        for i in groups[g]:
            assignment[i] = k
    return assignment


def holdout(n: int, fraction: float, seed: int, groups: Sequence[str] | None = None) -> tuple[list[int], list[int]]:
    """(val indices, train indices) of n items: a ``fraction`` (at least one) drawn with ``seed``, both sorted.
    With ``groups`` (each item's ``file_group``) whole groups are taken, in a seeded order, each that brings
    the count nearer the fraction (train keeps one group at least): no group on both sides."""
    k = max(1, int(round(n * fraction)))
    if groups is None:
        order = np.random.default_rng(seed).permutation(n)
        return sorted(order[:k].tolist()), sorted(order[k:].tolist())
    names = sorted(set(groups))
    if len(names) < 2:
        raise DataError(f"data.group_pattern gives {len(names)} group ({names}): a val hold-out needs two or more")
    members: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    drawn = [names[j] for j in np.random.default_rng(seed).permutation(len(names))]
    chosen: list[str] = []
    total = 0
    for g in drawn:  # in the seeded order, each group that brings val nearer the fraction
        if abs(total + len(members[g]) - k) < abs(total - k):
            chosen.append(g)
            total += len(members[g])
    if not chosen:  # every group is larger than twice the fraction: the smallest, first in the seeded order
        chosen = [min(drawn, key=lambda g: len(members[g]))]
    if len(chosen) == len(names):  # train keeps one group at least
        chosen.pop()
    total = sum(len(members[c]) for c in chosen)
    if abs(total - k) > 0.5 * k:
        log.warning("data.group_pattern: whole groups hold out %d of %d files for data.val_fraction=%s (%d asked)",
                    total, n, fraction, k)  # fmt: skip
    val = sorted(i for g in chosen for i in members[g])
    return val, sorted(set(range(n)) - set(val))


def frame_of(stem: str, pattern: str) -> tuple[str, int]:
    """(sequence, frame number) of a file: the two groups ``pattern`` (a regex searched in the stem) captures."""
    match = re.search(pattern, stem)
    if match is None or len(match.groups()) != 2 or not (match.group(2) or "").isdigit():
        raise DataError(f"data.frame_pattern={pattern!r} does not capture (sequence, frame number) in {stem!r}")
    return match.group(1), int(match.group(2))


def purged(train: Sequence[str], val: Sequence[str], pattern: str, gap: int) -> list[bool]:
    """Whether each train stem stays in training: not when it lies within ``gap`` frame numbers of a val stem of
    the same sequence (``frame_of``). Groups keep frames apart only inside a block: at its edges, frames a second
    apart, nearly the same picture, would sit on both sides of a fold."""
    near: dict[str, list[int]] = {}
    for stem in val:
        sequence, number = frame_of(stem, pattern)
        near.setdefault(sequence, []).append(number)
    frames = {k: np.array(v) for k, v in near.items()}
    keep = []
    for stem in train:
        sequence, number = frame_of(stem, pattern)
        keep.append(sequence not in frames or int(np.abs(frames[sequence] - number).min()) > gap)
    return keep
