#!/usr/bin/env bash
# Session 22: the RegNet preset on session 14's AVX2-emulated equal-wall-time proxy, fold 0 only (10 minutes of fit,
# fp32, unpurged), from main at ff56658; then evaluate under the same cap, plain and with TTA.
export WANDB_MODE=offline ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2
P=/work/main/.venv/bin/python
R=/work/runs/s22
cd /work/main
echo "== train $(date)"
$P -m seglight.train experiment=camvid data.folds=4 data.fold=0 data.purge_frames=0 \
  callbacks.time_budget.budget=00:00:10:00 trainer.max_time=00:00:11:30 trainer.precision=32-true logger=csv \
  trainer.enable_progress_bar=false hydra.run.dir=$R/avx2_regx4_f0 2>&1 | grep -E "val/mIoU|Error" | tail -3
for v in "plain" "tta3 tta.scales=[0.75,1.0,1.25]"; do
  set -- $v; name=$1; ov=${2:-}
  $P -m seglight.evaluate ckpt=$R/avx2_regx4_f0/checkpoints/last.ckpt data=camvid data.folds=4 data.fold=0 \
    data.purge_frames=0 split=val report=false output=$R/eval/avx2_regx4_${name}_f0 $ov 2>&1 | grep -E "mIoU|Error" | tail -2
done
echo "== done $(date)"
