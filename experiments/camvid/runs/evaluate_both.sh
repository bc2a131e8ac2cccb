#!/usr/bin/env bash
# Score one checkpoint plain and with the adopted multi-scale TTA ('tta.scales=[0.75,1.0,1.25]'), with main's venv
# and the seglight of TREE, on CamVid's val split or, through the overrides, a fold's held-out images; print the mIoU
# lines. OUT names the output folder, with KIND where "plain" or "tta3" goes.
#   evaluate_both.sh TREE CKPT OUT [overrides ...]
#   evaluate_both.sh /work/wt /work/runs/x/checkpoints/last.ckpt /work/runs/eval/x_KIND_f0 data.folds=4 data.fold=0
# The shared step of s14/avx2_31ep.sh, s21/folds.sh and s24/val.sh (since session 24); the scripts of earlier
# sessions keep their own copy of this loop, as they ran.
P=${P:-/work/main/.venv/bin/python}
tree=$1 ckpt=$2 out=$3
shift 3
for v in "plain" "tta3 tta.scales=[0.75,1.0,1.25]"; do
  kind=${v%% *} ov=${v#* }
  [ "$kind" = "$ov" ] && ov=""
  (cd "$tree" && $P -m seglight.evaluate ckpt="$ckpt" data=camvid "$@" split=val report=false \
    output="${out//KIND/$kind}" $ov 2>&1 | grep -E "mIoU|Error" | tail -2)
done
