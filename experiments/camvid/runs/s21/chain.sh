#!/usr/bin/env bash
# wait for the 10-minute proxy, then RegNetX-400MF at the full 42 minutes on folds 2 and 3
while ! grep -q '^== done' /work/runs/s21/regx4.log; do sleep 10; done
cd /work/runs/s21 && R=/work/runs/s21 TREE=/work/wt_s21 BUDGET= FOLDS="2 3" NAME=full_regx4 \
  ARGS="encoder.name=tu-regnetx_004 trainer.max_epochs=300" bash folds.sh
