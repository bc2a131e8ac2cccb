#!/usr/bin/env bash
# Session 17: progressive resizing on session 13's equal-wall-time proxy (4 unpurged folds, 10 minutes of fit each,
# last.ckpt scored plain and with multi-scale TTA), against that session's and session 15's "new" arm (the final
# preset without it, seeds 42 and 1). Run from a frozen worktree of main at 261fb2f (a first version, fb08a0e, ran
# fold 0 only: v1_eval_prog_*_f0.json):
#   R=/work/runs/s17 TREE=/work/wt_s17 ARGS="callbacks.progressive_resize.factor=0.5" NAME=prog2 prog.sh
# The loop now lives in runs/s21/folds.sh (the same commands; BUDGET from the environment, 10 minutes unless set);
# this keeps the session-17 defaults.
export R=${R:-/work/runs/s17} TREE=${TREE:-/work/wt_s17} NAME=${NAME:-prog}
exec bash "$(dirname "$0")/../s21/folds.sh"
