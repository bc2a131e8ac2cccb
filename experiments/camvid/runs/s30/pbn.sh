#!/usr/bin/env bash
# session 30: precise_bn.py (100 training batches) on the last.ckpt of the preset's seed-42 runs on main's step
# (sessions 27-28) and of weight decay 0.05 (sessions 29-30) on each unpurged fold, scored plain on the fold's
# held-out images, from main at the session's head; then the same for the val run of weight decay 0.05.
P=/work/main/.venv/bin/python
for run in s27/full_regx4_s27_f0 s27/full_regx4_s27_f1 s28/full_regx4_s28_f2 s28/full_regx4_s28_f3 \
           s29/full_regx4_wd05_f2 s29/full_regx4_wd05_f3 s30/full_regx4_wd05_f0 s30/full_regx4_wd05_f1; do
  f=${run: -1} name=$(basename $run)
  $P experiments/camvid/runs/s30/precise_bn.py /work/runs/$run /work/runs/s30/pbn_$name.ckpt 100 | tail -1
  echo "$name $($P -m seglight.evaluate ckpt=/work/runs/s30/pbn_$name.ckpt data=camvid data.folds=4 data.fold=$f \
    data.purge_frames=0 split=val report=false output=/work/runs/s30/eval/pbn_${name}_plain 2>&1 | grep -E '^mIoU|│ mIoU|Error' | tail -1)"
done
echo "== done $(date)"
