#!/usr/bin/env bash
# Session 13: the preset (the code at 167c7da, the commit that added the folds) against the preset on
# main, each with the same 10-minute time budget on the same 4 unpurged folds (167c7da cannot purge), alternating
# old and new fold by fold; the cores to themselves. Then seglight.evaluate (main's code) scores each last.ckpt on
# its fold's held-out images, so both arms are scored the same way and without checkpoint selection.
# The second seed of fold 0: SEED=1 FOLDS=0 budget.sh (run dirs and eval outputs get _s1).
# Session 15, the second seed of folds 1-3: R=/work/runs/s15 NEW=/work/wt_new SEED=1 FOLDS="1 2 3" budget.sh
# (NEW: a worktree of main at 7d9a1d3, whose training code is 2c3fb36's, the tree of the runs above).
export WANDB_MODE=offline
P=/work/main/.venv/bin/python
R=${R:-/work/runs/s13}
NEW=${NEW:-/work/wt_s13b}
BUDGET="callbacks.time_budget.budget=00:00:10:00 trainer.max_time=00:00:11:30"
S=${SEED:+_s$SEED}  # run names: bud_<arm><S>_f<fold>
for f in ${FOLDS:-0 1 2 3}; do
  for arm in old new; do
    tree=/work/wt_old; extra="${SEED:+seed=$SEED}"
    [ $arm = new ] && tree=$NEW && extra="$extra data.purge_frames=0"
    echo "== $arm f$f ${SEED:+seed $SEED} $(date)"
    (cd $tree && $P -m seglight.train experiment=camvid data.folds=4 data.fold=$f $BUDGET $extra logger=csv \
      trainer.enable_progress_bar=false hydra.run.dir=$R/bud_${arm}${S}_f$f 2>&1 | grep -E "planned|val/mIoU|Error" | tail -3)
  done
done
echo "== evaluate $(date)"
for f in ${FOLDS:-0 1 2 3}; do
  for arm in old new; do
    for v in "plain" "tta3 tta.scales=[0.75,1.0,1.25]"; do
      name=${v%% *}; ov=${v#* }; [ "$name" = "$ov" ] && ov=""
      (cd $NEW && $P -m seglight.evaluate ckpt=$R/bud_${arm}${S}_f$f/checkpoints/last.ckpt data=camvid \
        data.folds=4 data.fold=$f data.purge_frames=0 split=val report=false output=$R/eval/bud_${arm}${S}_${name}_f$f \
        $ov 2>&1 | grep -E "95% CI|Error" | tail -2)
    done
  done
done
echo "== done $(date)"
