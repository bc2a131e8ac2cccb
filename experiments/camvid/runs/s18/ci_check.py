"""Session 18: the mIoU intervals of session 17's four fold outputs (progressive arm, plain), by blocks of 10 s of
frames and by images, with the seglight on sys.path. Run once with the tree before the bootstrap fix and once with
main; the outputs were identical.
Usage: python ci_check.py [SEGLIGHT_TREE] [EVAL_ROOT]   (defaults: the installed seglight, /work/runs/s17/eval)"""

import sys

import numpy as np

if len(sys.argv) > 1:
    sys.path.insert(0, sys.argv[1])
from seglight.report.bootstrap import bootstrap, resampling_blocks  # noqa: E402
from seglight.report.confusions import load_confusions  # noqa: E402

ROOT = sys.argv[2] if len(sys.argv) > 2 else "/work/runs/s17/eval"
CAMVID_FRAMES = r"^([^_]+)_f?(\d+)$"  # conf/data/camvid.yaml's frame_pattern

for fold in range(4):
    images, confusions, _ = load_confusions(f"{ROOT}/prog2_plain_f{fold}/confusions.npz")
    blocks = resampling_blocks(images, CAMVID_FRAMES, "auto")
    for drawn, label in ((blocks, "blocks"), (None, "images")):
        out = bootstrap(np.stack(confusions), blocks=drawn)
        print(fold, label, round(float(out["mIoU"]), 4), np.round(out["mIoU_ci"], 4))
