#!/usr/bin/env bash
# ../shared/bench/torch_conv_reference.py with another seed: its `torch.manual_seed(0)` (initial
# weights and shuffles) becomes SEED and its noise generator's seed 1 becomes SEED + 10; nothing
# else changes (the test noise keeps its seed 2, so PSNR figures compare on the same images).
# The seeded copy is written to a temporary file and run with the remaining arguments.
#
#   benches/torch_conv_seed.sh 1 --mnist ../shared/data/mnist --threads 2 --epochs 10 --only C-small
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SEED="$1"
shift
PYTHON="${PYTHON:-.venv/bin/python}"
copy="$(mktemp --suffix=.py)"
trap 'rm -f "$copy"' EXIT
sed -e "s/torch.manual_seed(0)/torch.manual_seed($SEED)/" \
    -e "s/torch.Generator().manual_seed(1)/torch.Generator().manual_seed($((SEED + 10)))/" \
    ../shared/bench/torch_conv_reference.py > "$copy"
# Both seeds must have been replaced: the reference script changed if not.
[ "$(grep -c "manual_seed($SEED)\|manual_seed($((SEED + 10)))" "$copy")" -ge 2 ] ||
    { echo "torch_conv_seed.sh: the reference script's seeds were not found" >&2; exit 1; }
"$PYTHON" "$copy" "$@"
