"""Reading images and masks from disk, with errors that name the file.

Images come back as RGB (H,W,3) uint8 (grey and RGBA are converted). Masks come back as index
masks (H,W) uint8: colour masks through a Palette, index masks as stored, with ``void_values``
mapped to ``ignore_index`` and any other value >= num_classes reported.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from seglight.data.palette import Palette

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class DataError(ValueError):
    """Bad input data; the message names the offending file."""


def _open(path: Path) -> Image.Image:
    try:
        img = Image.open(path)
        img.load()  # decode now so a truncated file fails here, not deep inside a DataLoader
        return img
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise DataError(f"{path}: unreadable or truncated image ({e})") from None


def read_image(path: str | Path) -> np.ndarray:
    """Image file -> (H,W,3) uint8 RGB."""
    img = _open(Path(path))
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img)


def read_mask(path: str | Path, num_classes: int, palette: Palette | None = None,
              ignore_index: int = 255, void_values: tuple[int, ...] = ()) -> np.ndarray:
    """Mask file -> (H,W) uint8 of class indices in [0, num_classes) or ``ignore_index``.

    With a palette the file is a colour mask; without, a single-channel index mask (mode L, P or I),
    read as stored (never ``convert("L")``, which would turn palette indices into grey levels).
    """
    path = Path(path)
    img = _open(path)
    if palette is not None:
        rgb = np.asarray(img.convert("RGB"))
        return palette.to_index(rgb, source=str(path))
    arr = np.asarray(img)
    if arr.ndim != 2:
        raise DataError(f"{path}: expected a single-channel index mask, got shape {arr.shape} (mode {img.mode}); "
                        "for colour masks give a palette (data.palette=FILE.csv)")
    mask = arr.astype(np.int64, copy=False)
    for v in void_values:
        mask = np.where(mask == v, ignore_index, mask)
    bad = (mask >= num_classes) & (mask != ignore_index) | (mask < 0)
    if bad.any():
        values, counts = np.unique(mask[bad], return_counts=True)
        listed = ", ".join(f"{int(v)} x{int(n)} px" for v, n in zip(values[:10], counts[:10]))
        raise DataError(f"{path}: index value(s) not in 0..{num_classes - 1} and not ignore_index "
                        f"{ignore_index}: {listed}")
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


def match_by_stem(images: dict[str, Path], masks: dict[str, Path]
                  ) -> tuple[list[tuple[Path, Path]], list[Path], list[Path]]:
    """(image, mask) pairs sharing a stem, images without a mask, masks without an image; each sorted by stem."""
    pairs = [(images[s], masks[s]) for s in sorted(set(images) & set(masks))]
    return (pairs, [images[s] for s in sorted(set(images) - set(masks))],
            [masks[s] for s in sorted(set(masks) - set(images))])


def pair_files(image_dir: str | Path, mask_dir: str | Path) -> list[tuple[Path, Path]]:
    """(image, mask) pairs matched by file stem, sorted; any unpaired file is an error."""
    pairs, only_images, only_masks = match_by_stem(list_images(image_dir), list_images(mask_dir))
    if only_images or only_masks:
        lines = [f"image without a mask: {p}" for p in only_images[:10]]
        lines += [f"mask without an image: {p}" for p in only_masks[:10]]
        extra = len(only_images) + len(only_masks) - len(lines)
        raise DataError("unpaired files between {} and {}:\n  {}{}".format(
            image_dir, mask_dir, "\n  ".join(lines), f"\n  ... and {extra} more" if extra > 0 else ""))
    return pairs
