#!/usr/bin/env bash
# TTA vs plain on the full-length fold-0 preset model (held-out fold 0) as soon as it exists (beside the OHEM run:
# evaluation is a fixed computation, its figures do not depend on load)
while [ ! -s /work/runs/rank/0/metrics.json ]; do sleep 15; done
cd /work/wt_rank
export WANDB_MODE=offline
P=/work/main/.venv/bin/python
CK=/work/runs/rank/0/checkpoints/best.ckpt
echo "== fold 0 full-length preset: plain / tta $(date)"
$P -m seglight.evaluate ckpt=$CK data=camvid data.folds=4 data.fold=0 report=false output=/work/runs/rank_eval/plain0 2>&1 | tail -3
$P -m seglight.evaluate ckpt=$CK data=camvid data.folds=4 data.fold=0 report=false 'tta.scales=[0.75,1.0,1.25]' output=/work/runs/rank_eval/tta0 2>&1 | tail -3
$P -m seglight.compare runs=[/work/runs/rank_eval/plain0,/work/runs/rank_eval/tta0] data=camvid output=/work/runs/rank_eval/cmp0 2>&1 | tail -3
echo "== done $(date)"
