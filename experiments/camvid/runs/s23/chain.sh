#!/usr/bin/env bash
# session 23: a second seed of the RegNet preset at the full 42 minutes, folds 1, 0, 2
R=/work/runs/s23 TREE=/work/wt_s23 BUDGET= FOLDS="1 0 2" SEED=1 NAME=full_regx4_s1 \
  bash /work/main/experiments/camvid/runs/s21/folds.sh
