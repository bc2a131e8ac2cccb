#!/usr/bin/env bash
# session 29: copy-paste of the thin and rare classes between the images of a batch (callbacks.copy_paste, 47da5c0)
# at the full 42 minutes on unpurged fold 3, seed 42, from a worktree at 47da5c0, after wd.sh (nothing else
# running); against session 28's run of the preset on the same fold.
export WANDB_MODE=offline
while pgrep -f "runs/s29/wd.sh" >/dev/null; do sleep 20; done
R=/work/runs/s29 TREE=/work/wt_s29b BUDGET= FOLDS="3" NAME=full_regx4_paste \
  ARGS="callbacks.copy_paste.p=0.5 callbacks.copy_paste.classes=[Pole,SignSymbol,Fence,Pedestrian,Bicyclist]" \
  bash /work/main/experiments/camvid/runs/s21/folds.sh
