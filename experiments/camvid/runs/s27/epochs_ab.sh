#!/usr/bin/env bash
# session 27: epoch wall times of the preset (train split, 5 epochs, no validation), before the closed-form loss
# gradient and the fused AdamW (a worktree at 39795b0) and with them (main), alternating; session 25's epochs_ab.py
# does the timing
export WANDB_MODE=offline
here=/work/main/experiments/camvid/runs
for i in 1 2 3; do
  for t in /work/wt_base /work/main; do
    /work/main/.venv/bin/python $here/s25/epochs_ab.py $t 5 2>&1 | tail -1
  done
done
echo "== done $(date)"
