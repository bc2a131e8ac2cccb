#!/usr/bin/env bash
# session 25: the RegNet preset with the faster dice_ce (a8634bb: same loss, fewer passes; more epochs in the
# 42-minute budget), from a worktree of main at a8634bb: a third val seed (seed 2; seeds 42 and 1 ran with the old
# loss), the loss bench three times, then fold 3 at seed 42 (old loss: 144 epochs, 0.5685 plain), then make test.
export WANDB_MODE=offline
P=/work/main/.venv/bin/python
R=/work/runs/s25
T=/work/wt_s25
echo "== val run seed 2 $(date)"
(cd $T && $P -m seglight.train experiment=camvid seed=2 logger=csv trainer.enable_progress_bar=false \
  hydra.run.dir=$R/val_regx4_s2 2>&1 | grep -E "time budget|val/mIoU|Error" | tail -4)
P=$P bash $T/experiments/camvid/runs/evaluate_both.sh $T $R/val_regx4_s2/checkpoints/last.ckpt $R/eval/val_regx4_s2_KIND
echo "== loss bench $(date)"
for i in 1 2 3; do
  (cd $T && $P experiments/bench/loss_step.py --repeats 7 --out $R/loss_step_avx512bf16_$i.json 2>&1 | tail -1)
done
R=$R TREE=$T BUDGET= FOLDS=3 SEED=42 NAME=full_regx4_fastloss bash $T/experiments/camvid/runs/s21/folds.sh
echo "== make test $(date)"
(cd /work/main && make test > $R/make_test.log 2>&1; tail -3 $R/make_test.log)
echo "== all done $(date)"
