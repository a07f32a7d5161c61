"""Strong and weak scaling of the MLP training step, and allreduce bandwidth, on 1 and 2
MPI processes (CPU, one BLAS thread each).

    python benchmarks/scaling.py [--procs 1,2] [--quick] [--json PATH]

Launches `mpiexec -n N python benchmarks/bench_distributed.py` for each N and prints:

- strong scaling, global batch 1024: speed-up T1/TN and parallel efficiency T1/(N TN), T1
  the plain single-process step (no DDP wrapper), TN the DDP step at local batch 1024/N;
- weak scaling, 1024 per process: efficiency T1/TN and throughput speed-up N T1/TN;
- allreduce of 1-100 MB: `tg.distributed.all_reduce` against mpi4py's `Allreduce` on the same
  bytes in NumPy (target: >= 0.9x its speed), the bus bandwidth 2(N-1)/N * bytes / t, and the
  ring model's time 2(N-1)/N * bytes / B with B the measured point-to-point (Sendrecv)
  bandwidth.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def launch(n, quick):
    """Run bench_distributed.py on `n` processes; return rank 0's results."""
    mpiexec = shutil.which("mpiexec")
    if mpiexec is None:
        sys.exit("scaling.py: mpiexec is not on PATH; pip install -e .[distributed]")
    env = dict(os.environ)
    # Open MPI's non-blocking allreduce (libnbc, what DDP's buckets use) picks a binomial tree
    # by default: 2-9x slower than the blocking Allreduce for 1-10 MB on 2 ranks, measured;
    # its ring matches it. Must be in the environment before MPI starts.
    env.setdefault("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "ring")
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # Open MPI refuses root unless told
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    bind = "core" if n <= (os.cpu_count() or 1) else "none"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        cmd = [mpiexec, "--oversubscribe", "--bind-to", bind, "-n", str(n), sys.executable,
               str(HERE / "bench_distributed.py"), "--json", str(out)]
        subprocess.run(cmd + (["--quick"] if quick else []), check=True, env=env)
        return json.loads(out.read_text())


def ring_factor(n):
    return 2 * (n - 1) / n


def print_scaling(runs):
    base = runs[1]["step"]["plain"]["s"]
    print("MLP 784-512-512-10 training step (float32, SGD), one BLAS thread per process")
    print(f"  1 process, no DDP, batch 1024: {base * 1e3:8.1f} ms   (DDP wrapper on 1 process: "
          f"{runs[1]['step']['strong']['s'] / base:.3f}x)")
    print(f"  {'N':>2} {'mode':<7}{'local batch':>12}{'ms/step':>10}{'speed-up':>10}"
          f"{'efficiency':>12}{'no-DDP ms':>11}")
    for n in sorted(runs):
        plain = runs[n]["step"]["plain"]["s"]  # same local batch (strong), no messages
        for mode in ("strong", "weak"):
            r = runs[n]["step"][mode]
            eff = base / r["s"] if mode == "weak" else base / (n * r["s"])
            alone = f"{plain * 1e3:>11.1f}" if mode == "strong" else ""
            print(f"  {n:>2} {mode:<7}{r['local_batch']:>12}{r['s'] * 1e3:>10.1f}"
                  f"{eff * n:>9.2f}x{eff * 100:>11.0f}%{alone}")


def print_allreduce(runs):
    print("allreduce, float32, in place (median ms; ratio = mpi4py time / tensorgrad time)")
    print(f"  {'N':>2}{'MB':>5}{'tensorgrad':>12}{'mpi4py':>9}{'ratio':>7}{'busbw GB/s':>12}"
          f"{'p2p GB/s':>10}{'ring model':>12}")
    for n in sorted(runs):
        for row in runs[n]["allreduce"]:
            tg_s, mpi_s, size = row["tensorgrad"], row["mpi4py"], row["bytes"]
            moved = ring_factor(n) * size
            p2p = size / row["sendrecv"] if n > 1 else float("nan")
            model = moved / p2p if n > 1 else 0.0
            print(f"  {n:>2}{row['mb']:>5}{tg_s * 1e3:>12.2f}{mpi_s * 1e3:>9.2f}"
                  f"{mpi_s / tg_s:>7.2f}{moved / tg_s / 1e9:>12.2f}{p2p / 1e9:>10.2f}"
                  f"{model * 1e3:>10.2f}ms")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--procs", default="1,2", help="process counts, comma-separated")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for smoke tests")
    parser.add_argument("--json", help="also write every measurement here")
    args = parser.parse_args(argv)
    procs = sorted({int(p) for p in args.procs.split(",")} | {1})
    runs = {n: launch(n, args.quick) for n in procs}
    print_scaling(runs)
    print_allreduce(runs)
    if args.json:
        Path(args.json).write_text(json.dumps({str(n): r for n, r in runs.items()}, indent=1))


if __name__ == "__main__":
    main()
