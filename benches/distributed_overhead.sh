#!/usr/bin/env bash
# Per-step cost of data-parallel training on one machine (README, "Training on several
# machines"): ROUNDS interleaved rounds (default 5) of, per workload, 2 MPI ranks x 1 thread,
# the same with Open MPI yielding while it waits, one process x 2 threads and one process x
# 1 thread; prints each run's JSON line, then the medians in ms per step.
#
#   cargo build --release --features mpi --example distributed
#   ROUNDS=5 benches/distributed_overhead.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROUNDS="${ROUNDS:-5}"
TARGET="$(cargo metadata --format-version 1 --no-deps | sed 's/.*"target_directory":"\([^"]*\)".*/\1/')"
E="$TARGET/release/examples/distributed"
if [ "$(id -u)" = 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
LOG="$(mktemp)"
for round in $(seq 1 "$ROUNDS"); do
    for model in deep shallow; do
        run() { echo "$model $1 $("${@:2}" --model "$model" --json | grep '^{')" | tee -a "$LOG"; }
        run ranks2 mpirun -n 2 "$E" --threads 1
        run ranks2-yield mpirun --mca mpi_yield_when_idle 1 -n 2 "$E" --threads 1
        run threads2 "$E" --threads 2
        run threads1 "$E" --threads 1
    done
done
python3 - "$LOG" <<'PY'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    model, kind, js = line.split(' ', 2)
    runs.setdefault((model, kind), []).append(json.loads(js)['ms_per_step'])
kinds = ['ranks2', 'ranks2-yield', 'threads2', 'threads1']
print('median ms per step: ' + ', '.join(kinds))
for model in ['deep', 'shallow']:
    print(f'W-{model}: ' + ', '.join(f'{statistics.median(runs[(model, k)]):.2f}' for k in kinds))
PY
rm -f "$LOG"
