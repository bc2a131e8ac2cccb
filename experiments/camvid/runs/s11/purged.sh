#!/usr/bin/env bash
# Session 11: the preset's proxy runs of folds 0 and 1 (the folds that held the leaking block edges) on the purged
# folds (data.purge_frames=60, the camvid config's default since e24d0c8), from a frozen worktree of main, to
# compare with the unpurged runs of the same code (runs/s11/base_f0, base_f1: bdc2df7, the same random draws).
export WANDB_MODE=offline
P=/work/main/.venv/bin/python
TREE=${TREE:-/work/wt_s11b}
for fold in 0 1; do
  echo "== fold $fold purged $(date)"
  (cd $TREE && $P -m seglight.train experiment=camvid data.folds=4 data.fold=$fold callbacks.time_budget.budget=null \
    trainer.max_epochs=14 trainer.max_time=null logger=csv trainer.enable_progress_bar=false \
    hydra.run.dir=/work/runs/s11/purged_f$fold 2>&1 | grep -E "left out|val/mIoU|Error" | tail -3)
done
echo "== done $(date)"
