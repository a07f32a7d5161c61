"""The per-process half of the distributed benchmarks; `scaling.py` launches it and prints
the table.

    mpiexec -n 2 python benchmarks/bench_distributed.py --json out.json [--quick]

Every rank runs BLAS on one thread (the environment is set before NumPy loads, and
threadpoolctl enforces it). Rank 0 writes one JSON object with:

- `step`: seconds per training step of the MLP 784-512-512-10 (float32, cross-entropy, SGD)
  under DistributedDataParallel, at a local batch of 1024/N (strong scaling: the global
  batch stays 1024) and of 1024 (weak scaling: 1024 per process), and `plain`, the step
  without DDP at local batch 1024/N (with one process: the baseline both speed-ups divide;
  with N: the compute alone, N processes at once, no messages).
- `allreduce`: for buffers of 1 to 100 MB (float32), seconds per `tg.distributed.all_reduce`
  on a tensor and per mpi4py `Allreduce(IN_PLACE)` on the NumPy array itself, timed in
  interleaved rounds, plus a `Sendrecv` of the same bytes (the point-to-point bandwidth the
  ring formula 2(N-1)/N * bytes / bandwidth uses).

Timings are medians over rounds; each round starts after a barrier and reports the slowest
rank's time (a collective is as slow as its last rank). Under pytest this file only holds a
smoke test that runs `scaling.py --quick` (skipped without mpiexec or mpi4py).
"""

import os
import sys

if __name__ == "__main__":  # one BLAS thread per process, before NumPy loads its pool
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
MB = 1024 * 1024
SIZES_MB = (1, 4, 16, 64, 100)
PRESETS = {"full": {"steps": 10, "rounds": 7, "sizes": SIZES_MB, "ar_rounds": 10},
           "quick": {"steps": 2, "rounds": 2, "sizes": (1,), "ar_rounds": 2}}


# ---- timing ---------------------------------------------------------------------------------
def slowest(comm, seconds):
    from mpi4py import MPI
    return comm.allreduce(seconds, op=MPI.MAX)


def timed(comm, fn, calls=1):
    """Seconds per call of `fn` on the slowest rank, the ranks started together."""
    comm.Barrier()
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return slowest(comm, (time.perf_counter() - t0) / calls)


# ---- the training step ----------------------------------------------------------------------
def mlp_step(local_batch, ddp, seed=0):
    import tensorgrad as tg
    import tensorgrad.nn.functional as F
    from tensorgrad import nn
    tg.manual_seed(seed)
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                          nn.Linear(512, 10))
    if ddp:
        model = tg.nn.parallel.DistributedDataParallel(model)
    opt = tg.optim.SGD(model.parameters(), lr=0.01)
    x = tg.randn(local_batch, 784)
    y = tg.randint(0, 10, (local_batch,))

    def step():
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return step


def bench_steps(comm, preset):
    """Each case's seconds per step; the cases' rounds interleaved, so drift hits all alike."""
    world = comm.Get_size()
    # "plain" with one process is the baseline; with several, the same step without DDP on
    # every rank at once: what the machine gives N concurrent processes with no messages.
    cases = {"strong": (1024 // world, True), "weak": (1024, True),
             "plain": (1024 // world, False)}
    steps = {name: mlp_step(batch, ddp) for name, (batch, ddp) in cases.items()}
    times = {name: [] for name in cases}
    for step in steps.values():
        step()  # warm-up
    for _ in range(preset["rounds"]):
        for name, step in steps.items():
            times[name].append(timed(comm, step, preset["steps"]))
    return {name: {"local_batch": cases[name][0], "s": statistics.median(t), "min": min(t),
                   "max": max(t)} for name, t in times.items()}


# ---- allreduce bandwidth --------------------------------------------------------------------
def allreduce_impls(comm, nbytes):
    """The three transfers of `nbytes` timed side by side, each a zero-argument call."""
    import numpy as np
    from mpi4py import MPI

    import tensorgrad as tg
    import tensorgrad.distributed as dist
    n = nbytes // 4
    t = tg.zeros(n)  # zeros: repeated in-place sums stay finite
    a = np.zeros(n, dtype=np.float32)
    recv = np.empty_like(a)
    peer = (comm.Get_rank() + 1) % comm.Get_size()
    return {"tensorgrad": lambda: dist.all_reduce(t),
            "mpi4py": lambda: comm.Allreduce(MPI.IN_PLACE, a, op=MPI.SUM),
            "sendrecv": lambda: comm.Sendrecv(a, peer, recvbuf=recv, source=peer)}


def bench_allreduce(comm, preset):
    out = []
    for mb in preset["sizes"]:
        impls = allreduce_impls(comm, mb * MB)
        times = {k: [] for k in impls}
        for fn in impls.values():
            fn()  # warm-up (and first touch of the buffers)
        calls = max(2, 64 // mb)  # several calls per timing: less barrier skew
        for r in range(preset["ar_rounds"]):
            order = list(impls.items())
            for k, fn in order if r % 2 else order[::-1]:  # interleaved, alternating order
                times[k].append(timed(comm, fn, calls))
        row = {"mb": mb, "bytes": mb * MB}
        row.update({k: statistics.median(v) for k, v in times.items()})
        out.append(row)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", required=True, help="where rank 0 writes the results")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for smoke tests")
    args = parser.parse_args(argv)
    import threadpoolctl

    import tensorgrad.distributed as dist
    dist.init_process_group(backend="mpi")
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    preset = PRESETS["quick" if args.quick else "full"]
    with threadpoolctl.threadpool_limits(limits=1):
        result = {"world": comm.Get_size(), "step": bench_steps(comm, preset),
                  "allreduce": bench_allreduce(comm, preset)}
    if comm.Get_rank() == 0:
        Path(args.json).write_text(json.dumps(result, indent=1))
    dist.destroy_process_group()


# ---- pytest: keep the benchmark runnable --------------------------------------------------
def test_scaling_report_quick(tmp_path):
    import pytest
    if shutil.which("mpiexec") is None:
        pytest.skip("mpiexec is not on PATH: pip install -e .[distributed]")
    pytest.importorskip("mpi4py", reason="mpi4py is not installed: pip install -e .[distributed]")
    cmd = [sys.executable, str(HERE / "scaling.py"), "--quick", "--json", str(tmp_path / "r.json")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "speed-up" in proc.stdout and "allreduce" in proc.stdout


if __name__ == "__main__":
    main()
