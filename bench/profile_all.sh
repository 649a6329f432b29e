#!/usr/bin/env bash
# Issue 10's GPU matrix in one command: every sample, eager and compiled, on the
# CPU and the GPU, profiled by `gradstep profile`; the matrix (and each run's top
# ops) goes to bench/results/profile_matrix.json (or $1). Without a GPU the cuda
# runs are listed with the reason. Prints its own wall time (target: under 5 min).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-bench/results/profile_matrix.json}"
start=$(date +%s)
"${GRADSTEP:-gradstep}" profile samples/*.py --devices cpu,cuda --modes eager,compiled \
    --steps "${STEPS:-20}" --json "$out"
echo "profile_all: $(( $(date +%s) - start )) s, matrix in $out"
