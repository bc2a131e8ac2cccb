#!/usr/bin/env bash
# Short-vs-full ranking check on fold 0: the preset and loss.ohem=0.25 (0.094 worse on the 14-epoch proxy) trained
# for 87 epochs each (what the 42-minute budget gave run 8 on this CPU; fixed so other load cannot change it)
cd /work/wt_rank
export WANDB_MODE=offline
/work/main/.venv/bin/python -m seglight.train --multirun experiment=camvid data.folds=4 data.fold=0 \
  'loss.ohem=null,0.25' callbacks.time_budget.budget=null trainer.max_epochs=87 trainer.max_time=null \
  logger=csv trainer.enable_progress_bar=false hydra.sweep.dir=/work/runs/rank
