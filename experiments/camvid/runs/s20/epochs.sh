#!/usr/bin/env bash
# epochs.txt: for each run, epochs, median / range of epoch seconds (time_budget log lines), budget used at the last epoch
# (session 21 reuses it: R=/work/runs/s21 RUNS="full_regx4_f2 full_regx4_f3" epochs.sh)
R=${R:-/work/runs/s20}
cd $R
echo "run: epochs, median / range of epoch seconds (time_budget log lines), budget seconds used at the last epoch"
for r in ${RUNS:-full_new_f2 full_old_f3 full_new_f3}; do
  [ -f $r/train.log ] || continue
  grep "time budget:" $r/train.log | sed -E 's/.*used; epoch ([0-9]+) s.*/\1/' | sort -n > /tmp/ep_$r
  n=$(wc -l < /tmp/ep_$r); med=$(sed -n "$(( (n + 1) / 2 ))p" /tmp/ep_$r)
  used=$(grep "time budget:" $r/train.log | tail -1 | sed -E 's/.*budget: ([0-9]+) of.*/\1/')
  echo "$(basename $R)/$r: $n epochs, epoch $med s ($(head -1 /tmp/ep_$r)-$(tail -1 /tmp/ep_$r)), $used of 2520 s"
  grep "time budget:" $r/train.log | sed -E 's/^\[([0-9-]+ [0-9:]+),[0-9]+\]\[[^]]*\]\[INFO\] - /\1 /' > ${r}_time_budget.log
done
