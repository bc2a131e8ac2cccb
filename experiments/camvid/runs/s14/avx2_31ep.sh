#!/usr/bin/env bash
# Session 14: the final preset for the 31 epochs the real AVX2-only EPYC trains in the 42-minute budget (the issue's
# figure; run 6 of the preset of that day: val 0.596), with oneDNN and ATen capped to AVX2 and fp32, on the train
# split; the time budget is off because the emulation's cores are about twice as fast as that machine's. Then
# seglight.evaluate (same cap) on the 101 val images, last.ckpt, plain and with the adopted multi-scale TTA.
# EPOCHS (session 24) sets another epoch count; the run's name follows it (avx2_${EPOCHS}ep). Session 24 also
# scores through ../evaluate_both.sh, whose log filter is "mIoU" (val's 2 blocks of frames print no "95% CI" line).
export WANDB_MODE=offline ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2
P=/work/main/.venv/bin/python
R=${R:-/work/runs/s14}
N=avx2_${EPOCHS:-31}ep
echo "== train $(date)"
$P -m seglight.train experiment=camvid callbacks.time_budget.budget=null trainer.max_epochs=${EPOCHS:-31} \
  trainer.max_time=null trainer.precision=32-true logger=csv trainer.enable_progress_bar=false \
  hydra.run.dir=$R/$N 2>&1 | grep -E "val/mIoU|Error" | tail -3
echo "== evaluate $(date)"
P=$P bash "$(dirname "$0")/../evaluate_both.sh" "$PWD" $R/$N/checkpoints/last.ckpt $R/eval/${N}_KIND
echo "== done $(date)"
