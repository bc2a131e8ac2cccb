#!/usr/bin/env bash
# Session 22: the RegNet preset on session 14's AVX2-emulated equal-wall-time proxy, fold 0 only (10 minutes of fit,
# fp32, unpurged), from main at ff56658; then evaluate under the same cap, plain and with TTA. The loop is
# runs/s21/folds.sh's (its default 10-minute budget); the run itself went through a copy of that loop with the same
# train and evaluate commands, only a shorter log filter.
export WANDB_MODE=offline ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2
export R=/work/runs/s22 TREE=/work/main FOLDS=0 NAME=avx2_regx4 ARGS="trainer.precision=32-true"
exec bash "$(dirname "$0")/../s21/folds.sh"
