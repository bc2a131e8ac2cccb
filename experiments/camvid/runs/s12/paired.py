"""Per-fold paired differences (B - A) of two proxy arms, from the per-image confusion matrices each run or
evaluate output keeps (val_confusions.npz of a training run, confusions.npz of an evaluate output): mIoU of A and
B, B - A with its 95 % bootstrap interval over images, and the mean per-class difference over the folds.
Usage: python paired.py '/work/runs/s12/base_f{fold}' '/work/runs/s12/eval/tta3_f{fold}' [names A B] > out.md"""

import sys
from pathlib import Path

import numpy as np

from seglight.model.metrics import scores
from seglight.report.bootstrap import paired_difference
from seglight.report.confusions import CONFUSIONS, VAL_CONFUSIONS, load_confusions


def confusions(folder: Path) -> Path | None:
    found = [folder / name for name in (VAL_CONFUSIONS, CONFUSIONS) if (folder / name).is_file()]
    return found[0] if found else None


patterns = sys.argv[1:3]
names = sys.argv[3:5] if len(sys.argv) >= 5 else ["A", "B"]
rows, per_class, diffs = [], [], []
for fold in range(4):
    files = [confusions(Path(p.format(fold=fold))) for p in patterns]
    if None in files:
        continue
    (ia, a, cls), (ib, b, _) = (load_confusions(f) for f in files)
    assert [Path(p).name for p in ia] == [Path(p).name for p in ib], "the two arms scored different images"
    d = paired_difference(a, b)
    low, high = d["mIoU_diff_ci"]
    sa, sb = (float(scores(c.sum(0))["mIoU"]) for c in (a, b))
    rows.append(f"| {fold} | {len(ia)} | {sa:.4f} | {sb:.4f} | {d['mIoU_diff']:+.4f} [{low:+.4f}, {high:+.4f}] |")
    per_class.append(d["iou_diff"])
    diffs.append(float(d["mIoU_diff"]))
print(f"| fold | images | {names[0]} | {names[1]} | paired diff [95 % CI] |\n|---|---|---|---|---|")
print("\n".join(rows))
print(f"\nMean paired difference over {len(diffs)} folds: {np.mean(diffs):+.4f}")
mean = np.nanmean(np.stack(per_class), axis=0)
print("Mean per-class IoU difference over the folds: " + ", ".join(f"{n} {m:+.3f}" for n, m in zip(cls, mean)))
