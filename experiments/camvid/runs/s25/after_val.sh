#!/usr/bin/env bash
# session 25: when chain.sh reaches its loss bench, stop the chain (the fold-3 run is not needed if the epochs did
# not grow) and time the Trainer with each dice_ce instead
until grep -q "== loss bench" /work/runs/s25/chain.log; do sleep 5; done
pkill -f 'bash /work/runs/s25/chain.sh'; sleep 1; pkill -f loss_step.py; sleep 2
echo "== trainer A/B $(date)"
cd /work/main && WANDB_MODE=offline .venv/bin/python experiments/bench/loss_step.py --repeats 3 --trainer 30 \
  --out /work/runs/s25/loss_step_trainer_1.json 2>&1 | tail -1
echo "== done $(date)"
