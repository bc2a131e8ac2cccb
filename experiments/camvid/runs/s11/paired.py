"""Per-fold paired differences (B - A) of two proxy arms, from each run's val_confusions.npz (the held-out fold's
per-image confusion matrices): mIoU with its 95 % bootstrap interval over images, and per class.
Usage: python paired.py /work/runs/s11 base wd > paired.md (runs in <root>/<arm>_f<fold>)"""

import json
import sys
from pathlib import Path

import numpy as np

from seglight.report.bootstrap import paired_difference
from seglight.report.confusions import load_confusions


def miou(run: Path) -> float:
    return json.loads((run / "metrics.json").read_text())["val/mIoU"]


root, A, B = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
per_class, rows = [], []
for fold in range(4):
    runs = {arm: root / f"{arm}_f{fold}" / "val_confusions.npz" for arm in (A, B)}
    if not all(p.is_file() for p in runs.values()):
        continue
    (ia, a, names), (ib, b, _) = (load_confusions(runs[arm]) for arm in (A, B))
    assert [Path(p).name for p in ia] == [Path(p).name for p in ib], "the two runs scored different images"
    d = paired_difference(a, b)
    a_score, b_score = (
        json.loads((root / f"{arm}_f{fold}" / "metrics.json").read_text())["val/mIoU"] for arm in (A, B)
    )
    low, high = d["mIoU_diff_ci"]
    rows.append(
        f"| {fold} | {len(ia)} | {a_score:.4f} | {b_score:.4f} | {d['mIoU_diff']:+.4f} [{low:+.4f}, {high:+.4f}] |"
    )
    per_class.append(d["iou_diff"])
print(f"| fold | images | {A} | {B} | paired diff [95 % CI] |\n|---|---|---|---|---|")
print("\n".join(rows))
mean = np.nanmean(np.stack(per_class), axis=0)
print("\nMean per-class IoU difference over the folds: " + ", ".join(f"{n} {m:+.3f}" for n, m in zip(names, mean)))
