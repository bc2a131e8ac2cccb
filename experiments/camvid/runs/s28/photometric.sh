#!/usr/bin/env bash
# session 28: after chain.sh's folds, the preset with data.photometric=strong on fold 2 (0001TP at dusk, 0006R0),
# seed 42, the full 42 minutes: paired with chain.sh's fold-2 run. Session 6 found strong colour augmentation worse
# at 14 epochs (underfitting); the preset now fits ~190 epochs, where it may help the folds whose light differs.
while pgrep -f "runs/s21/folds.sh" > /dev/null; do sleep 10; done
export WANDB_MODE=offline
R=/work/runs/s28 TREE=/work/wt_s28 BUDGET= FOLDS=2 NAME=full_regx4_photo_s28 ARGS="data.photometric=strong" \
  bash /work/main/experiments/camvid/runs/s21/folds.sh
