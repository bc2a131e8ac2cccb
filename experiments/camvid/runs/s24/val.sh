#!/usr/bin/env bash
# session 24: after avx2.sh, a second seed of the RegNet preset on the train split at the full 42 minutes (session
# 22's val run was seed 42: 0.667 plain, 0.674 TTA), from the worktree of main at ab78799; val scored plain and with TTA
until grep -q "== done" /work/runs/s24/avx2.log; do sleep 20; done
export WANDB_MODE=offline
P=/work/main/.venv/bin/python
R=/work/runs/s24
echo "== val run seed 1 $(date)"
(cd /work/wt_s24 && $P -m seglight.train experiment=camvid seed=1 logger=csv trainer.enable_progress_bar=false \
  hydra.run.dir=$R/val_regx4_s1 2>&1 | grep -E "time budget|val/mIoU|Error" | tail -4)
P=$P bash /work/main/experiments/camvid/runs/evaluate_both.sh /work/wt_s24 $R/val_regx4_s1/checkpoints/last.ckpt \
  $R/eval/val_regx4_s1_KIND
echo "== all done $(date)"
