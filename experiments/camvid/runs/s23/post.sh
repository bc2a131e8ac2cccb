#!/usr/bin/env bash
# Session 23: gather the RegNet preset's seed-1 runs (chain.sh, 42 minutes each on the avx512_bf16 EPYC) into
# runs/s23 once they are done (bash post.sh): eval JSONs, train metrics, epochs and time-budget logs; then compare.md.
set -e
P=/work/main/.venv/bin/python
R=/work/runs/s23
HERE=$(cd "$(dirname "$0")" && pwd)
runs=""
for f in 0 1 2 3; do
  [ -f $R/eval/full_regx4_s1_tta3_f$f/metrics.json ] || continue
  for k in plain tta3; do cp $R/eval/full_regx4_s1_${k}_f$f/metrics.json $HERE/eval_full_regx4_s1_${k}_f$f.json; done
  cp $R/full_regx4_s1_f$f/metrics.json $HERE/full_regx4_s1_f${f}_train_metrics.json
  runs="$runs full_regx4_s1_f$f"
done
R=$R RUNS="$runs" bash $HERE/../s20/epochs.sh > $HERE/epochs.txt
cp $R/full_regx4_s1_f*_time_budget.log $R/chain.log $HERE/
$P $HERE/compare.py > $HERE/compare.md
