#!/usr/bin/env bash
# session 28: the preset as on main (452c09e: sessions 25-27's faster step) on unpurged folds 2 and 3 at seed 42,
# the full 42 minutes (folds 0-1 ran in session 27), from a worktree at 452c09e, nothing else running. (A val run
# of seed 3 that first followed here was dropped for photometric.sh before it started.)
export WANDB_MODE=offline
R=/work/runs/s28 TREE=/work/wt_s28 BUDGET= FOLDS="2 3" NAME=full_regx4_s28 bash /work/main/experiments/camvid/runs/s21/folds.sh
