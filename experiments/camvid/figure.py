"""Predictions vs ground truth on CamVid val images, as one PNG (rows: image | truth | prediction | overlay).

python experiments/camvid/figure.py CKPT [--n 4] [--out experiments/camvid/predictions.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from seglight.data.datamodule import SegDataModule
from seglight.inference.predictor import Predictor
from seglight.report.figures import panel

CAMVID = Path(__file__).resolve().parents[3] / "shared" / "camvid"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ckpt")
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("predictions.png"))
    args = ap.parse_args()
    predictor = Predictor.load(args.ckpt, device="cpu")
    val = SegDataModule(
        "train", "trainannot", "val", "valannot", root=str(CAMVID), num_classes=11, void_values=[11]
    ).raw_dataset("val")
    rows = []
    for i in np.linspace(0, len(val) - 1, args.n).astype(int):
        image, mask = val.read_pair(int(i))
        rows.append(panel(image, mask, predictor.predict_masks([image])[0], predictor.palette))
    grid = np.concatenate(rows, axis=0)
    Image.fromarray(grid).resize((grid.shape[1] // 2, grid.shape[0] // 2), Image.BILINEAR).save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
