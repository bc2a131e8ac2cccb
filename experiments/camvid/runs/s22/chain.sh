#!/usr/bin/env bash
# Session 22: RegNetX-400MF at the full 42 minutes on folds 0 and 1, then one run on the train split for val.
export WANDB_MODE=offline
P=/work/main/.venv/bin/python
R=/work/runs/s22
TREE=/work/wt_s22
R=$R TREE=$TREE BUDGET= FOLDS="0 1" NAME=full_regx4 ARGS="encoder.name=tu-regnetx_004 trainer.max_epochs=300" \
  bash $R/folds.sh
echo "== val run $(date)"
(cd $TREE && $P -m seglight.train experiment=camvid encoder=regnetx_004 trainer.max_epochs=300 logger=csv \
  trainer.enable_progress_bar=false hydra.run.dir=$R/val_regx4 2>&1 | grep -E "time budget|val/mIoU|Error" | tail -4)
for v in "plain" "tta3 tta.scales=[0.75,1.0,1.25]"; do
  name=${v%% *}; ov=${v#* }; [ "$name" = "$ov" ] && ov=""
  (cd $TREE && $P -m seglight.evaluate ckpt=$R/val_regx4/checkpoints/last.ckpt data=camvid split=val report=false \
    output=$R/eval/val_regx4_$name $ov 2>&1 | grep -E "mIoU|Error" | tail -2)
done
echo "== all done $(date)"
