"""Per-fold paired differences (fix - old) of the augmentation-seeding proxy runs, from each run's
val_confusions.npz (the held-out fold's per-image confusion matrices): mIoU with its 95 % bootstrap interval
over images, and per class. Usage: python paired.py /work/runs/augseed > paired.md"""

import json
import sys
from pathlib import Path

import numpy as np

from seglight.report.bootstrap import paired_difference
from seglight.report.confusions import load_confusions

root = Path(sys.argv[1])
per_class, rows = [], []
for fold in range(4):
    runs = {arm: root / f"{arm}_f{fold}" / "val_confusions.npz" for arm in ("old", "fix")}
    if not all(p.is_file() for p in runs.values()):
        continue
    (ia, a, names), (ib, b, _) = (load_confusions(runs[arm]) for arm in ("old", "fix"))
    assert [Path(p).name for p in ia] == [Path(p).name for p in ib], "the two runs scored different images"
    d = paired_difference(a, b)
    old, fix = (json.loads((root / f"{a}_f{fold}" / "metrics.json").read_text())["val/mIoU"] for a in ("old", "fix"))
    low, high = d["mIoU_diff_ci"]
    rows.append(f"| {fold} | {len(ia)} | {old:.4f} | {fix:.4f} | {d['mIoU_diff']:+.4f} [{low:+.4f}, {high:+.4f}] |")
    per_class.append(d["iou_diff"])
print("| fold | images | old (flip tied to scale) | fix | paired diff [95 % CI] |\n|---|---|---|---|---|")
print("\n".join(rows))
mean = np.nanmean(np.stack(per_class), axis=0)
print("\nMean per-class IoU difference over the folds: " + ", ".join(f"{n} {m:+.3f}" for n, m in zip(names, mean)))
