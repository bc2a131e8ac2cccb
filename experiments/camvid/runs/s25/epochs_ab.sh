#!/usr/bin/env bash
# session 25: epoch wall times of the preset, old loss (24d4ffc) and new (main), alternating
export WANDB_MODE=offline
for i in 1 2; do
  for t in /work/wt_old /work/main; do
    /work/main/.venv/bin/python /work/runs/s25/epochs_ab.py $t 5 2>&1 | tail -1
  done
done
echo "== done $(date)"
