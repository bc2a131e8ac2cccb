#!/usr/bin/env bash
# waits for fold 0's pair, compares it, runs the quick checks of this session's test changes, then fold 2's issue's-preset arm (its pair's other arm next session)
P=/work/main/.venv/bin/python
R=/work/runs/s19
while pgrep -f full42_run.sh >/dev/null; do sleep 15; done
echo "== fold 0 done $(date)"
cd /work/wt_s19
E=$R/eval
$P -m seglight.compare runs=[$E/full_old_plain_f0,$E/full_new_plain_f0,$E/full_new_tta3_f0,$E/full_old_tta3_f0] data=camvid data.folds=4 data.fold=0 data.purge_frames=0 output=$R/cmp_vs_old_f0 2>&1 | grep -E " = |Error"
$P -m seglight.compare runs=[$E/full_old_tta3_f0,$E/full_new_tta3_f0] data=camvid data.folds=4 data.fold=0 data.purge_frames=0 output=$R/cmp_tta_f0 2>&1 | grep -E " = |Error"
echo "== checks $(date)"
cd /work/main
$P -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_proxy.py -k "ema or cuda" 2>&1 | tail -1
cp seglight/training/callbacks/ema.py /tmp/ema_orig.py
$P .mut/mut.py no_restore && echo "mutant no_restore:" && $P -m pytest -q -p no:cacheprovider tests/test_proxy.py -k ema_resume 2>&1 | tail -1
cp /tmp/ema_orig.py seglight/training/callbacks/ema.py && git diff --stat seglight
.venv/bin/ruff check seglight tests experiments notebooks | tail -1; .venv/bin/ruff format --check seglight tests experiments notebooks | tail -1; .venv/bin/mypy 2>&1 | tail -1
echo "== fold 2 start $(date)"
FOLDS=2 ARMS=old bash $R/full42_run.sh > $R/full42_f2.log 2>&1
echo "== fold 2 done $(date)"
