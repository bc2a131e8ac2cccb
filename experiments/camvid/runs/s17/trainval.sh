#!/usr/bin/env bash
# Session 17: experiment=camvid_trainval run once (train+val, 468 images, the 42-minute budget), from a frozen
# worktree of main; then seglight.evaluate on the val images, which it trained on (metrics.json must say so).
#   R=/work/runs/s17 TREE=/work/wt_s17 trainval.sh
export WANDB_MODE=offline
P=/work/main/.venv/bin/python
R=${R:-/work/runs/s17}
TREE=${TREE:-/work/wt_s17}
echo "== train $(date)"
(cd $TREE && $P -m seglight.train experiment=camvid_trainval logger=csv trainer.enable_progress_bar=false \
  hydra.run.dir=$R/trainval 2>&1 | grep -E "time budget|val/mIoU|train_on_val|Error" | tail -4)
echo "== evaluate $(date)"
(cd $TREE && $P -m seglight.evaluate ckpt=$R/trainval/checkpoints/last.ckpt data=camvid split=val report=false \
  output=$R/eval/trainval_val 2>&1 | grep -E "mIoU|Warn|WARN|trained|Error" | tail -6)
echo "== done $(date)"
