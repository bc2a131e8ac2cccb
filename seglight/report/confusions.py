"""Per-image confusion matrices on disk: what bootstrap intervals, ``seglight.compare`` and the sweep summary
resample. evaluate writes ``confusions.npz`` into its output; the final validation of a training run writes
``val_confusions.npz`` into its run dir, in the same format."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from seglight.util.files import atomic_write

CONFUSIONS = "confusions.npz"  # in an evaluate output
VAL_CONFUSIONS = "val_confusions.npz"  # in a training run dir: its best checkpoint's val images


def save_confusions(
    path: str | Path, images: Sequence[str], confusions: Sequence[np.ndarray], names: Sequence[str]
) -> None:
    """Writes ``images`` (N,) paths, ``confusions`` (N,C,C) int64 counts per image (rows = target, columns =
    prediction, void left out) and ``class_names`` (C,) to an .npz file, atomically."""
    c = len(names)
    stack = np.stack(confusions).astype(np.int64) if len(confusions) else np.zeros((0, c, c), np.int64)
    if stack.shape[1:] != (c, c) or len(stack) != len(images):
        raise ValueError(f"{len(images)} images and {len(names)} classes, but confusions of shape {stack.shape}")
    atomic_write(
        path,
        lambda f: np.savez_compressed(f, images=np.array(list(images)), confusions=stack, class_names=np.array(names)),
    )


def load_confusions(path: str | Path) -> tuple[list[str], np.ndarray, list[str]]:
    """An .npz of ``save_confusions`` -> (image paths, (N,C,C) int64 counts, class names)."""
    with np.load(path) as z:
        return [str(x) for x in z["images"]], z["confusions"], [str(x) for x in z["class_names"]]
