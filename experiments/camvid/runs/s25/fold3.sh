#!/usr/bin/env bash
# session 25: after make test, the preset as on main (the faster dice_ce, a467320) on fold 3 with a new seed (3), the
# fold where RegNet gained nothing over the preset (runs: seed 42 0.5685, seed 1 0.5626, seed 2 0.5441)
until grep -q "== rc" /work/runs/s25/make_test.log; do sleep 10; done
R=/work/runs/s25 TREE=/work/wt_s25 BUDGET= FOLDS=3 SEED=3 NAME=full_regx4_s3 \
  bash /work/main/experiments/camvid/runs/s21/folds.sh
