"""Decoded images kept on disk as .npy arrays and memory-mapped (``data.cache_images=true``).

Decoding a PNG or JPEG costs more CPU than the crop, flip and colour jitter that follow it; on a 2-core machine the
DataLoader worker's decoding competes with the training step for the same cores. With the cache each image is
decoded once (by whichever process reads it first) into ``<folder>/<key>.npy``, written atomically, and every later
read maps that file: the operating system's page cache holds it once for all workers and DDP ranks. The key hashes
the file's path, inode, size, modification and change times and the channel count, so an edited or replaced image
is decoded anew. The folder is ``data.cache_dir/images``, else ``$SEGLIGHT_CACHE/images`` (``~/.cache/seglight``):
never inside the data folder, which may be shared or read-only. Old entries are not removed: delete the folder.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from pathlib import Path
from typing import Callable

import numpy as np

from seglight.data import io
from seglight.data.io import image_size
from seglight.util.files import atomic_write, file_version

log = logging.getLogger(__name__)

FREE_SPACE_SHARE = 0.5  # refuse a cache that would fill more than this share of the free disk space


class ImageCache:
    """``read(path, decode)`` -> the decoded image of ``path``, from ``folder`` when decoded before."""

    def __init__(self, folder: str | Path, channels: int = 3) -> None:
        self.folder = Path(folder)
        self.channels = channels

    def entry(self, path: Path) -> Path:
        stamp = "|".join(map(str, file_version(path)))  # the key as before file_version existed: old entries stay valid
        key = f"{path.resolve()}|{stamp}|{self.channels}|{io.READER_VERSION}"
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


def default_folder() -> Path:
    """``$SEGLIGHT_CACHE/images``, by default ``~/.cache/seglight/images``."""
    return Path(os.environ.get("SEGLIGHT_CACHE", "~/.cache/seglight")).expanduser() / "images"


def estimate_bytes(images: list[Path], channels: int = 3) -> int:
    """Bytes the decoded images take: uint8 RGB, float32 for multispectral (from the file headers)."""
    per_value = 1 if channels == 3 else 4
    total = 0
    for p in images:
        w, h = image_size(p, channels)
        total += w * h * channels * per_value
    return total


def open_cache(folder: Path, images: list[Path], channels: int = 3) -> ImageCache | None:
    """The cache for ``images`` in ``folder``, after saying how large it grows; refused (ValueError naming the folder)
    when what is not cached yet exceeds half the free disk space there; None (decode every time, with a warning)
    when the folder cannot be written."""
    images = sorted(set(images))
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        log.warning("data.cache_images: cannot write %s (%s): decoding every time", folder, e)
        return None
    cache = ImageCache(folder, channels)
    need = estimate_bytes([p for p in images if not cache.entry(p).exists()], channels)
    free = shutil.disk_usage(folder).free
    if need > FREE_SPACE_SHARE * free:
        raise ValueError(
            f"data.cache_images: {len(images)} decoded images need {need / 2**20:.0f} MiB in {folder}, "
            f"{free / 2**20:.0f} MiB are free; give data.cache_dir=<a larger disk> or data.cache_images=false"
        )
    log.info("data.cache_images: %d images, %.0f MiB still to decode, in %s", len(images), need / 2**20, folder)
    return cache
