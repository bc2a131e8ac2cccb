"""How much the proxy's block grouping leaked: each fold model's held-out mIoU over all its val images and over
those further than D frame numbers from every train frame of the same sequence, from the runs' splits.json and
val_confusions.npz (no model is run). Usage: python leak.py /work/runs/augseed fix old > leak.md"""

import json
import sys
from pathlib import Path

import numpy as np

from seglight.data.groups import frame_of
from seglight.model.metrics import scores
from seglight.report.confusions import load_confusions

FRAME = r"^([^_]+)_f?(\d+)$"
GAPS = (30, 60, 150)

root, arms = Path(sys.argv[1]), sys.argv[2:]
print("| arm | fold | all val: n, mIoU | " + " | ".join(f"> {d} frames from train: n, mIoU" for d in GAPS) + " |")
print("|---" * (3 + len(GAPS)) + "|")
for arm in arms:
    for fold in range(4):
        run = root / f"{arm}_f{fold}"
        train: dict[str, list[int]] = {}
        for name in json.loads((run / "splits.json").read_text())["train"]:
            sequence, number = frame_of(Path(name).stem, FRAME)
            train.setdefault(sequence, []).append(number)
        images, confusions, _ = load_confusions(run / "val_confusions.npz")
        distance = []
        for image in images:
            sequence, number = frame_of(Path(image).stem, FRAME)
            distance.append(np.abs(np.array(train.get(sequence, [10**9])) - number).min())
        distance = np.array(distance)
        cells = [f"{len(images)}, {float(scores(confusions.sum(0))['mIoU']):.4f}"]
        for gap in GAPS:
            keep = distance > gap
            cells.append(f"{int(keep.sum())}, {float(scores(confusions[keep].sum(0))['mIoU']):.4f}")
        print(f"| {arm} | {fold} | " + " | ".join(cells) + " |")
