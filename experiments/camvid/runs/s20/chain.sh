#!/usr/bin/env bash
# session 20: fold 2's final-preset arm (its issue's-preset arm ran in session 19), then fold 3's pair
S=/work/main/experiments/camvid/runs/s18/full42.sh
export R=/work/runs/s20 OLD=/work/wt_old NEW=/work/wt_s20
FOLDS=2 ARMS=new bash $S > $R/full42_f2.log 2>&1
FOLDS=3 bash $S > $R/full42_f3.log 2>&1
echo "== chain done $(date)"
