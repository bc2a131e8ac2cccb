#!/usr/bin/env bash
# session 29: AdamW weight decay 0.05 (the preset: 1e-4) at the full 42 minutes on unpurged fold 3, seed 42, from a
# worktree of main at 9eb72ab, nothing else running but about 3 minutes of unit tests early on; against session 28's run of the preset on the same fold.
# Other folds, another tree or results folder: FOLDS="0 1" TREE=/work/wt R=/work/runs/s30 bash wd.sh
export WANDB_MODE=offline
R=${R:-/work/runs/s29} TREE=${TREE:-/work/wt_s29a} BUDGET= FOLDS=${FOLDS:-3} NAME=full_regx4_wd05 \
  ARGS="optimizer.weight_decay=0.05" \
  bash /work/main/experiments/camvid/runs/s21/folds.sh
