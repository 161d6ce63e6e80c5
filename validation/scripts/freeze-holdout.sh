#!/usr/bin/env bash
# Freeze hold-out (issue 13): end-to-end runs at configurations the validation set h200-freeze-e2e
# did not measure (frozen prefixes 2/6/10, cached prefixes 3/7/11, FreezeOut cubic t0=0.3 and
# linear t0=0.7, AutoFreeze every 3 iterations; 4 epochs of 5 iterations; f32 at batch 32), run on a
# fresh machine after the freeze cost model and its calibration (from h200-freeze-micro) were
# fixed. Nothing here enters `perfcast calibrate` (e2e rows only). Expects env.sh's $B, $CORPUS, $O.
set -u
echo "freeze-holdout start $(date -u +%FT%TZ)"
timeout 45 $B freeze check || echo "FREEZE CHECK FAILED rc=$?"
H="--model val-bert-base --classes 32 --corpus $CORPUS --ks 2,6,10 --cache-ks 3,7,11 --tiers gpu,ram --epochs 4 --iters-per-epoch 5 --seed 7 --set h200-freeze-holdout --out $O"
P="freezeout:schedule=cubic,t0=0.3;freezeout:schedule=linear,t0=0.7;autofreeze:interval=3"
timeout 100 $B freeze e2e $H --batches 32 --seqs 128 --dtypes bf16 --policies "$P" || echo "FREEZE-HOLDOUT-1 rc=$?"
timeout 100 $B freeze e2e $H --batches 16 --seqs 256 --dtypes bf16 --policies "$P" || echo "FREEZE-HOLDOUT-2 rc=$?"
timeout 120 $B freeze e2e $H --batches 32 --seqs 128 --dtypes f32 --policies "$P" || echo "FREEZE-HOLDOUT-3 rc=$?"
echo "freeze-holdout done $(date -u +%FT%TZ)"
