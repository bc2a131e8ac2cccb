"""Reading images and masks from disk, with errors that name the file.

Both are read as a viewer displays them: a file's EXIF orientation (phone photos store portrait pictures
turned on their side) is applied, so an image and a mask drawn on the upright picture line up.
Images come back as RGB (H,W,3) uint8 (grey, RGBA, palette, 16-bit and float images are converted, see
``read_image``), or, for multispectral data (``channels`` other than 3), as (H,W,N) float32 with the values
as stored (TIFF via tifffile, ``.npy``; see ``read_channels``). Masks come back as index masks (H,W) uint8:
colour masks through a Palette, index masks (images or .npy) as stored, with ``void_values`` mapped to
``ignore_index`` and any other value >= num_classes reported.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from seglight.data.arrays import (
    RGB,
    TIFF,
    as_channels,
    height_width,
    load_array,
    load_npy,
    refuse_multispectral_tiff,
    stored_shape,
)
from seglight.data.errors import DataError
from seglight.data.palette import Palette, check_label_range

# raise when what a file decodes to changes: keys the image cache and the cached class counts and channel statistics
# (2: multispectral TIFFs with a turning orientation tag refused)
READER_VERSION = 2
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".npy")
LOSSY_EXTENSIONS = (".jpg", ".jpeg")  # refused for masks: compression changes the labels at every edge

SWAPS_SIDES = (5, 6, 7, 8)  # EXIF orientations that turn the picture a quarter turn: width and height swap


def _orientation(img: Image.Image) -> int:
    """EXIF orientation 1..8 (1, also for a missing or invalid tag: the pixels are stored upright)."""
    k = img.getexif().get(ExifTags.Base.Orientation, 1)
    return k if k in range(1, 9) else 1


def _open(path: Path) -> Image.Image:
    """The decoded image, turned upright by its EXIF orientation."""
    try:
        img = Image.open(path)
        orientation = _orientation(img)  # before decoding: a TIFF's tags are read from the open file
        img.load()  # decode now so a truncated file fails here, not deep inside a DataLoader
        return ImageOps.exif_transpose(img) if orientation != 1 else img
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise DataError(f"{path}: unreadable or truncated image ({e})") from None


def image_size(path: str | Path, channels: int = RGB) -> tuple[int, int]:
    """(width, height) of the image as displayed (EXIF orientation applied), without decoding a JPEG; of a
    multispectral file (``channels`` other than 3) from its header."""
    path = Path(path)
    if path.suffix.lower() == ".npy" or (channels != RGB and path.suffix.lower() in TIFF):
        h, w = height_width(path, stored_shape(path), channels)
        return w, h
    try:
        with Image.open(path) as img:
            w, h = img.size
            return (h, w) if _orientation(img) in SWAPS_SIDES else (w, h)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except Image.DecompressionBombError:
        if path.suffix.lower() in (".tif", ".tiff"):  # a scene larger than PIL opens: tifffile reads its header
            import tifffile

            with tifffile.TiffFile(path) as tif:
                h, w = tif.pages.first.shape[:2]
            return w, h
        raise DataError(
            f"{path}: more pixels than PIL opens; save scenes this large as an uncompressed TIFF, which predict streams"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise DataError(f"{path}: unreadable or truncated image ({e})") from None


def _grey_to_uint8(arr: np.ndarray, path: Path) -> np.ndarray:
    """A single-channel integer or float image (H,W) -> (H,W) uint8 by the rule in ``read_image``."""
    is_float = arr.dtype.kind == "f"
    if not is_float and 0 <= int(arr.min()) and int(arr.max()) <= 65535:
        return ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)  # v / 257 rounded: 0..65535 -> 0..255
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise DataError(
            f"{path}: float image with {int((~np.isfinite(arr)).sum())} pixel(s) not finite "
            "(NaN or infinity); replace them before training or prediction"
        )
    lo, hi = float(arr.min()), float(arr.max())
    if is_float and lo >= 0.0 and hi <= 1.0:
        scaled = arr * 255.0
    elif hi > lo:
        scaled = (arr - lo) * (255.0 / (hi - lo))
    else:
        scaled = np.zeros_like(arr)
    return np.clip(np.round(scaled), 0, 255).astype(np.uint8)


def read_channels(path: str | Path, channels: int) -> np.ndarray:
    """A multispectral image -> (H,W,channels) float32, values as stored (no scaling: ``data.mean/std`` are in
    the file's units, ``data.mean=auto`` measures them).

    TIFF files are read with tifffile, ``.npy`` files with numpy, other formats with PIL (grey for channels=1);
    an array stored band-first (channels,H,W) is turned to (H,W,channels). A file with another number of
    channels is an error naming it; so are NaN or infinite values (``seglight.data.arrays.as_channels``).
    """
    path = Path(path)
    arr = load_array(path) if path.suffix.lower() in (".npy", *TIFF) else np.asarray(_open(path))
    return as_channels(arr, path, channels)


def read_image(path: str | Path, channels: int = RGB) -> np.ndarray:
    """Image file -> (H,W,3) uint8 RGB, upright by its EXIF orientation.

    8-bit images keep their values: grey is repeated over the three channels, palette ("P") images take
    their palette colours, alpha is dropped. Images of more than 8 bits are scaled, never clipped:
    16-bit integers (modes "I;16*", and mode "I" whose values lie in 0..65535) by 255/65535, i.e. divided
    by 257 and rounded; other 32-bit integers and float images ("F") from the image's own min..max onto
    0..255 (a constant one gives zeros), except float images whose values all lie in [0, 1], which are
    multiplied by 255 and rounded. Float images with NaN or infinity are refused.

    ``channels`` other than 3: a multispectral image, (H,W,channels) float32 by ``read_channels``.
    """
    if channels != RGB:
        return read_channels(path, channels)
    path = Path(path)
    if path.suffix.lower() == ".npy":
        arr = np.asarray(load_npy(path))
        if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
            raise DataError(
                f"{path}: an RGB picture from .npy is (H,W,3) uint8, this holds {arr.dtype} {arr.shape}; "
                "for multispectral arrays set model.in_channels"
            )
        return arr
    if path.suffix.lower() in TIFF:
        refuse_multispectral_tiff(path)
    img = _open(path)
    if img.mode == "RGB":
        return np.asarray(img)
    if img.mode == "F" or img.mode.startswith("I"):
        grey = _grey_to_uint8(np.asarray(img), path)
        return np.repeat(grey[..., None], 3, axis=2)
    return np.asarray(img.convert("RGB"))


def read_mask(
    path: str | Path,
    num_classes: int,
    palette: Palette | None = None,
    ignore_index: int = 255,
    void_values: tuple[int, ...] = (),
) -> np.ndarray:
    """Mask file -> (H,W) uint8 of class indices in [0, num_classes) or ``ignore_index``, upright (EXIF orientation).

    With a palette the file is a colour mask; without, a single-channel index mask (mode L, P, I or I;16),
    read as stored (never ``convert("L")``, which would turn palette indices into grey levels). Labels
    must fit 8 bits (at most 255 classes, ignore_index in 0..255), else ValueError before reading. JPEG masks are
    refused (``LOSSY_EXTENSIONS``).
    """
    check_label_range(num_classes, ignore_index)
    path = Path(path)
    refuse_lossy_masks([path])
    if path.suffix.lower() == ".npy":
        arr, mode = np.asarray(load_npy(path)), ".npy"
        if palette is not None:
            raise DataError(f"{path}: a .npy mask holds class indices; colour masks (data.palette) are images")
    else:
        img = _open(path)
        if palette is not None:
            rgb = np.asarray(img.convert("RGB"))
            return palette.to_index(rgb, source=str(path))
        arr, mode = np.asarray(img), f"mode {img.mode}"
    if arr.ndim != 2:
        raise DataError(
            f"{path}: expected a single-channel index mask, got shape {arr.shape} ({mode}); "
            "for colour masks give a palette (data.palette=FILE.csv)"
        )
    if arr.dtype.kind == "f" and not np.array_equal(arr, np.round(arr)):
        raise DataError(f"{path}: float mask with non-integer values; an index mask holds whole class indices")
    mask = arr.astype(np.int64, copy=False)
    for v in void_values:
        mask = np.where(mask == v, ignore_index, mask)
    bad = (mask >= num_classes) & (mask != ignore_index) | (mask < 0)
    if bad.any():
        values, counts = np.unique(mask[bad], return_counts=True)
        listed = ", ".join(f"{int(v)} x{int(n)} px" for v, n in zip(values[:10], counts[:10]))
        raise DataError(
            f"{path}: index value(s) not in 0..{num_classes - 1} and not ignore_index {ignore_index}: {listed}"
        )
    return mask.astype(np.uint8)


def list_images(folder: str | Path) -> dict[str, Path]:
    """stem -> path for the image files in ``folder``, sorted by stem."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not files:
        raise DataError(f"{folder}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in the folder")
    by_stem: dict[str, Path] = {}
    for p in files:
        if p.stem in by_stem:
            raise DataError(f"{folder}: two files share the stem {p.stem!r}: {by_stem[p.stem].name}, {p.name}")
        by_stem[p.stem] = p
    return by_stem


def match_by_stem(
    images: dict[str, Path], masks: dict[str, Path]
) -> tuple[list[tuple[Path, Path]], list[Path], list[Path]]:
    """(image, mask) pairs sharing a stem, images without a mask, masks without an image; each sorted by stem."""
    pairs = [(images[s], masks[s]) for s in sorted(set(images) & set(masks))]
    return (
        pairs,
        [images[s] for s in sorted(set(images) - set(masks))],
        [masks[s] for s in sorted(set(masks) - set(images))],
    )


def refuse_lossy_masks(masks: list[Path]) -> None:
    """DataError naming the first JPEG file among ``masks`` and counting the rest."""
    lossy = [m for m in masks if m.suffix.lower() in LOSSY_EXTENSIONS]
    if lossy:
        more = f" (and {len(lossy) - 1} more)" if len(lossy) > 1 else ""
        raise DataError(
            f"{lossy[0]}{more}: a JPEG mask; lossy compression changes the labels along every edge, and the changed "
            "values can still be valid classes. Save masks losslessly (PNG) from their source"
        )


def pair_files(image_dir: str | Path, mask_dir: str | Path) -> list[tuple[Path, Path]]:
    """(image, mask) pairs matched by file stem, sorted; any unpaired file or JPEG mask is an error."""
    pairs, only_images, only_masks = match_by_stem(list_images(image_dir), list_images(mask_dir))
    if only_images or only_masks:
        lines = [f"image without a mask: {p}" for p in only_images[:10]]
        lines += [f"mask without an image: {p}" for p in only_masks[:10]]
        extra = len(only_images) + len(only_masks) - len(lines)
        raise DataError(
            "unpaired files between {} and {}:\n  {}{}".format(
                image_dir, mask_dir, "\n  ".join(lines), f"\n  ... and {extra} more" if extra > 0 else ""
            )
        )
    refuse_lossy_masks([m for _, m in pairs])
    return pairs
