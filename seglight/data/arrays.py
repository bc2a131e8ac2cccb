"""Arrays stored as images: ``.npy`` files and multispectral TIFFs (tifffile), read as stored.

``seglight.data.io`` reads images through these where a file is not a picture PIL reads faithfully: a ``.npy``
array, or a TIFF of more bands than RGBA. Layouts: (H,W), (H,W,C) or band-first (C,H,W), as GDAL writes.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from seglight.data.errors import DataError
from seglight.util.files import file_version

TIFF = (".tif", ".tiff")
RGB = 3  # the channel count read as an RGB picture; any other count is read as stored


def load_npy(path: Path) -> np.ndarray:
    """A .npy file, memory-mapped (its header read, its pixels when used)."""
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (ValueError, OSError) as e:
        raise DataError(f"{path}: unreadable .npy file ({e})") from None


def _tiff_error(path: Path, e: Exception) -> DataError:
    return DataError(
        f"{path}: file not found" if isinstance(e, FileNotFoundError) else f"{path}: unreadable TIFF ({e})"
    )


@functools.lru_cache(maxsize=8192)
def _tiff_header(path: str, version: tuple[int, ...]) -> tuple[tuple[int, ...], int, int]:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        return tuple(series.shape), len(series.pages), int(series.keyframe.samplesperpixel)


def tiff_header(path: Path) -> tuple[tuple[int, ...], int, int]:
    """(shape, pages, samples per pixel) of a TIFF's first series, from its header: parsed once per version of the
    file (cached by path and ``file_version``), however often training reads it. Raises what tifffile raises
    (ValueError, OSError, tifffile.TiffFileError)."""
    return _tiff_header(str(path), file_version(path))


def stored_shape(path: Path) -> tuple[int, ...]:
    """The array shape a .npy or TIFF file holds, from its header."""
    if path.suffix.lower() == ".npy":
        return tuple(load_npy(path).shape)
    import tifffile

    try:
        return tiff_header(path)[0]
    except (ValueError, OSError, tifffile.TiffFileError) as e:
        raise _tiff_error(path, e) from None


ORIENTATION_TAG = 274  # TIFF/EXIF orientation: 1 = stored upright


def load_array(path: Path) -> np.ndarray:
    """The whole array of a .npy or TIFF file, as stored."""
    if path.suffix.lower() == ".npy":
        return np.asarray(load_npy(path))
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            tag = tif.pages.first.tags.get(ORIENTATION_TAG)
            orientation = 1 if tag is None else int(tag.value)
            array = tif.asarray() if orientation == 1 else None
    except (ValueError, OSError, tifffile.TiffFileError) as e:
        raise _tiff_error(path, e) from None
    if array is None:  # masks are turned upright by their orientation, these pixels would not be
        raise DataError(
            f"{path}: TIFF orientation {orientation}; multispectral images are read as stored and masks upright, "
            "so the two would not align: save the pixels upright (orientation 1)"
        )
    return array


def height_width(path: Path, shape: tuple[int, ...], channels: int) -> tuple[int, int]:
    """(H, W) of an array stored (H,W), (H,W,channels) or band-first (channels,H,W); else an error naming the file."""
    if len(shape) == 2 and channels == 1:
        return shape[0], shape[1]
    if len(shape) == 3 and shape[0] == shape[2] == channels and channels != RGB:
        raise DataError(
            f"{path}: shape {tuple(shape)} reads as (H,W,{channels}) and as ({channels},H,W) alike; store it (H,W,C)"
        )
    if len(shape) == 3 and shape[2] == channels:
        return shape[0], shape[1]
    if len(shape) == 3 and shape[0] == channels:
        return shape[1], shape[2]
    raise DataError(
        f"{path}: expected an image with {channels} channels (model.in_channels), got an array of shape "
        f"{tuple(shape)}; give (H,W,{channels}) or ({channels},H,W)"
    )


def as_channels(arr: np.ndarray, path: Path, channels: int) -> np.ndarray:
    """An array read from ``path`` -> (H,W,channels) float32 (band-first turned), checked: channel count, numbers,
    finite values; each fault an error naming the file."""
    h, w = height_width(path, arr.shape, channels)
    if arr.ndim == 2:
        arr = arr[..., None]
    elif arr.shape[:2] != (h, w):
        arr = arr.transpose(1, 2, 0)  # band-first
    if arr.dtype.kind not in "uif" and arr.dtype != np.bool_:
        raise DataError(f"{path}: pixel type {arr.dtype} is not a number")
    out = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(out).all():
        raise DataError(f"{path}: {int((~np.isfinite(out)).sum())} value(s) not finite (NaN or infinity)")
    return out


def refuse_multispectral_tiff(path: Path) -> None:
    """A TIFF of more samples per pixel than RGBA, or a stack of pages, read as a picture would lose bands (PIL reads
    the first page, and at most four samples): an error instead."""
    import tifffile

    try:
        shape, pages, samples = tiff_header(path)
    except (ValueError, OSError, tifffile.TiffFileError):
        return  # PIL's reading reports what is wrong with the file
    if pages > 1 or samples > 4:
        raise DataError(
            f"{path}: an array of shape {shape}, not an RGB picture; for multispectral images set "
            "model.in_channels to its number of channels"
        )
