#!/usr/bin/env bash
# What to run on a lent GPU machine (the workplace's device tool), one stage per call: each
# stage fits the 10-minute limit of one call, and everything it makes goes under $OUT.
#
#   bash benchmarks/gpu_session.sh tests        # the suite on cuda: TENSORGRAD_DEVICE=cuda
#   bash benchmarks/gpu_session.sh kernels      # fused-kernel parity + CUDA graphs + memory
#   bash benchmarks/gpu_session.sh distributed  # NCCL and GPU-staged MPI on one rank
#   bash benchmarks/gpu_session.sh bench        # report.py on cpu and cuda, quick sizes
#   bash benchmarks/gpu_session.sh bench-full   # the full tables (longer: run it alone)
#
# The machine has no network: tensorgrad installs without dependencies (its image holds
# numpy, safetensors, cupy-cuda13x, torch, pytest, hypothesis, pytest-benchmark). TF32 stays
# off for parity and timing alike: NVIDIA_TF32_OVERRIDE=0 turns it off in cuBLAS/cuDNN for
# every library in the process (tests/conftest.py and report.py set it too).
set -u
stage=${1:-tests}
OUT=${OUT:-/tmp/tg_gpu_out}
mkdir -p "$OUT"
export NVIDIA_TF32_OVERRIDE=0
python3 -m pip install -e . --no-deps --no-build-isolation -q >"$OUT/install.txt" 2>&1 \
    || { cat "$OUT/install.txt"; exit 1; }
{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
    python3 -c "import cupy, torch, numpy; print('cupy', cupy.__version__, 'cuda runtime',
cupy.cuda.runtime.runtimeGetVersion(), 'driver', cupy.cuda.runtime.driverGetVersion());
print('torch', torch.__version__, 'numpy', numpy.__version__)"
    python3 -c "import tensorgrad as tg; print('tg.cuda.is_available():', tg.cuda.is_available(),
tg.cuda.why_unavailable())"
} >"$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"

case "$stage" in
tests)
    # -x: the first failure is the one to read; the log keeps the whole run.
    TENSORGRAD_DEVICE=cuda timeout 540 python3 -m pytest tests -q -x -p no:cacheprovider \
        -W ignore --ignore=tests/distributed >"$OUT/tests_cuda.txt" 2>&1
    tail -25 "$OUT/tests_cuda.txt"
    ;;
kernels)
    timeout 540 python3 -m pytest tests/test_cupy_kernels.py tests/test_cuda_api.py \
        tests/test_cupy_memory.py tests/test_devices.py -q -p no:cacheprovider -W ignore \
        -rs >"$OUT/tests_kernels.txt" 2>&1
    tail -25 "$OUT/tests_kernels.txt"
    ;;
distributed)
    # One GPU: NCCL runs one rank (it refuses two ranks on one GPU), and asking for more
    # ranks than GPUs must say so. -rs: if the image has no mpiexec, the skip says it.
    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 timeout 540 python3 -m pytest \
        tests/distributed -q -p no:cacheprovider -W ignore -rs -k "nccl or gpu or cuda" \
        >"$OUT/tests_distributed.txt" 2>&1
    tail -25 "$OUT/tests_distributed.txt"
    ;;
bench)
    timeout 540 python3 benchmarks/report.py --device cpu,cuda --quick --out-dir "$OUT" \
        >"$OUT/report_quick.txt" 2>&1
    tail -40 "$OUT/report_quick.txt"
    ;;
bench-full)
    timeout 590 python3 benchmarks/report.py --device cpu,cuda --rounds 7 --out-dir "$OUT" \
        >"$OUT/report.txt" 2>&1
    tail -40 "$OUT/report.txt"
    ;;
*)
    echo "unknown stage '$stage': tests, kernels, distributed, bench or bench-full" >&2
    exit 2
    ;;
esac
