#!/usr/bin/env bash
# Session 22: gather the RegNetX-400MF runs into runs/s22 once chain.sh is done (bash post.sh): eval JSONs, epochs,
# paired intervals over blocks of frames against the final preset's arms (runs/s20/folds42.py's session()),
# the val figures and the 4-fold table.
set -e
P=/work/main/.venv/bin/python
R=/work/runs/s22
HERE=$(cd "$(dirname "$0")" && pwd)
for f in 0 1; do
  base=$(cd $HERE/../s20 && $P -c "from folds42 import session; print(session('new', $f))")  # the final arm's session
  for k in plain tta3; do
    cp $R/eval/full_regx4_${k}_f$f/metrics.json $HERE/eval_full_regx4_${k}_f$f.json
    (cd /work/main && $P -m seglight.compare "runs=[/work/runs/$base/eval/full_new_${k}_f$f,$R/eval/full_regx4_${k}_f$f]" \
      data=camvid data.folds=4 data.fold=$f data.purge_frames=0 output=$R/cmp_${k}_f$f > /dev/null 2>&1)
    cp $R/cmp_${k}_f$f/compare.md $HERE/compare_vs_final_${k}_f$f.md
  done
  cp $R/full_regx4_f$f/metrics.json $HERE/full_regx4_f${f}_train_metrics.json
done
for k in plain tta3; do cp $R/eval/val_regx4_$k/metrics.json $HERE/eval_val_regx4_$k.json; done
cp $R/val_regx4/metrics.json $HERE/val_regx4_train_metrics.json
R=$R RUNS="full_regx4_f0 full_regx4_f1 val_regx4" bash $HERE/../s20/epochs.sh > $HERE/epochs.txt
cp $R/full_regx4_f*_time_budget.log $R/val_regx4_time_budget.log $R/chain.log $HERE/
$P $HERE/compare.py > $HERE/compare.md
