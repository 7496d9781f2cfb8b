#!/usr/bin/env bash
# C-small and C-denoise side by side with PyTorch, interleaved in one sitting: for each model,
# PAIRS times (default 2), one epoch of this crate (`throughput`: a warm-up epoch, then one
# timed epoch of 60,000 rows) then one epoch of ../shared/bench/torch_conv_reference.py.
# Quote the ratio within each pair, never seconds from another sitting.
#
#   cargo build --release --example throughput
#   PAIRS=2 PYTHON=.venv/bin/python MNIST_DIR=../shared/data/mnist benches/conv_side_by_side.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PAIRS="${PAIRS:-2}"
PYTHON="${PYTHON:-.venv/bin/python}"
MNIST_DIR="${MNIST_DIR:-../shared/data/mnist}"
TARGET="$(cargo metadata --format-version 1 --no-deps | sed 's/.*"target_directory":"\([^"]*\)".*/\1/')"
OURS="$TARGET/release/examples/throughput"
for model in c-small c-denoise; do
    theirs=$([ "$model" = c-small ] && echo C-small || echo C-denoise)
    for i in $(seq 1 "$PAIRS"); do
        o=$("$OURS" --workload "$model" --epochs 1 --rows 60000 --threads 2 | grep -E '^C-')
        t=$("$PYTHON" ../shared/bench/torch_conv_reference.py --mnist "$MNIST_DIR" --threads 2 \
            --epochs 1 --only "$theirs" | grep '^{')
        ours_s=$(echo "$o" | awk '{print $2}')
        theirs_s=$(echo "$t" | sed 's/.*"sec_per_epoch": \([0-9.]*\).*/\1/')
        echo "$(date +%H:%M:%S) $model pair $i: ours $ours_s s, PyTorch $theirs_s s, speed-up $(awk "BEGIN { printf \"%.2f\", $theirs_s / $ours_s }")x"
    done
done
