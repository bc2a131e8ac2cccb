"""Session 16: the paired intervals of sessions 14 and 15 recomputed with whole blocks of 30, 90 and 300 frame
numbers drawn (block bootstrap, ``seglight.report.bootstrap``) next to the per-image ones they were reported with.

python experiments/camvid/runs/s16/blocks.py > experiments/camvid/runs/s16/blocks.md
Reads the evaluate outputs under /work/runs/s14/eval and /work/runs/s15/eval (confusions.npz).
"""

from pathlib import Path

import numpy as np
import yaml

from seglight.report.bootstrap import paired_difference, resampling_blocks
from seglight.report.confusions import load_confusions

EVAL = Path("/work/runs")
PATTERN = yaml.safe_load(Path("conf/data/camvid.yaml").read_text())["frame_pattern"]
PAIRS = {  # (label, baseline dir, other dir) per fold
    "s15 seed 1: issue's preset -> final + TTA": [
        (f, f"s15/eval/bud_old_s1_plain_f{f}", f"s15/eval/bud_new_s1_tta3_f{f}") for f in (1, 2, 3)
    ],
    "s15 seed 1: issue's preset -> final (training side)": [
        (f, f"s15/eval/bud_old_s1_plain_f{f}", f"s15/eval/bud_new_s1_plain_f{f}") for f in (1, 2, 3)
    ],
    "s14 AVX2 emulated: issue's preset -> final + TTA": [
        (f, f"s14/eval/avx2_old_plain_f{f}", f"s14/eval/avx2_new_tta3_f{f}") for f in (0, 1, 2, 3)
    ],
    "s14 AVX2 emulated: issue's preset -> final (training side)": [
        (f, f"s14/eval/avx2_old_plain_f{f}", f"s14/eval/avx2_new_plain_f{f}") for f in (0, 1, 2, 3)
    ],
}


def ci(d: dict) -> str:
    low, high = d["mIoU_diff_ci"]
    return "no interval (under 10 blocks)" if np.isnan(low) else f"[{low:+.4f}, {high:+.4f}]"


def ci_of(a, b, blocks) -> dict:
    return paired_difference(np.asarray(a), np.asarray(b), seed=42, blocks=blocks)


SIZES = (30, 90, 300)  # frame numbers per block: 1 s, 3 s, 10 s of 30 fps video
HEADER = ["comparison", "fold", "images", "diff", "95 % CI, images drawn"]
HEADER += [f"blocks of {n} frames: count, 95 % CI" for n in SIZES]
print("| " + " | ".join(HEADER) + " |")
print("|---" * len(HEADER) + "|")
for label, pairs in PAIRS.items():
    for fold, a, b in pairs:
        images, ca, _ = load_confusions(EVAL / a / "confusions.npz")
        images_b, cb, _ = load_confusions(EVAL / b / "confusions.npz")
        assert list(images) == list(images_b), (a, b)
        cells = [label, str(fold), str(len(images)), f"{float(ci_of(ca, cb, None)['mIoU_diff']):+.4f}"]
        cells.append(ci(ci_of(ca, cb, None)))
        for n in SIZES:
            blocks = resampling_blocks(images, PATTERN, n)
            cells.append(f"{len(set(blocks))}: {ci(ci_of(ca, cb, blocks))}")
        print("| " + " | ".join(cells) + " |")
