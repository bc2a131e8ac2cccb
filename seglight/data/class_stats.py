"""Statistics of the training data, cached on disk: class pixel counts of the masks (and the class weights made
from them), and the per-channel mean and std of the images (``data.mean=auto``).

Each cache file is keyed by everything that defines it: the files (path, size, mtime) and, for the counts, the
classes (names, colours, void colours, colour or index masks, ignore_index, void values), for the channel
statistics the channel count. Reorder the palette, change the void values or touch a file and they are computed
anew. It is written atomically, so a process reading it while another rank writes it sees the whole file or none.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from tqdm import tqdm

from seglight.data import io
from seglight.data.dataset import SegmentationDataset
from seglight.data.transforms import IMAGENET_MEAN, IMAGENET_STD, pixel_values
from seglight.util.files import atomic_write, file_version

log = logging.getLogger(__name__)


def pixel_counts(dataset: SegmentationDataset) -> np.ndarray:
    """(C,) int64 pixels per class over the dataset's masks, void (ignore_index) excluded."""
    c = dataset.num_classes
    counts = np.zeros(c, dtype=np.int64)
    for i in tqdm(range(len(dataset)), desc="counting class pixels", leave=False):
        m = dataset.read_mask(i)
        counts += np.bincount(m[m != dataset.ignore_index].ravel(), minlength=c)[:c]
    return counts


def channel_stats(dataset: SegmentationDataset) -> tuple[list[float], list[float]]:
    """(mean, std) per image channel over every pixel of the dataset's images, in the units of ``pixel_values``
    (RGB: value / 255; multispectral: as stored). Sums in float64, one image at a time."""
    total = square = None
    count = 0
    for i in tqdm(range(len(dataset)), desc="measuring channel mean/std", leave=False):
        x = pixel_values(dataset.read_image(i)).reshape(-1, dataset.channels).astype(np.float64)
        total = x.sum(0) if total is None else total + x.sum(0)
        square = (x * x).sum(0) if square is None else square + (x * x).sum(0)
        count += len(x)
    if total is None or square is None:
        raise ValueError("data.mean=auto: no training images to measure")
    mean = total / count
    std = np.sqrt(np.maximum(square / count - mean * mean, 0.0))
    if (std == 0).any():
        raise ValueError(f"data.std=auto: channel(s) {np.flatnonzero(std == 0).tolist()} are constant in every image")
    return mean.tolist(), std.tolist()


def channel_option(key: str, value: Sequence[float] | str | None, channels: int) -> tuple[float, ...] | str | None:
    """data.mean / data.std as given: None, "auto" or one number per channel (checked against ``channels``)."""
    if value is None or value == "auto":
        return value
    if isinstance(value, str):
        raise ValueError(f"data.{key}={value!r}: give auto, null or one number per channel")
    numbers = tuple(float(v) for v in value)
    if len(numbers) != channels:
        raise ValueError(f"data.{key} has {len(numbers)} values for {channels} input channels (model.in_channels)")
    return numbers


class Normalisation:
    """data.mean / data.std resolved on first use: the values given, ImageNet's for RGB when none are, else
    (``auto``, or none given for other channel counts) ``measure()``'s (mean, std) of the training images."""

    def __init__(
        self,
        mean: Sequence[float] | str | None,
        std: Sequence[float] | str | None,
        channels: int,
        measure: Callable[[], tuple[list[float], list[float]]],
    ) -> None:
        self.options = {"mean": channel_option("mean", mean, channels), "std": channel_option("std", std, channels)}
        self.channels = channels
        self.measure = measure
        self.measured: tuple[list[float], list[float]] | None = None

    @property
    def mean(self) -> tuple[float, ...]:
        return self._values("mean", IMAGENET_MEAN, 0)

    @property
    def std(self) -> tuple[float, ...]:
        return self._values("std", IMAGENET_STD, 1)

    def forget(self) -> None:
        """Measure again on next use (the training files changed)."""
        self.measured = None

    def _values(self, key: str, imagenet: Sequence[float], which: int) -> tuple[float, ...]:
        option = self.options[key]
        if option is None and self.channels == 3:
            return tuple(imagenet)
        if option is None or isinstance(option, str):  # "auto"
            if self.measured is None:
                self.measured = self.measure()
                log.info("data mean/std measured on the training images: %s / %s", *self.measured)
            return tuple(self.measured[which])
        return tuple(option)


def files_key(files: list[Path], extra: Any) -> str:
    """A hash of ``files`` (path and ``file_version``), ``extra`` (whatever else defines the statistic) and the
    reader version (what the files decode to)."""
    stamps = [[str(f), *file_version(f)] for f in files]
    return hashlib.sha1(json.dumps([stamps, extra, io.READER_VERSION]).encode()).hexdigest()[:16]


def cached(path: Path, compute: Callable[[], Any], what: str) -> Any:
    """The JSON in ``path`` if it exists, else ``compute()``, written there atomically (a read-only folder: not)."""
    if path.exists():
        return json.loads(path.read_text())
    value = compute()
    try:
        atomic_write(path, lambda f: f.write(json.dumps(value).encode()))
    except OSError as e:  # a read-only data folder: recompute next time
        log.warning("could not cache %s at %s: %s", what, path, e)
    return value


def counts_key(dataset: SegmentationDataset, classes: dict[str, Any]) -> str:
    """A hash of the dataset's mask files (``files_key``) and ``classes`` (what defines the labels)."""
    return files_key([m for _, m in dataset.pairs], classes)


def cached_pixel_counts(dataset: SegmentationDataset, classes: dict[str, Any], folder: Path) -> np.ndarray:
    """``pixel_counts``, read from ``folder/counts-<key>.json`` when computed before (``counts_key``)."""
    cache = Path(folder) / f"counts-{counts_key(dataset, classes)}.json"
    counts = cached(cache, lambda: pixel_counts(dataset).tolist(), "class pixel counts")
    return np.array(counts, dtype=np.int64)


def cached_channel_stats(dataset: SegmentationDataset, folder: Path) -> tuple[list[float], list[float]]:
    """``channel_stats``, read from ``folder/channels-<key>.json`` when computed before (keyed by the image files
    and the channel count)."""
    key = files_key([im for im, _ in dataset.pairs], {"channels": dataset.channels})
    mean, std = cached(Path(folder) / f"channels-{key}.json", lambda: channel_stats(dataset), "channel mean/std")
    return list(mean), list(std)


def median_frequency_weights(counts: np.ndarray, power: float = 1.0) -> list[float]:
    """(median(freq) / freq_c) ** power per class (0 for classes absent from training). power=0.5
    (``loss.class_weights=auto_sqrt``) softens them: full median-frequency weights can span 100x.

    freq_c is class c's share of all labelled training pixels. Eigen & Fergus (and SegNet's published CamVid
    weights) divide by the pixels of only the images that hold c instead, which weighs classes found in few images
    less; weights from here are not those numbers."""
    freq = counts.astype(np.float64) / max(int(counts.sum()), 1)
    present = freq > 0
    weights = np.zeros_like(freq)
    weights[present] = (np.median(freq[present]) / freq[present]) ** power
    return weights.round(6).tolist()
