#!/usr/bin/env bash
# Session 18 (reused in 19 on folds 0 and 2 with NEW=main at fe2b5f1): the preset (the code at 167c7da) against the final preset (main at 26a5944) at the full
# 42-minute budget (each preset's own budget and epoch cap, no overrides) on one fold of session 13's unpurged
# proxy, seed 42, the cores to themselves, one arm after the other. Then main's seglight.evaluate scores each
# last.ckpt on the fold's held-out images, plain and with the adopted multi-scale TTA.
#   R=/work/runs/s18 OLD=/work/wt_old NEW=/work/wt_s18 FOLDS=1 full42.sh
# Then the final preset again with another seed, for the noise between seeds at this length: SEED=1 ARMS=new full42.sh
export WANDB_MODE=offline
P=/work/main/.venv/bin/python
R=${R:-/work/runs/s19}
OLD=${OLD:-/work/wt_old}
NEW=${NEW:-/work/wt_s19}
S=${SEED:+_s$SEED}  # run names: full_<arm><S>_f<fold>
for f in ${FOLDS:-1}; do
  for arm in ${ARMS:-old new}; do
    tree=$OLD; extra="${SEED:+seed=$SEED}"
    [ $arm = new ] && tree=$NEW && extra="$extra data.purge_frames=0"
    echo "== $arm f$f ${SEED:+seed $SEED} $(date)"
    (cd $tree && $P -m seglight.train experiment=camvid data.folds=4 data.fold=$f $extra logger=csv \
      trainer.enable_progress_bar=false hydra.run.dir=$R/full_${arm}${S}_f$f 2>&1 \
      | grep -E "planned|time budget|val/mIoU|Error" | tail -3)
    for v in "plain" "tta3 tta.scales=[0.75,1.0,1.25]"; do
      name=${v%% *}; ov=${v#* }; [ "$name" = "$ov" ] && ov=""
      (cd $NEW && $P -m seglight.evaluate ckpt=$R/full_${arm}${S}_f$f/checkpoints/last.ckpt data=camvid \
        data.folds=4 data.fold=$f data.purge_frames=0 split=val report=false output=$R/eval/full_${arm}${S}_${name}_f$f \
        $ov 2>&1 | grep -E "mIoU|Error" | tail -2)
    done
  done
done
echo "== done $(date)"
