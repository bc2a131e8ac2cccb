#!/usr/bin/env bash
# session 24: the RegNet preset's seed 1 on fold 3 at the full 42 minutes (folds 0-2 ran in session 23)
R=/work/runs/s24 TREE=/work/wt_s24 BUDGET= FOLDS=3 SEED=1 NAME=full_regx4_s1 \
  bash /work/main/experiments/camvid/runs/s21/folds.sh
