#!/usr/bin/env bash
# session 27: after make test, the preset as on main with the closed-form loss gradient and the fused AdamW (a
# worktree at 29a0c75: 1.14x the epochs per minute of 39795b0, 1.46x those of session 24's runs) on unpurged folds
# 0 and 1, seed 42, the full 42 minutes: what the faster epochs give on the proxy (folds 2 and 3 later)
until grep -q "== rc" /work/runs/s27/make_test.log; do sleep 10; done
R=/work/runs/s27 TREE=/work/wt_s27 BUDGET= FOLDS="0 1" NAME=full_regx4_s27 \
  bash /work/main/experiments/camvid/runs/s21/folds.sh
