#!/usr/bin/env bash
# session 30: AdamW weight decay 0.05 at the full 42 minutes, seed 42, from a worktree of main at 9927a59 (the same
# training as 9eb72ab with copy-paste off), nothing else running: unpurged folds 1 and 0 (session 29's fold 0 was cut
# short by tests beside it and then killed), then the train split scored on val, plain and with TTA.
export WANDB_MODE=offline
P=/work/main/.venv/bin/python
R=/work/runs/s30 TREE=/work/wt_s30
R=$R TREE=$TREE FOLDS="1 0" bash /work/main/experiments/camvid/runs/s29/wd.sh
echo "== val run wd 0.05 seed 42 $(date)"
(cd $TREE && $P -m seglight.train experiment=camvid seed=42 optimizer.weight_decay=0.05 logger=csv \
  trainer.enable_progress_bar=false hydra.run.dir=$R/val_regx4_wd05 2>&1 | grep -E "time budget|val/mIoU|Error" | tail -4)
P=$P bash /work/main/experiments/camvid/runs/evaluate_both.sh $TREE $R/val_regx4_wd05/checkpoints/last.ckpt \
  $R/eval/val_regx4_wd05_KIND
echo "== all done $(date)"
