#!/usr/bin/env bash
# Session 21: gather the RegNetX-400MF runs into runs/s21 once they are done (bash post.sh from runs/s21): eval JSONs,
# epochs, the summary table, and paired intervals over blocks of frames against session 20's final-preset arms.
set -e
P=/work/main/.venv/bin/python
R=/work/runs/s21
HERE=$(cd "$(dirname "$0")" && pwd)
for f in 2 3; do
  for k in plain tta3; do cp $R/eval/full_regx4_${k}_f$f/metrics.json $HERE/eval_full_regx4_${k}_f$f.json; done
  cp $R/full_regx4_f$f/metrics.json $HERE/full_regx4_f${f}_train_metrics.json
  base=$(cd $HERE/../s20 && $P -c "from folds42 import session; print(session('new', $f))")  # the final arm's session
  for k in plain tta3; do
    (cd /work/main && $P -m seglight.compare "runs=[/work/runs/$base/eval/full_new_${k}_f$f,$R/eval/full_regx4_${k}_f$f]" \
      data=camvid data.folds=4 data.fold=$f data.purge_frames=0 output=$R/cmp_${k}_f$f > /dev/null 2>&1)
    cp $R/cmp_${k}_f$f/compare.md $HERE/compare_vs_final_${k}_f$f.md
  done
done
R=$R RUNS="full_regx4_f2 full_regx4_f3" bash $HERE/../s20/epochs.sh > $HERE/epochs.txt
cp $R/full_regx4_f*_time_budget.log $R/full_regx4.log $HERE/
$P $HERE/compare.py > $HERE/compare.md
