#!/usr/bin/env bash
# Session 11: the proxy (4 grouped folds, 14 epochs, fixed) of the preset with per-sample seeding (EpochDraws:
# each crop from (seed, epoch, index), the resume fix) and of the same with AdamW weight decay 0.05 (preset: 1e-4),
# fold by fold, alternating, from a frozen worktree of the commit under test.
export WANDB_MODE=offline
P=/work/main/.venv/bin/python
TREE=${TREE:-/work/wt_s11}
for fold in 0 1 2 3; do
  for arm in "base:" "wd:optimizer.weight_decay=0.05"; do
    name=${arm%%:*}; extra=${arm#*:}
    echo "== fold $fold $name $(date)"
    (cd $TREE && $P -m seglight.train experiment=camvid data.folds=4 data.fold=$fold callbacks.time_budget.budget=null \
      trainer.max_epochs=14 trainer.max_time=null logger=csv trainer.enable_progress_bar=false $extra \
      hydra.run.dir=/work/runs/s11/${name}_f$fold 2>&1 | grep -E "val/mIoU|Error" | tail -2)
  done
done
echo "== done $(date)"
