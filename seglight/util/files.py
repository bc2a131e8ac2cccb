"""Writing files atomically (a temporary file beside the target, renamed over it when complete), JSON too."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, BinaryIO, Callable, Mapping


def file_version(path: Path) -> tuple[int, int, int, int]:
    """(inode, size, modification time, change time) of ``path``: changes whenever its bytes can have. ``cp -p`` or
    ``tar x`` keep size and modification time on a replaced file, never the change time; a rename keeps all four."""
    st = path.stat()
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


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


def _json_safe(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, inf) in it, nested ones included, replaced by None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_json(path: str | Path, data: Mapping) -> None:
    """Writes JSON atomically (a crash never leaves half a file); NaN and inf become null, so it is valid JSON."""
    text = json.dumps(_json_safe(dict(data)), indent=2, sort_keys=True, allow_nan=False)
    atomic_write(path, lambda f: f.write(text.encode()))
