#!/usr/bin/env bash
# Session 26: experiment=camvid_long (120 minutes of fit) with the preset as it is now (RegNetX-400MF since session
# 22, the faster dice_ce of session 25, GroupNorm run contiguous since session 26), from a frozen worktree of main,
# the cores to itself; then last.ckpt on val, plain and with multi-scale TTA. Session 16's run (resnet18) is s16/long.sh.
#   TREE=/work/wt_s26 bash long.sh
export WANDB_MODE=offline
P=/work/main/.venv/bin/python
R=/work/runs/s26
T=${TREE:-/work/wt_s26}
grep -o -m1 -E 'avx512_bf16|amx_bf16' /proc/cpuinfo
echo "== camvid_long train $(date)"
(cd $T && $P -m seglight.train experiment=camvid_long logger=csv trainer.enable_progress_bar=false \
  hydra.run.dir=$R/long 2>&1 | grep -E "time budget|val/mIoU|Error" | tail -4)
echo "== eval $(date)"
P=$P bash $T/experiments/camvid/runs/evaluate_both.sh $T $R/long/checkpoints/last.ckpt $R/eval/long_KIND
echo "== done $(date)"
