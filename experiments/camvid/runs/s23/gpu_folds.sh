#!/usr/bin/env bash
# Session 23, on the lent H200: the 42-minute presets at the epoch counts this project's avx512_bf16 EPYC gives them
# in 42 minutes, trained on the GPU, several runs at a time, so that a second seed of both arms fits in one lease.
# - old: the preset (the code at 167c7da, its cap of 80 epochs binds on the CPU: 80 epochs on every fold);
# - new: main's RegNet preset at the epochs its seed-42 CPU runs reached (150 / 142 / 146 / 144 on folds 0-3);
# seed 1 on the four unpurged folds, then two seed-42 runs to set beside their CPU twins. Each run's last.ckpt is
# scored by main's seglight.evaluate on the fold's held-out images, plain and with multi-scale TTA.
# Carried (ignored here): .whl (the packages the machine lacks), .gpu/old (git archive 167c7da seglight conf
# experiments/conf pyproject.toml) and .gpu/camvid (CamVid's images as JPEG, quality 95, 4:4:4, to fit the 64 MiB
# a call carries: RMS 1.8 grey levels from the PNGs; masks as they are). Results come back in $OUT/gpu_folds.tar.gz.
# A training stopped by the deadline is not scored (its last.ckpt would be a partial model).
#   OUT=/tmp/out STUDY_S=500 bash experiments/camvid/runs/s23/gpu_folds.sh
# DRY=1 runs the same commands for 2 batches of 1 epoch each, one fold, on whatever device is there (a check here);
# ONLY=<glob> keeps the jobs whose names match.
# Knobs added in session 24 (unset: the run above): WORKERS (loader workers per run, 2), NO_TESTS=1 (skip the CUDA
# tests), NEW_JOBS="seed:fold ..." (the RegNet arm alone, at the fold's epochs above).
set -u
OUT=${OUT:-/tmp/gpu_folds}
ROOT=$PWD
W=${WORK:-/tmp/gpu_folds_work}
mkdir -p "$OUT" "$W/keep"
START=$(date +%s)
DEADLINE=$((START + ${STUDY_S:-500}))
if [ -z "${DRY:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
  PY=python3
  SITE=/tmp/site
  ACC=trainer.accelerator=gpu
else
  PY=$ROOT/.venv/bin/python
  SITE=
  ACC=
fi
export WANDB_MODE=offline PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2 SEGLIGHT_CACHE=$W/cache
DATA="data.root=$ROOT/.gpu/camvid data.folds=4 data.num_workers=${WORKERS:-2}"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc
  PYTHONPATH=$SITE $PY -c 'import torch, pytorch_lightning as L, timm, segmentation_models_pytorch as smp
print(torch.__version__, L.__version__, timm.__version__, smp.__version__, torch.cuda.is_available())'
} > "$W/keep/machine.txt" 2>&1
cat "$W/keep/machine.txt"

# the CUDA tests beside the runs: test_cuda.py's EMA resume in its b4640f2 form
if [ -z "${DRY:-}" ] && [ -z "${NO_TESTS:-}" ]; then
  (PYTHONPATH=$SITE:$ROOT timeout 240 $PY -m pytest -q -p no:cacheprovider tests/test_cuda.py \
    > "$W/keep/test_cuda.log" 2>&1) &
fi

# one job: name tree fold epochs seed; train, then evaluate plain and with TTA (main's evaluate for both arms)
job() {
  local name=$1 tree=$2 f=$3 ep=$4 seed=$5 left extra=""
  [ "$tree" = "$ROOT" ] && extra="data.purge_frames=0"
  [ -n "${DRY:-}" ] && extra="$extra trainer.limit_train_batches=2 trainer.limit_val_batches=2" && ep=1
  left=$((DEADLINE - $(date +%s) - 30))
  echo "== $name start $(date +%T) ($left s left)"
  (cd "$tree" && PYTHONPATH=$SITE:$tree timeout $left $PY -m seglight.train experiment=camvid $DATA data.fold=$f \
    $extra $ACC seed=$seed trainer.max_epochs=$ep logger=csv trainer.enable_progress_bar=false \
    hydra.run.dir=$W/$name > "$W/keep/${name}_train.log" 2>&1)
  local rc=$?
  echo "== $name trained rc=$rc $(date +%T)"
  grep -h "time budget" "$W/keep/${name}_train.log" | tail -2
  [ $rc = 0 ] || return
  for v in "plain" "tta3 tta.scales=[0.75,1.0,1.25]"; do
    local k=${v%% *} ov=${v#* }
    [ "$k" = "$ov" ] && ov=""
    left=$((DEADLINE + 45 - $(date +%s)))  # the scoring may run 45 s past the deadline, no more
    [ $left -gt 100 ] && left=100
    [ $left -gt 5 ] || continue
    (cd "$ROOT" && PYTHONPATH=$SITE:$ROOT timeout $left $PY -m seglight.evaluate ckpt=$W/$name/checkpoints/last.ckpt \
      data=camvid $DATA data.fold=$f data.purge_frames=0 split=val report=false output=$W/keep/eval_${name}_$k $ov \
      > "$W/keep/eval_${name}_$k.log" 2>&1)
    grep -h '"mIoU"' "$W/keep/eval_${name}_$k/metrics.json" 2>/dev/null | head -1 | sed "s/^/== $name $k /"
  done
  cp "$W/$name/metrics.json" "$W/keep/${name}_train_metrics.json" 2>/dev/null
}

OLD=$ROOT/.gpu/old
EPOCHS=(150 142 146 144)  # the new arm's seed-42 epochs on folds 0-3 (runs/s21-s22 epochs.txt)
JOBS=()
for f in 0 1 2 3; do JOBS+=("new_s1_f$f $ROOT $f ${EPOCHS[$f]} 1" "old_s1_f$f $OLD $f 80 1"); done
JOBS+=("new_s42_f0 $ROOT 0 150 42" "old_s42_f1 $OLD 1 80 42")
if [ -n "${NEW_JOBS:-}" ]; then
  JOBS=()
  for sf in $NEW_JOBS; do s=${sf%:*} f=${sf#*:}; JOBS+=("new_s${s}_f$f $ROOT $f ${EPOCHS[$f]} $s"); done
fi
[ -n "${DRY:-}" ] && JOBS=("new_s1_f0 $ROOT 0 150 1" "old_s1_f0 $OLD 0 80 1")
MAXJ=${MAXJ:-8}
TESTS=1; [ -z "${NO_TESTS:-}" ] || TESTS=0
for j in "${JOBS[@]}"; do
  [[ ${j%% *} == ${ONLY:-*} ]] || continue
  while [ "$(jobs -rp | wc -l)" -ge $((MAXJ + TESTS)) ]; do sleep 2; done  # +TESTS: the CUDA tests
  if [ $((DEADLINE - $(date +%s))) -lt ${MIN_LEFT_S:-240} ]; then echo "== not started: $j"; continue; fi
  job $j > "$W/keep/job_${j%% *}.out" 2>&1 &
  sleep 1
done
wait
cat "$W"/keep/job_*.out
nvidia-smi --query-gpu=memory.used --format=csv 2>/dev/null
tar -czf "$OUT/gpu_folds.tar.gz" -C "$W" keep
echo "== all done in $(( $(date +%s) - START )) s"
