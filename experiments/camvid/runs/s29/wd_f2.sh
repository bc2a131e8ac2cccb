#!/usr/bin/env bash
# session 29: AdamW weight decay 0.05 at the full 42 minutes on unpurged fold 2, seed 42 (fold 3 in wd.sh gave +0.010
# plain), from the worktree at 9eb72ab, after paste.sh (nothing else running); against session 28's preset on fold 2.
export WANDB_MODE=offline
while pgrep -f "runs/s29/paste.sh" >/dev/null; do sleep 20; done
R=/work/runs/s29 TREE=/work/wt_s29a BUDGET= FOLDS="2" NAME=full_regx4_wd05 ARGS="optimizer.weight_decay=0.05" \
  bash /work/main/experiments/camvid/runs/s21/folds.sh
