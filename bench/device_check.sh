#!/usr/bin/env bash
# One device-machine pass: engine_step.py on CUDA and on that host's CPU (quiet,
# 16 cores) plus what-if savings of candidate engine changes on CUDA.
# Usage there: OUT=/some/dir bash bench/device_check.sh
set -u
export PYTHONUNBUFFERED=1 OPENBLAS_NUM_THREADS=1
out="${OUT:-/tmp/out}"; mkdir -p "$out"
py=python3
{
  $py -c "import sys, numpy; print(sys.version.split()[0], 'numpy', numpy.__version__)"
  $py -c "import cupy; print('cupy', cupy.__version__, cupy.cuda.runtime.getDeviceProperties(0)['name'])"
  nproc; cat /proc/loadavg
} 2>&1 | tee "$out/env.txt"
echo "== cuda"; timeout 150 $py bench/engine_step.py --device cuda --repeats 30 2>&1 | tee "$out/cuda.jsonl"
echo "== what-if (cuda)"
{
  W="timeout 60 $py bench/whatif_engine.py --device cuda --repeats 15"
  $W mlp_step lift_cache | tail -4
  $W mlp_step lift_cache linear_direct sgd_direct act_grad_direct lean_ce fast_reshape | tail -4
  $W tiny_mlp_step lift_cache linear_direct sgd_direct act_grad_direct mse_direct fast_reshape | tail -4
  $W conv_step lift_cache linear_direct sgd_direct act_grad_direct lean_ce fast_reshape | tail -4
} 2>&1 | tee "$out/whatif_cuda.txt"
echo "== cpu (device host)"
timeout 120 $py bench/engine_step.py --repeats 30 2>&1 | tee "$out/cpu_host.jsonl"
timeout 60 $py bench/engine_step.py --repeats 30 --malloc keep --only conv_step 2>&1 | tee -a "$out/cpu_host.jsonl"
