#!/usr/bin/env bash
# Runs proxy jobs from jobs.txt one at a time; each line: NAME OVERRIDES...; append lines while it runs.
export WANDB_MODE=offline
P=/work/main/.venv/bin/python
TREE=${TREE:-/work/wt_s12}
R=${R:-/work/runs/s12}  # session 13: TREE=/work/wt_s13 R=/work/runs/s13
Q=$R/jobs.txt
i=1
while true; do
  line=$(sed -n "${i}p" $Q)
  if [ -z "$line" ]; then sleep 20; line=$(sed -n "${i}p" $Q); [ -z "$line" ] && break; fi
  name=${line%% *}; ov=${line#* }
  [ "$name" = "$ov" ] && ov=""
  echo "== $name $ov $(date)"
  (cd $TREE && $P -m seglight.train experiment=camvid data.folds=4 callbacks.time_budget.budget=null \
    trainer.max_epochs=14 trainer.max_time=null logger=csv trainer.enable_progress_bar=false \
    hydra.run.dir=$R/$name $ov 2>&1 | grep -E "left out|val/mIoU|Error" | tail -3)
  i=$((i+1))
done
echo "== done $(date)"
