#!/usr/bin/env bash
# Session 13: a second seed (seed=1) of budget.sh's two arms on fold 0 only, to see how far one seed moves the
# paired gain there. Same trees, budget and scoring as budget.sh.
export WANDB_MODE=offline
P=/work/main/.venv/bin/python
R=/work/runs/s13
BUDGET="callbacks.time_budget.budget=00:00:10:00 trainer.max_time=00:00:11:30"
f=0
for arm in old new; do
  tree=/work/wt_old; extra=""
  [ $arm = new ] && tree=/work/wt_s13b && extra="data.purge_frames=0"
  echo "== $arm f$f seed 1 $(date)"
  (cd $tree && $P -m seglight.train experiment=camvid data.folds=4 data.fold=$f seed=1 $BUDGET $extra logger=csv \
    trainer.enable_progress_bar=false hydra.run.dir=$R/bud_${arm}_s1_f$f 2>&1 | grep -E "val/mIoU|Error" | tail -2)
done
for arm in old new; do
  for v in "plain" "tta3 tta.scales=[0.75,1.0,1.25]"; do
    name=${v%% *}; ov=${v#* }; [ "$name" = "$ov" ] && ov=""
    (cd /work/wt_s13b && $P -m seglight.evaluate ckpt=$R/bud_${arm}_s1_f$f/checkpoints/last.ckpt data=camvid \
      data.folds=4 data.fold=$f data.purge_frames=0 split=val report=false output=$R/eval/bud_${arm}_s1_${name}_f$f \
      $ov 2>&1 | grep -E "95% CI|Error" | tail -2)
  done
done
echo "== done $(date)"
