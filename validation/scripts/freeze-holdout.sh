#!/usr/bin/env bash
# Freeze hold-out (issue 13): end-to-end runs at configurations the validation set did not
# measure (frozen prefixes 2/6/10, cached prefixes 3/7/11, FreezeOut cubic t0=0.3 and linear
# t0=0.7, AutoFreeze every 3 iterations; 4 epochs of 5 iterations; f32 at batch 32), run on a
# fresh machine after the freeze cost model and its calibration (from h200-freeze-micro-run15)
# were fixed. Nothing here enters `perfcast calibrate` (e2e rows only). Expects env.sh's $B,
# $CORPUS, $O; SET names the set (run 11 wrote h200-freeze-holdout with the harness before run
# 13); PIN (e.g. "taskset -c 2-5") pins the harness to host cores as run 15 did.
set -u
SET=${SET:-h200-freeze-holdout}; PIN=${PIN:-}
echo "freeze-holdout start $(date -u +%FT%TZ)"
timeout 45 $PIN $B freeze check || echo "FREEZE CHECK FAILED rc=$?"
H="--model val-bert-base --classes 32 --corpus $CORPUS --ks 2,6,10 --cache-ks 3,7,11 --tiers gpu,ram --epochs 4 --iters-per-epoch 5 --seed 7 --set $SET --out $O"
P="freezeout:schedule=cubic,t0=0.3;freezeout:schedule=linear,t0=0.7;autofreeze:interval=3"
timeout 70 $PIN $B freeze e2e $H --batches 32 --seqs 128 --dtypes bf16 --policies "$P" || echo "FREEZE-HOLDOUT-1 rc=$?"
timeout 80 $PIN $B freeze e2e $H --batches 16 --seqs 256 --dtypes bf16 --policies "$P" || echo "FREEZE-HOLDOUT-2 rc=$?"
timeout 90 $PIN $B freeze e2e $H --batches 32 --seqs 128 --dtypes f32 --policies "$P" || echo "FREEZE-HOLDOUT-3 rc=$?"
timeout 60 $PIN $B freeze e2e $H --batches 16 --seqs 128 --dtypes bf16 --policies "$P" || echo "FREEZE-HOLDOUT-4 rc=$?"
echo "freeze-holdout done $(date -u +%FT%TZ)"
