#!/usr/bin/env bash
# One device-machine pass: engine_step.py on CUDA, then the CPU figures and the
# what-if savings on that (quiet, 16-core) host for comparison with a noisy box.
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
echo "== cuda" ; timeout 150 $py bench/engine_step.py --device cuda --repeats 30 2>&1 | tee "$out/cuda.jsonl"
echo "== cuda profile (mlp_step engine)"
timeout 60 $py bench/profile_engine.py mlp_step --device cuda --steps 300 --top 25 > "$out/cuda_profile.txt" 2>&1
head -45 "$out/cuda_profile.txt"
echo "== cpu (device host)"; timeout 120 $py bench/engine_step.py --repeats 30 2>&1 | tee "$out/cpu_host.jsonl"
timeout 60 $py bench/engine_step.py --repeats 30 --malloc keep --only conv_step 2>&1 | tee -a "$out/cpu_host.jsonl"
echo "== what-if (device host cpu)"
{
  W="timeout 60 $py bench/whatif_engine.py"
  $W mlp_step contig_wgrad --repeats 20 | tail -3
  $W mlp_step fused_linear sgd_direct act_grad_direct lean_ce --repeats 20 | tail -4
  $W tiny_mlp_step fused_linear sgd_direct act_grad_direct mse_direct --repeats 20 | tail -4
  $W conv_step pool_direct --repeats 20 | tail -4
  $W conv_step pool_direct act_grad_direct --malloc default --repeats 20 | tail -4
  $W mlp_step_events fast_summarize --repeats 10 | tail -3
  $W mlp_step_events fast_summarize fused_linear sgd_direct act_grad_direct lean_ce --repeats 10 | tail -4
} 2>&1 | tee "$out/whatif_host.txt"
