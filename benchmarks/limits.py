"""The machine's physical limits, measured in the same run as the benchmarks.

- `peak_matmul(device)`: the best float32 matmul rate, GFLOP/s, over several n x n products
  (2 n^3 FLOPs each) with the BLAS of the device's `xp` (OpenBLAS/MKL on the thread budget of
  the run on the CPU, cuBLAS through CuPy on CUDA) into a preallocated output.
- `copy_bandwidth(device)`: the best rate of a large `xp.copyto`, GB/s counting the bytes read
  plus the bytes written (STREAM's convention for copy; write-allocate traffic not counted).
  On the CPU the copy is also split over the run's threads (NumPy releases the GIL in it), and
  the better of one and `threads` copiers is kept: that is what the run's threads can move.

A case's lower bound is then `max(flops / peak, min_bytes / bandwidth)` (`bound()`): no
implementation on this machine can beat it, so "x of bound" is the distance to the physical
limit, not only to other software.
"""

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

SIZES = {
    "full": {"matmul_n": 2048, "matmul_reps": 5, "copy_mib": 256, "copy_reps": 5},
    "quick": {"matmul_n": 512, "matmul_reps": 3, "copy_mib": 32, "copy_reps": 3},
}
GPU_SIZES = {
    "full": {"matmul_n": 8192, "matmul_reps": 10, "copy_mib": 1024, "copy_reps": 10},
    "quick": {"matmul_n": 2048, "matmul_reps": 5, "copy_mib": 128, "copy_reps": 5},
}


def _best(fn, reps, sync):
    fn()  # warm-up: page faults, BLAS buffers, kernel loading
    sync()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t0)
    return best


def peak_matmul(dev, quick=False):
    s = (SIZES if dev.host else GPU_SIZES)["quick" if quick else "full"]
    n, xp = s["matmul_n"], dev.xp
    rng = np.random.default_rng(0)
    a = dev.array(rng.standard_normal((n, n), dtype=np.float32))
    b = dev.array(rng.standard_normal((n, n), dtype=np.float32))
    c = xp.empty((n, n), dtype=xp.float32)
    t = _best(lambda: xp.matmul(a, b, out=c), s["matmul_reps"], dev.synchronize)
    return {"gflops": 2 * n ** 3 / t / 1e9, "n": n, "reps": s["matmul_reps"],
            "how": f"best of {s['matmul_reps']} float32 {n}x{n} matmuls ({dev.hand_label})"}


def copy_bandwidth(dev, threads=1, quick=False):
    s = (SIZES if dev.host else GPU_SIZES)["quick" if quick else "full"]
    xp = dev.xp
    count = s["copy_mib"] * 2 ** 20 // 4
    src = xp.ones(count, dtype=xp.float32)
    dst = xp.empty_like(src)
    nbytes = 2 * src.nbytes  # read + written
    best = _best(lambda: xp.copyto(dst, src), s["copy_reps"], dev.synchronize)
    how = f"best of {s['copy_reps']} copies of {s['copy_mib']} MiB ({dev.hand_label} copyto"
    if dev.host and threads > 1:
        bounds = np.linspace(0, count, threads + 1).astype(int)
        pieces = [(dst[lo:hi], src[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:])]
        with ThreadPoolExecutor(threads) as pool:
            def split_copy():
                list(pool.map(lambda p: np.copyto(*p), pieces))
            t_split = _best(split_copy, s["copy_reps"], dev.synchronize)
        if t_split < best:
            best, how = t_split, how + f", split over {threads} threads"
    return {"gbs": nbytes / best / 1e9, "mib": s["copy_mib"], "reps": s["copy_reps"],
            "how": how + "; bytes read + written)"}


def measure(dev, threads=1, quick=False):
    """Both limits of one device."""
    return {"matmul": peak_matmul(dev, quick), "copy": copy_bandwidth(dev, threads, quick)}


def bound(case, lim):
    """The case's lower bound in seconds and what sets it, or None (no estimate)."""
    flops, nbytes = getattr(case, "flops", 0) or 0, getattr(case, "min_bytes", 0) or 0
    if getattr(case, "metric", "time") != "time" or not (flops or nbytes) or not lim:
        return None
    t_flops = flops / (lim["matmul"]["gflops"] * 1e9) if flops else 0.0
    t_bytes = nbytes / (lim["copy"]["gbs"] * 1e9) if nbytes else 0.0
    return {"s": max(t_flops, t_bytes), "by": "FLOPs" if t_flops >= t_bytes else "bytes",
            "flops": flops, "min_bytes": nbytes, "flops_s": t_flops, "bytes_s": t_bytes}
