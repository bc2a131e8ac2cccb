#!/usr/bin/env bash
# Session 16, frozen worktree /work/wt_s16 (62643b2), the cores to itself:
# experiment=camvid_long (120-minute budget) on the train split, then val plain and with multi-scale TTA,
# for last.ckpt (the weights the run ended with: no selection on val) and best.ckpt (chosen on val).
cd /work/wt_s16
export WANDB_MODE=offline
P=/work/main/.venv/bin/python
R=/work/runs/s16
grep -o -m1 -E 'avx512_bf16|amx_bf16' /proc/cpuinfo
echo "== camvid_long train $(date)"
/usr/bin/time -v $P -m seglight.train experiment=camvid_long logger=csv trainer.enable_progress_bar=false \
  hydra.run.dir=$R/long 2>&1 | tail -40
for ck in last best; do
  for how in plain tta; do
    extra=(); [ $how = tta ] && extra=('tta.scales=[0.75,1.0,1.25]')
    echo "== eval $ck $how $(date)"
    $P -m seglight.evaluate ckpt=$R/long/checkpoints/$ck.ckpt data=camvid split=val report=false "${extra[@]}" \
      output=$R/long_eval/${ck}_$how 2>&1 | tail -3
  done
done
$P -m seglight.compare runs=[$R/long_eval/last_plain,$R/long_eval/last_tta] data=camvid output=$R/long_eval/cmp_last 2>&1 | tail -3
echo "== done $(date)"
