"""Decoded images kept on disk as .npy arrays and memory-mapped (``data.cache_images=true``).

Decoding a PNG or JPEG costs more CPU than the crop, flip and colour jitter that follow it; on a 2-core machine the
DataLoader worker's decoding competes with the training step for the same cores. With the cache each image is
decoded once (by whichever process reads it first) into ``<folder>/<key>.npy``, written atomically, and every later
read maps that file: the operating system's page cache holds it once for all workers and DDP ranks. The key hashes
the file's path, size, modification time and channel count, so an edited image is decoded anew.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path
from typing import Callable

import numpy as np

from seglight.data.io import image_size
from seglight.util.files import atomic_write

log = logging.getLogger(__name__)

FREE_SPACE_SHARE = 0.5  # refuse a cache that would fill more than this share of the free disk space


class ImageCache:
    """``read(path, decode)`` -> the decoded image of ``path``, from ``folder`` when decoded before."""

    def __init__(self, folder: str | Path, channels: int = 3) -> None:
        self.folder = Path(folder)
        self.channels = channels

    def entry(self, path: Path) -> Path:
        stat = path.stat()
        key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{self.channels}"
        return self.folder / f"{hashlib.sha1(key.encode()).hexdigest()[:20]}.npy"

    def read(self, path: Path, decode: Callable[[], np.ndarray]) -> np.ndarray:
        entry = self.entry(path)
        if entry.exists():
            return np.load(entry, mmap_mode="r")
        image = decode()
        try:
            atomic_write(entry, lambda f: np.save(f, image, allow_pickle=False))
        except OSError as e:  # a full or read-only disk: decode every time, as without the cache
            log.warning("could not cache the decoded image %s at %s: %s", path, entry, e)
        return image


def estimate_bytes(images: list[Path], channels: int = 3) -> int:
    """Bytes the decoded images take: uint8 RGB, float32 for multispectral (from the file headers)."""
    per_value = 1 if channels == 3 else 4
    total = 0
    for p in images:
        w, h = image_size(p, channels)
        total += w * h * channels * per_value
    return total


def open_cache(folder: Path, images: list[Path], channels: int = 3) -> ImageCache:
    """The cache for ``images`` in ``folder``, after saying how large it grows; refused (ValueError naming the folder)
    when that exceeds half the free disk space there."""
    need = estimate_bytes(images, channels)
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if need > FREE_SPACE_SHARE * free:
        raise ValueError(
            f"data.cache_images: {len(images)} decoded images need {need / 2**20:.0f} MiB in {folder}, "
            f"{free / 2**20:.0f} MiB are free; give data.cache_dir=<a larger disk> or data.cache_images=false"
        )
    log.info("data.cache_images: %d images, %.0f MiB decoded, in %s", len(images), need / 2**20, folder)
    return ImageCache(folder, channels)
