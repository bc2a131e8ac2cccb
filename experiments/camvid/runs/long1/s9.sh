#!/usr/bin/env bash
# Session 9, frozen worktree /work/wt_s9 (7fd94c8):
# 1. the AVX2 regime: the preset trained 31 epochs (what an AVX2-only EPYC fits in 42 minutes) on fold 0, bf16 here
# 2. its held-out fold-0 score, plain and with multi-scale TTA
# 3. experiment=camvid_long (120-minute budget) on the train split, then val plain and TTA
cd /work/wt_s9
export WANDB_MODE=offline
P=/work/main/.venv/bin/python
echo "== avx2 regime train $(date)"
$P -m seglight.train experiment=camvid data.folds=4 data.fold=0 callbacks.time_budget.budget=null \
  trainer.max_epochs=31 trainer.max_time=null logger=csv trainer.enable_progress_bar=false \
  hydra.run.dir=/work/runs/e31 2>&1 | tail -5
CK=/work/runs/e31/checkpoints/best.ckpt
echo "== avx2 regime eval $(date)"
$P -m seglight.evaluate ckpt=$CK data=camvid data.folds=4 data.fold=0 report=false output=/work/runs/e31_eval/plain0 2>&1 | tail -3
$P -m seglight.evaluate ckpt=$CK data=camvid data.folds=4 data.fold=0 report=false 'tta.scales=[0.75,1.0,1.25]' output=/work/runs/e31_eval/tta0 2>&1 | tail -3
$P -m seglight.compare runs=[/work/runs/e31_eval/plain0,/work/runs/e31_eval/tta0] data=camvid output=/work/runs/e31_eval/cmp0 2>&1 | tail -3
echo "== camvid_long train $(date)"
$P -m seglight.train experiment=camvid_long logger=csv trainer.enable_progress_bar=false \
  hydra.run.dir=/work/runs/long1 2>&1 | tail -5
CK=/work/runs/long1/checkpoints/best.ckpt
echo "== camvid_long eval $(date)"
$P -m seglight.evaluate ckpt=$CK data=camvid split=val report=false output=/work/runs/long1_eval/plain 2>&1 | tail -3
$P -m seglight.evaluate ckpt=$CK data=camvid split=val report=false 'tta.scales=[0.75,1.0,1.25]' output=/work/runs/long1_eval/tta 2>&1 | tail -3
$P -m seglight.compare runs=[/work/runs/long1_eval/plain,/work/runs/long1_eval/tta] data=camvid output=/work/runs/long1_eval/cmp 2>&1 | tail -3
echo "== done $(date)"
