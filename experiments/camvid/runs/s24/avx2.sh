#!/usr/bin/env bash
# session 24: after chain.sh, the RegNet preset at the epochs a real AVX2-only EPYC would give it in 42 minutes
# (the 31 for resnet18 times RegNet's fp32 img/s ratio, 2.19x: 68, the optimistic end; see the camvid README),
# fp32 with oneDNN and ATen capped to AVX2, train split; val scored plain and with TTA (s14/avx2_31ep.sh, EPOCHS=68)
until grep -q "== done" /work/runs/s24/chain.log; do sleep 20; done
cd /work/main && EPOCHS=68 R=/work/runs/s24 bash experiments/camvid/runs/s14/avx2_31ep.sh
