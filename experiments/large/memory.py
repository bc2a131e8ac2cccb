"""Peak memory of predicting one large image, by image size: seglight.predict streams images above
``STREAM_PIXELS`` strip by strip (seglight.inference.large), so the peak should grow with the image's width,
not its area.

    python experiments/large/memory.py CKPT [--sizes 2000 8000] [--tile 1024] [--out FILE]

Each size runs in a fresh process (``--one SIZE``): it writes an uncompressed RGB TIFF of SIZE x SIZE
(smooth noise), predicts it with ``seglight.inference.files.predict_files`` (streaming) and reports
ru_maxrss, the process's peak resident memory, with and without the prediction (the baseline holds the
imports and the model). Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one(ckpt: str, size: int, tile: int | None) -> dict:
    import numpy as np
    import tifffile

    from seglight.inference.files import predict_files
    from seglight.inference.predictor import Predictor

    predictor = Predictor.load(ckpt, tile_size="auto" if tile is None else tile)
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "in" / f"scene_{size}.tif"
        image.parent.mkdir()
        rng = np.random.default_rng(0)
        with tifffile.TiffWriter(image) as tif:  # written in strips: this process never holds the image
            rows = 256

            def strips():
                for y in range(0, size, rows):
                    yield rng.integers(0, 256, (min(rows, size - y), size, 3), dtype=np.uint8)

            tif.write(strips(), shape=(size, size, 3), dtype=np.uint8, photometric="rgb", rowsperstrip=rows)
        before = peak_mib()
        t = time.perf_counter()
        predict_files(predictor, str(image), Path(tmp) / "out")
        seconds = time.perf_counter() - t
        written = sorted(p.name for p in (Path(tmp) / "out").iterdir())
    return {"size": size, "peak_mib_before": before, "peak_mib": peak_mib(), "seconds": seconds, "written": written}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("ckpt")
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 8000])
    parser.add_argument("--tile", type=int, default=None, help="window size (default: the model's model.tile_size)")
    parser.add_argument("--one", type=int)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.ckpt, args.one, args.tile)))
        return
    runs = []
    for size in args.sizes:
        cmd = [sys.executable, __file__, args.ckpt, "--one", str(size)]
        cmd += ["--tile", str(args.tile)] if args.tile is not None else []
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        runs.append(json.loads(res.stdout.strip().splitlines()[-1]))
        print(
            f"{size}x{size}: peak {runs[-1]['peak_mib']:.0f} MiB "
            f"(before predicting {runs[-1]['peak_mib_before']:.0f}), {runs[-1]['seconds']:.0f} s"
        )
    small, big = runs[0], runs[-1]
    growth = big["peak_mib"] - small["peak_mib"]
    image_mib = (big["size"] ** 2 - small["size"] ** 2) * 3 / 2**20
    out = {
        "runs": runs,
        "tile": args.tile or "auto (the model's)",
        "peak_growth_mib": growth,
        "image_bytes_growth_mib": image_mib,
        "bounded": growth < image_mib,
    }
    print(json.dumps(out, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
