#!/usr/bin/env bash
# The GPU checks in one command (README "GPU"): every test marked `gpu`, then the
# engine and compiled-step benchmarks on "cuda". Exits 3 with the reason when CUDA is unusable.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
py="${PYTHON:-python3}"
"$py" - <<'PY'
import core
reason = core.cuda.unavailable_reason()
print("cuda:", reason or "available")
raise SystemExit(3 if reason else 0)
PY
start=$(date +%s)
# addopts are cleared: the GPU machine needs no Qt for these engine tests
"$py" -m pytest -q -m gpu -p no:cacheprovider -o addopts="" \
    tests/test_op_grads.py tests/test_events.py tests/test_errors.py \
    tests/test_training.py tests/test_samples.py tests/test_session.py tests/test_stats.py \
    tests/test_op_rules.py tests/test_compile.py
"$py" bench/engine_step.py --device cuda --repeats "${REPEATS:-20}"
"$py" bench/compile_step.py --device cuda --repeats "${REPEATS:-10}" \
    --only tiny_mlp_step --only mlp_step --only gelu_chain --only samples
echo "gpu_check: $(( $(date +%s) - start )) s"
