#!/usr/bin/env bash
# Session 12: multi-scale TTA variants on the preset's purged fold models (runs/s12/base_f*), paired over images.
export WANDB_MODE=offline
P=/work/main/.venv/bin/python
TREE=${TREE:-/work/wt_s12b}
R=/work/runs/s12
for fold in 0 1 2 3; do
  ck=$R/base_f$fold/checkpoints/best.ckpt
  for v in "tta3 tta.scales=[0.75,1.0,1.25]" "tta4 tta.scales=[0.75,1.0,1.25,1.5]" "tta3flip tta.scales=[0.75,1.0,1.25] tta.flip=true"; do
    name=${v%% *}; ov=${v#* }
    echo "== fold $fold $name $(date)"
    (cd $TREE && $P -m seglight.evaluate ckpt=$ck data=camvid data.folds=4 data.fold=$fold output=$R/eval/${name}_f$fold $ov report=false 2>&1 | grep -E "mIoU|Error" | tail -2)
  done
done
echo "== done $(date)"
