#!/usr/bin/env bash
# Session 10: the proxy (4 grouped folds, 14 epochs, fixed) with the augmentation seeding fix (182edc2, worktree
# /work/wt_fix) against the same preset before it (ea8b1cf, /work/wt_s10: flip tied to scale), fold by fold,
# alternating so that each fold's pair ran under the same conditions. Then the 42-minute preset with the fix on
# the train split, scored on val plain and with multi-scale TTA.
export WANDB_MODE=offline
P=/work/main/.venv/bin/python
for fold in 0 1 2 3; do
  for arm in fix:/work/wt_fix old:/work/wt_s10; do
    name=${arm%%:*}; tree=${arm#*:}
    echo "== fold $fold $name $(date)"
    (cd $tree && $P -m seglight.train experiment=camvid data.folds=4 data.fold=$fold callbacks.time_budget.budget=null \
      trainer.max_epochs=14 trainer.max_time=null logger=csv trainer.enable_progress_bar=false \
      hydra.run.dir=/work/runs/augseed/${name}_f$fold 2>&1 | grep -E "val/mIoU|Error" | tail -2)
  done
done
echo "== preset with the fix $(date)"
(cd /work/wt_fix && $P -m seglight.train experiment=camvid logger=csv trainer.enable_progress_bar=false \
  hydra.run.dir=/work/runs/augseed/preset 2>&1 | tail -3)
CK=/work/runs/augseed/preset/checkpoints/best.ckpt
cd /work/wt_fix
$P -m seglight.evaluate ckpt=$CK data=camvid split=val report=false output=/work/runs/augseed/preset_eval/plain 2>&1 | tail -2
$P -m seglight.evaluate ckpt=$CK data=camvid split=val report=false 'tta.scales=[0.75,1.0,1.25]' output=/work/runs/augseed/preset_eval/tta 2>&1 | tail -2
echo "== done $(date)"
