#!/usr/bin/env bash
# Session 14: session 13's equal-wall-time comparison (runs/s13/budget.sh) on an emulated AVX2-only CPU.
# ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 restrict oneDNN and ATen to AVX2 kernels on this avx512_bf16
# EPYC, so both arms train in fp32 as on the AVX2-only EPYC (precision pinned: 167c7da's auto may not read the cap).
# The preset (the code at 167c7da) against main's, 10 minutes of fit each, the same 4 unpurged folds,
# alternating fold by fold, the cores to themselves; then main's seglight.evaluate (under the same cap, fp32) scores
# each last.ckpt on its fold's held-out images: the preset plain, the final one plain and with TTA.
export WANDB_MODE=offline ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2
P=/work/main/.venv/bin/python
R=${R:-/work/runs/s14}
BUDGET="callbacks.time_budget.budget=00:00:10:00 trainer.max_time=00:00:11:30 trainer.precision=32-true"
for f in ${FOLDS:-0 1 2 3}; do
  for arm in old new; do
    tree=/work/wt_old; extra=""
    [ $arm = new ] && tree=/work/wt_new && extra="data.purge_frames=0"
    echo "== $arm f$f $(date)"
    (cd $tree && $P -m seglight.train experiment=camvid data.folds=4 data.fold=$f $BUDGET $extra logger=csv \
      trainer.enable_progress_bar=false hydra.run.dir=$R/avx2_${arm}_f$f 2>&1 | grep -E "planned|val/mIoU|Error" | tail -3)
  done
done
echo "== evaluate $(date)"
for f in ${FOLDS:-0 1 2 3}; do
  for v in "old plain" "new plain" "new tta3 tta.scales=[0.75,1.0,1.25]"; do
    set -- $v; arm=$1; name=$2; ov=${3:-}
    (cd /work/wt_new && $P -m seglight.evaluate ckpt=$R/avx2_${arm}_f$f/checkpoints/last.ckpt data=camvid \
      data.folds=4 data.fold=$f data.purge_frames=0 split=val report=false output=$R/eval/avx2_${arm}_${name}_f$f \
      $ov 2>&1 | grep -E "95% CI|Error" | tail -2)
  done
done
echo "== done $(date)"
