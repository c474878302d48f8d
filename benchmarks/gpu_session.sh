#!/usr/bin/env bash
# The prepared GPU session, in one go: the test suite with CuPy, then the GPU benchmark.
#
#   bash benchmarks/gpu_session.sh [OUT_DIR]        # from the repository root
#
# On a machine with a CUDA GPU, CuPy and PyTorch. Python packages the machine lacks
# travel as wheels in .whl/ (benchmarks/gpu_wheels.sh downloads them; never commit
# them): each one is installed into /tmp/site only when its module does not import.
# Writes into OUT_DIR (default $OUT, else benchmarks/results/gpu-session):
#   env.txt     nvidia-smi, driver, CUDA, CuPy, PyTorch, NumPy versions, the date
#   tests.log   XPNET_TEST_BACKENDS=numpy,cupy python -m pytest tests
#   bench.log   benchmarks/bench_gpu.py (W1, W2, W3, large; floor, xpnet generic and
#               fused, torch eager and fused; CUDA events; the no-sync proof)
#   gpu.json    the benchmark's numbers
#   summary.txt the exit status of each stage
# Stage time limits (seconds): TEST_TIMEOUT (300), BENCH_TIMEOUT (300); workers for the
# suite: TEST_WORKERS (8). Exit status: 0 when both stages passed.
set -u -o pipefail
OUT_DIR=${1:-${OUT:-benchmarks/results/gpu-session}}
mkdir -p "$OUT_DIR"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1

# -- carried wheels: only for modules this machine lacks --------------------------------
declare -A MODULE=([array_api_compat]=array_api_compat [array_api_strict]=array_api_strict
  [safetensors]=safetensors [rich]=rich [markdown_it_py]=markdown_it [mdurl]=mdurl
  [pygments]=pygments [threadpoolctl]=threadpoolctl [pytest]=pytest [hypothesis]=hypothesis)
wanted=()
for whl in .whl/*.whl; do
  [ -e "$whl" ] || continue
  dist=$(basename "$whl" | cut -d- -f1 | tr 'A-Z' 'a-z')
  mod=${MODULE[$dist]:-$dist}
  "$PY" -c "import $mod" 2>/dev/null || wanted+=("$whl")
done
if [ ${#wanted[@]} -gt 0 ]; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "${wanted[@]}" || exit 3
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

# -- the machine --------------------------------------------------------------------------
{
  date -u +%Y-%m-%dT%H:%M:%SZ
  echo "carried: ${wanted[*]:-none}"
  nvidia-smi 2>&1 | head -20
  "$PY" - <<'EOF'
import importlib, platform
print("python", platform.python_version())
for name in ("numpy", "cupy", "torch", "array_api_compat", "numba", "pytest"):
    try:
        print(name, importlib.import_module(name).__version__)
    except Exception as exc:
        print(name, "unavailable:", exc)
try:
    import cupy
    rt = cupy.cuda.runtime
    print("cuda driver", rt.driverGetVersion(), "runtime", rt.runtimeGetVersion(),
          "devices", rt.getDeviceCount())
except Exception as exc:
    print("cupy cuda:", exc)
import xpnet
print("xpnet backends", xpnet.backends.backend_status())
EOF
} > "$OUT_DIR/env.txt" 2>&1
cat "$OUT_DIR/env.txt"

# -- 1. the suite with CuPy ---------------------------------------------------------------
XPNET_TEST_BACKENDS=numpy,cupy timeout "${TEST_TIMEOUT:-300}" "$PY" -m pytest -q \
  -n "${TEST_WORKERS:-8}" -m "" -p no:cacheprovider -ra tests 2>&1 | tee "$OUT_DIR/tests.log"
tests_rc=${PIPESTATUS[0]}

# -- 2. the GPU benchmark -----------------------------------------------------------------
timeout "${BENCH_TIMEOUT:-300}" "$PY" benchmarks/bench_gpu.py --out "$OUT_DIR" ${BENCH_ARGS:-} \
  2>&1 | tee "$OUT_DIR/bench.log"
bench_rc=${PIPESTATUS[0]}

printf 'tests %s\nbench %s\n' "$tests_rc" "$bench_rc" | tee "$OUT_DIR/summary.txt"
[ "$tests_rc" -eq 0 ] && [ "$bench_rc" -eq 0 ]
