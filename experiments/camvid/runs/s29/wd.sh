#!/usr/bin/env bash
# session 29: AdamW weight decay 0.05 (the preset: 1e-4) at the full 42 minutes on unpurged fold 3, seed 42, from a
# worktree of main at 9eb72ab, nothing else running; against session 28's run of the preset on the same fold.
export WANDB_MODE=offline
R=/work/runs/s29 TREE=/work/wt_s29a BUDGET= FOLDS="3" NAME=full_regx4_wd05 ARGS="optimizer.weight_decay=0.05" \
  bash /work/main/experiments/camvid/runs/s21/folds.sh
