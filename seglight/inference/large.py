"""Images too large to hold whole (aerial and microscopy scenes): predicted strip by strip in bounded memory.

The sliding windows of ``seglight.model.tiling`` are visited one row of windows at a time. Probabilities are
accumulated (Gaussian-weighted, as ``sliding_window`` does) only for the rows the current row of windows
covers, at most ``tile_size`` rows of C float32 each; rows no later window reaches are final, turned into
class indices and appended to a temporary file, and dropped. The PNGs are then written row by row (pypng)
from that file, so neither the probabilities, the index mask nor the colour outputs exist whole in memory.

The input is read in strips where the file allows it: an uncompressed TIFF (what GIS and microscopy tools
write for large scenes) is read straight from its bytes, strip by strip; any other file is decoded whole
once (PIL has no partial decoding for PNG), and the rest still streams.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np
import png
import torch

from seglight.data.io import read_image
from seglight.data.transforms import to_input
from seglight.inference.predictor import Predictor
from seglight.model.tiling import TILE_SIZE, tile_starts, window_weights
from seglight.report.figures import overlay
from seglight.util.files import atomic_write

STREAM_PIXELS = 4096 * 4096  # predict streams images with more pixels than this


class StripSource:
    """Rows of an (H,W,3) uint8 image: ``rows(y0, y1)`` -> (y1-y0, W, 3)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._whole: np.ndarray | None = None
        self._offset: int | None = None
        self.shape = self._open_tiff() or self._decode()

    def _open_tiff(self) -> tuple[int, int] | None:
        """(H, W) of an uncompressed, contiguous 8-bit RGB TIFF read in place; None for any other file."""
        if self.path.suffix.lower() not in (".tif", ".tiff"):
            return None
        import tifffile

        with tifffile.TiffFile(self.path) as tif:
            page = tif.pages.first
            orientation = page.tags.get("Orientation")
            upright = orientation is None or int(orientation.value) == 1
            if (
                page.is_contiguous
                and page.is_final
                and page.photometric == tifffile.PHOTOMETRIC.RGB
                and upright
                and page.dtype == np.uint8
                and len(page.shape) == 3
                and page.shape[2] == 3
                and page.planarconfig == tifffile.PLANARCONFIG.CONTIG
            ):
                self._offset = int(page.dataoffsets[0])
                return int(page.shape[0]), int(page.shape[1])
        return None

    def _decode(self) -> tuple[int, int]:
        self._whole = read_image(self.path)
        return self._whole.shape[0], self._whole.shape[1]

    def rows(self, y0: int, y1: int) -> np.ndarray:
        if self._whole is not None:
            return self._whole[y0:y1]
        width = self.shape[1] * 3
        with self.path.open("rb") as f:
            f.seek(int(self._offset or 0) + y0 * width)
            data = f.read((y1 - y0) * width)
        return np.frombuffer(data, np.uint8).reshape(y1 - y0, self.shape[1], 3)


def predict_strips(predictor: Predictor, source: StripSource) -> Iterator[tuple[int, np.ndarray]]:
    """Yields (y0, class indices (h,W) uint8) from the top of the image down, the rows' final prediction."""
    height, width = source.shape
    tile = predictor.tile_size or TILE_SIZE  # a model validated untiled: windows still bound the memory
    stride = max(predictor.divisor, int(tile * (1 - predictor.tile_overlap)))
    ys, xs = tile_starts(height, tile, stride), tile_starts(width, tile, stride)
    c = len(predictor.class_names)
    acc, weights, base = torch.zeros(c, 0, width), torch.zeros(0, width), 0  # rows base .. base + acc's height
    for k, y in enumerate(ys):
        strip = source.rows(y, min(y + tile, height))  # (h,W,3)
        grow = y + len(strip) - (base + acc.shape[1])
        if grow > 0:
            acc = torch.cat([acc, torch.zeros(c, grow, width)], dim=1)
            weights = torch.cat([weights, torch.zeros(grow, width)])
        top = y - base
        for x in xs:
            window = strip[:, x : x + tile]
            h, w = window.shape[:2]
            weight = window_weights(h, w, predictor.tile_blend)[0, 0]
            probs = predictor._padded_probs(to_input(np.ascontiguousarray(window), predictor.mean, predictor.std))
            acc[:, top : top + h, x : x + w] += probs[0].float() * weight
            weights[top : top + h, x : x + w] += weight
        done = (ys[k + 1] if k + 1 < len(ys) else height) - base  # rows no later window reaches
        final = (acc[:, :done] / weights[:done]).argmax(dim=0).to(torch.uint8).numpy()
        yield base, final
        acc, weights, base = acc[:, done:].clone(), weights[done:].clone(), base + done


def predict_large(predictor: Predictor, path: Path, outputs: dict[str, Path]) -> None:
    """Writes the index, colour and overlay PNGs of one large image (``outputs`` as ``output_paths`` plans them)
    with memory bounded by the tile size and the image's width, not its area."""
    extra = set(outputs) - {"index", "color", "overlay"}
    if extra:
        raise ValueError(f"{path}: {', '.join(sorted(extra))} are not written for an image this large (streamed)")
    source = StripSource(path)
    height, width = source.shape
    with tempfile.TemporaryFile(dir=outputs["index"].parent) as index_file:  # beside the outputs, not in a tmpfs
        for _, rows in predict_strips(predictor, source):
            index_file.write(rows.tobytes())

        def index_rows(step: int = 256) -> Iterator[tuple[int, np.ndarray]]:
            for y in range(0, height, step):
                n = min(step, height - y)
                index_file.seek(y * width)
                yield y, np.frombuffer(index_file.read(n * width), np.uint8).reshape(n, width)

        palette = predictor.palette
        _write_png(outputs["index"], width, height, 1, (rows for _, rows in index_rows()))
        _write_png(outputs["color"], width, height, 3, (palette.to_color(rows) for _, rows in index_rows()))
        _write_png(
            outputs["overlay"],
            width,
            height,
            3,
            (overlay(source.rows(y, y + len(rows)), rows, palette) for y, rows in index_rows()),
        )


def _write_png(path: Path, width: int, height: int, planes: int, strips: Iterator[np.ndarray]) -> None:
    """An 8-bit PNG (grey for 1 plane, RGB for 3) written row by row from strips (h,W[,3]) uint8, atomically."""
    writer = png.Writer(width, height, greyscale=planes == 1, bitdepth=8)

    def packed_rows() -> Iterator[bytes]:
        for strip in strips:
            for row in strip:
                yield row.tobytes()

    atomic_write(path, lambda f: writer.write_packed(f, packed_rows()))
