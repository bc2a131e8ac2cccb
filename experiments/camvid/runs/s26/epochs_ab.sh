#!/usr/bin/env bash
# session 26: epoch wall times of the preset (train split, 5 epochs, no validation), GroupNorm as it was (a
# worktree at 24f1070) and run contiguous (main), alternating; session 25's epochs_ab.py does the timing
export WANDB_MODE=offline
here=/work/main/experiments/camvid/runs
for i in 1 2; do
  for t in /work/wt_base /work/main; do
    /work/main/.venv/bin/python $here/s25/epochs_ab.py $t 5 2>&1 | tail -1
  done
done
echo "== done $(date)"
