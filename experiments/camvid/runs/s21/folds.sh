#!/usr/bin/env bash
# Session 21: a cheaper encoder (timm's RegNetX-400MF, 1.8x the img/s of resnet18 here) against the final preset
# and the issue's preset, from a frozen worktree of main at ef7c629 (4 unpurged folds, last.ckpt scored on each
# fold's held-out images, plain and with multi-scale TTA).
# - 10 minutes of fit per fold, session 13's equal-wall-time proxy (the default BUDGET):
#     R=/work/runs/s21 TREE=/work/wt_s21 ARGS="encoder.name=tu-regnetx_004" NAME=regx4 folds.sh
# - the preset's own 42-minute budget, as sessions 18-20 ran both presets:
#     BUDGET= FOLDS="2 3" ... NAME=full_regx4 folds.sh
export WANDB_MODE=offline
P=/work/main/.venv/bin/python
R=${R:-/work/runs/s21}
TREE=${TREE:-/work/wt_s21}
NAME=${NAME:-regx4}
BUDGET=${BUDGET-"callbacks.time_budget.budget=00:00:10:00 trainer.max_time=00:00:11:30"}
for f in ${FOLDS:-0 1 2 3}; do
  echo "== $NAME f$f $(date)"
  (cd $TREE && $P -m seglight.train experiment=camvid data.folds=4 data.fold=$f data.purge_frames=0 $BUDGET $ARGS \
    ${SEED:+seed=$SEED} logger=csv trainer.enable_progress_bar=false hydra.run.dir=$R/${NAME}_f$f 2>&1 \
    | grep -E "progressive|time budget|val/mIoU|Error" | tail -4)
  P=$P bash "$(dirname "$0")/../evaluate_both.sh" $TREE $R/${NAME}_f$f/checkpoints/last.ckpt \
    $R/eval/${NAME}_KIND_f$f data.folds=4 data.fold=$f data.purge_frames=0
done
echo "== done $(date)"
