#!/usr/bin/env bash
# Lovasz fine-tuning vs the same extra epochs with the preset's loss, from the full-length (87-epoch) fold-0 preset
# model, fixed epochs; scored on fold 0's 117 held-out images. Frozen worktree /work/wt_ft (e2618e0).
cd /work/wt_ft
export WANDB_MODE=offline
P=/work/main/.venv/bin/python
START=/work/runs/rank/0/checkpoints/best.ckpt
COMMON="experiment=camvid data.folds=4 data.fold=0 init_from=$START optimizer.lr=0.0002 scheduler.warmup_steps=0 \
  callbacks.time_budget.budget=null trainer.max_epochs=8 trainer.max_time=null logger=csv trainer.enable_progress_bar=false"
echo "== control (dice_ce) $(date)"
$P -m seglight.train $COMMON hydra.run.dir=/work/runs/ft/dice_ce 2>&1 | grep -E 'WARNING|val/mIoU' | cut -c1-250
echo "== lovasz $(date)"
$P -m seglight.train $COMMON loss=lovasz loss.class_weights=null hydra.run.dir=/work/runs/ft/lovasz 2>&1 | grep -E 'WARNING|val/mIoU' | cut -c1-250
for arm in dice_ce lovasz; do
  echo "== eval $arm $(date)"
  $P -m seglight.evaluate ckpt=/work/runs/ft/$arm/checkpoints/best.ckpt data=camvid data.folds=4 data.fold=0 report=false output=/work/runs/ft_eval/$arm 2>&1 | tail -1
done
$P -m seglight.compare runs=[/work/runs/rank_eval/plain0,/work/runs/ft_eval/dice_ce,/work/runs/ft_eval/lovasz] data=camvid output=/work/runs/ft_eval/cmp 2>&1 | tail -4
echo "== done $(date)"
