"""Class pixel statistics of the training masks and the class weights made from them, cached on disk.

The cache file is keyed by everything that defines the counts: the mask files (path, size, mtime) and the
classes (names, colours, void colours, colour or index masks, ignore_index, void values). Reorder the
palette, change the void values or touch a mask and the counts are computed anew. It is written
atomically, so a process reading it while another rank writes it sees the whole file or none.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from seglight.data.dataset import SegmentationDataset
from seglight.util.files import atomic_write

log = logging.getLogger(__name__)


def pixel_counts(dataset: SegmentationDataset) -> np.ndarray:
    """(C,) int64 pixels per class over the dataset's masks, void (ignore_index) excluded."""
    c = dataset.num_classes
    counts = np.zeros(c, dtype=np.int64)
    for i in tqdm(range(len(dataset)), desc="counting class pixels", leave=False):
        m = dataset.read_mask(i)
        counts += np.bincount(m[m != dataset.ignore_index].ravel(), minlength=c)[:c]
    return counts


def counts_key(dataset: SegmentationDataset, classes: dict[str, Any]) -> str:
    """A hash of the dataset's mask files (path, size, mtime) and ``classes`` (what defines the labels)."""
    masks = [[str(m), m.stat().st_size, m.stat().st_mtime_ns] for _, m in dataset.pairs]
    return hashlib.sha1(json.dumps([masks, classes]).encode()).hexdigest()[:16]


def cached_pixel_counts(dataset: SegmentationDataset, classes: dict[str, Any], folder: Path) -> np.ndarray:
    """``pixel_counts``, read from ``folder/counts-<key>.json`` when computed before (``counts_key``)."""
    cache = Path(folder) / f"counts-{counts_key(dataset, classes)}.json"
    if cache.exists():
        return np.array(json.loads(cache.read_text()), dtype=np.int64)
    counts = pixel_counts(dataset)
    try:
        atomic_write(cache, lambda f: f.write(json.dumps(counts.tolist()).encode()))
    except OSError as e:  # a read-only data folder: recompute next time
        log.warning("could not cache class pixel counts at %s: %s", cache, e)
    return counts


def median_frequency_weights(counts: np.ndarray, power: float = 1.0) -> list[float]:
    """(median(freq) / freq_c) ** power per class (0 for classes absent from training). power=0.5
    (``loss.class_weights=auto_sqrt``) softens them: full median-frequency weights can span 100x."""
    freq = counts.astype(np.float64) / max(int(counts.sum()), 1)
    present = freq > 0
    weights = np.zeros_like(freq)
    weights[present] = (np.median(freq[present]) / freq[present]) ** power
    return weights.round(6).tolist()
