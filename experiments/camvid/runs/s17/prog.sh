#!/usr/bin/env bash
# Session 17: progressive resizing on session 13's equal-wall-time proxy (4 unpurged folds, 10 minutes of fit each,
# last.ckpt scored plain and with multi-scale TTA), against that session's and session 15's "new" arm (the final
# preset without it, seeds 42 and 1). Run from a frozen worktree of main at 261fb2f (a first version, fb08a0e, ran
# fold 0 only: v1_eval_prog_*_f0.json):
#   R=/work/runs/s17 TREE=/work/wt_s17 ARGS="callbacks.progressive_resize.factor=0.5" NAME=prog2 prog.sh
export WANDB_MODE=offline
P=/work/main/.venv/bin/python
R=${R:-/work/runs/s17}
TREE=${TREE:-/work/wt_s17}
NAME=${NAME:-prog}
BUDGET="callbacks.time_budget.budget=00:00:10:00 trainer.max_time=00:00:11:30"
for f in ${FOLDS:-0 1 2 3}; do
  echo "== $NAME f$f $(date)"
  (cd $TREE && $P -m seglight.train experiment=camvid data.folds=4 data.fold=$f data.purge_frames=0 $BUDGET $ARGS \
    ${SEED:+seed=$SEED} logger=csv trainer.enable_progress_bar=false hydra.run.dir=$R/${NAME}_f$f 2>&1 \
    | grep -E "time budget|progressive|val/mIoU|Error" | tail -4)
  for v in "plain" "tta3 tta.scales=[0.75,1.0,1.25]"; do
    name=${v%% *}; ov=${v#* }; [ "$name" = "$ov" ] && ov=""
    (cd $TREE && $P -m seglight.evaluate ckpt=$R/${NAME}_f$f/checkpoints/last.ckpt data=camvid \
      data.folds=4 data.fold=$f data.purge_frames=0 split=val report=false output=$R/eval/${NAME}_${name}_f$f \
      $ov 2>&1 | grep -E "mIoU|Error" | tail -2)
  done
done
echo "== done $(date)"
