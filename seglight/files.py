"""Writing files atomically: a temporary file beside the target, renamed over it when complete."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO, Callable


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object], fsync: bool = False) -> Path:
    """Calls ``write(f)`` on a temporary file beside ``path``, then renames it over ``path``.

    A crash or kill at any moment leaves the old file or the new one, never a torn one, and no
    temporary file. ``fsync`` also flushes the data to disk before the rename (checkpoints).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}{path.suffix}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
