#!/usr/bin/env bash
# Session 12: the 42-minute CamVid preset from a frozen worktree, decoded images cached, then evaluate on val.
export WANDB_MODE=offline
P=/work/main/.venv/bin/python
TREE=${TREE:-/work/wt_s12b}
R=/work/runs/s12
while pgrep -f tta.sh > /dev/null; do sleep 10; done
echo "== train $(date)"
cd $TREE && /usr/bin/time -v $P -m seglight.train experiment=camvid logger=csv trainer.enable_progress_bar=false \
  data.cache_images=true hydra.run.dir=$R/full 2>&1 | grep -E "time_budget|TimeBudget|planned|val/mIoU|Error|Elapsed|cache" | tail -12
echo "== evaluate $(date)"
# best.ckpt (chosen on val), last.ckpt (the final weights), each plain and with multi-scale TTA; best.ckpt in fp32 too
for ck in best last; do
  for v in "plain" "tta3 tta.scales=[0.75,1.0,1.25]" "plain32 precision=32"; do
    name=${v%% *}; ov=${v#* }; [ "$name" = "$ov" ] && ov=""
    [ "$ck/$name" = "last/plain32" ] && continue
    out=$R/eval/full_$name; [ $ck = last ] && out=$R/eval/full_last_$name
    $P -m seglight.evaluate ckpt=$R/full/checkpoints/$ck.ckpt data=camvid split=val output=$out $ov 2>&1 | grep -E "95% CI|Error" | tail -2
  done
done
echo "== done $(date)"
