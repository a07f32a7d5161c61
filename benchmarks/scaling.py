"""Strong and weak scaling of the MLP training step, and allreduce bandwidth, on 1 and 2
MPI processes (CPU, one BLAS thread each).

    python benchmarks/scaling.py [--procs 1,2] [--quick] [--json PATH]

Launches `mpiexec -n N python benchmarks/bench_distributed.py` for each N and prints:

- strong scaling, global batch 1024: speed-up T1/TN and parallel efficiency T1/(N TN), T1
  the plain single-process step (no DDP wrapper), TN the DDP step at local batch 1024/N;
- weak scaling, 1024 per process: efficiency T1/TN and throughput speed-up N T1/TN;
- allreduce of 1-100 MB: `tg.distributed.all_reduce` against mpi4py's `Allreduce` on the same
  bytes in NumPy (target: >= 0.9x its speed) and the bus bandwidth 2(N-1)/N * bytes / t;
- the ring model against mpi4py's `Allreduce` (the check: within 30 %). A ring allreduce
  over N processes takes 2(N-1) steps, each sending and receiving one chunk of bytes/N (N-1
  reduce-scatter steps, each followed by a reduction of a chunk, then N-1 allgather steps):

      t = 2(N-1)/N * bytes / B_link + (N-1)/N * bytes * gamma + 2(N-1) * alpha

  with B_link a Sendrecv of one chunk (its latency taken out), gamma the seconds per byte of
  the MPI library's own SUM (`Op.Reduce_local`, what its allreduce runs) of a received chunk
  into the rank's copy, timed inside a ring step, and alpha a 4-byte Sendrecv, all measured
  in the same run. The rank's copy was read by the neighbour since this rank last wrote it,
  so each store waits to win its cache line back from the other core: at 1 MB, where the
  chunks fit in a core's L2, that is 5x the same SUM on cache-warm chunks, and as slow as
  the reduction in Open MPI's allreduce redone step by step; at 4-100 MB, where both stream
  from L3, within 20 % of it. alpha cancels out of the total (B_link has it taken out): the
  model adds up 2(N-1) Sendrecvs of a chunk and N-1 reductions. At 2
  ranks Open MPI 5's blocking Allreduce runs Rabenseifner's algorithm for 1-100 MB (seen in
  gdb), not the ring, but its two steps send and reduce the same chunks. The table also
  prints the minor page faults per `Allreduce` and their cost (faults times the cost of
  one, from a Sendrecv into fresh pages against one into used pages): Open MPI mallocs a
  temporary buffer every call, which glibc maps afresh above its 32 MB mmap threshold. That
  is the implementation, not the algorithm, and where the measurement leaves the model at
  64 and 100 MB (a launch with MALLOC_MMAP_MAX_=0 has no faults, and matches it).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from math import nan
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
    print(f"  {'N':>2}{'MB':>5}{'tensorgrad':>12}{'mpi4py':>9}{'ratio':>7}{'busbw GB/s':>12}")
    for n in sorted(runs):
        for row in runs[n]["allreduce"]:
            tg_s, mpi_s, size = row["tensorgrad"], row["mpi4py"], row["bytes"]
            print(f"  {n:>2}{row['mb']:>5}{tg_s * 1e3:>12.2f}{mpi_s * 1e3:>9.2f}"
                  f"{mpi_s / tg_s:>7.2f}{ring_factor(n) * size / tg_s / 1e9:>12.2f}")


def ring_model(n, row, alpha):
    """The ring allreduce's seconds for `row`'s bytes on `n` processes, from the parameters
    measured beside it: {transfer, reduction, latency, total, link (B/s), faults (s)}."""
    chunk = row["bytes"] / n
    steps = n - 1
    link = chunk / max(row["link"] - alpha, 1e-12)  # B_link, bytes/s each way
    # Seconds per byte of the reduced chunk, as the library reduces inside a ring step (runs
    # saved before reduce_ring was measured have the warm SUM, or NumPy's add, only).
    gamma = row.get("reduce_ring", row.get("reduce_mpi", row["reduce"])) / chunk
    terms = {"transfer": 2 * steps * chunk / link, "reduction": steps * chunk * gamma,
             "latency": 2 * steps * alpha}
    total = sum(terms.values())
    # Not the algorithm's cost: what Open MPI's temporary buffer costs when malloc maps it
    # afresh every call. Cost per fault from the fresh-pages Sendrecv; clipped at 0, which
    # only noise can undercut.
    fresh_faults = row["faults"].get("fresh", 0)  # no "fresh" without POSIX mmap
    per_fault = max(row["fresh"] - row["link"], 0.0) / fresh_faults if fresh_faults else 0.0
    return dict(terms, total=total, link=link, faults=row["faults"]["mpi4py"] * per_fault)


def within(ratio, tol=0.3):
    return "yes" if abs(ratio - 1) <= tol else "NO"


def print_model(runs):
    many = [n for n in sorted(runs) if n > 1]
    if not many:
        return
    print("ring model: t = 2(N-1)/N * bytes / B_link + (N-1)/N * bytes * gamma + 2(N-1) * alpha")
    print("  B_link, gamma, alpha measured in this run. On GPUs B_link is NCCL's bus bandwidth:")
    print("  nccl-tests print busbw = 2(N-1)/N * bytes / t, the link's speed whatever N")
    print(f"  {'N':>2}{'MB':>5}{'measured':>10}{'model':>8}{'ratio':>7}{'<=30%':>6}"
          f"{'link GB/s':>10}{'send':>7}{'add':>6}{'warm':>6}{'np add':>7}{'alpha':>6}"
          f"{'faults':>8}{'fault ms':>9}{'ratio+f':>8}{'<=30%':>6}")
    for n in many:
        alpha = runs[n]["alpha"]
        for row in runs[n]["allreduce"]:
            m = ring_model(n, row, alpha)
            meas = row["mpi4py"]
            r, rf = meas / m["total"], meas / (m["total"] + m["faults"])
            print(f"  {n:>2}{row['mb']:>5}{meas * 1e3:>10.2f}{m['total'] * 1e3:>8.2f}{r:>7.2f}"
                  f"{within(r):>6}{m['link'] / 1e9:>10.2f}{m['transfer'] * 1e3:>7.2f}"
                  f"{m['reduction'] * 1e3:>6.2f}{(n - 1) * row.get('reduce_mpi', nan) * 1e3:>6.2f}"
                  f"{(n - 1) * row['reduce'] * 1e3:>7.2f}"
                  f"{m['latency'] * 1e3:>6.3f}"
                  f"{row['faults']['mpi4py']:>8.0f}{m['faults'] * 1e3:>9.2f}{rf:>8.2f}"
                  f"{within(rf):>6}")
    print("  measured: mpi4py Allreduce (ms); send, add, alpha: the model's terms (ms), add the")
    print("  MPI library's own reduction inside a ring step; warm: the same on cache-warm chunks,")
    print("  np add: NumPy's add of them, for comparison; faults: minor page faults per call;")
    print("  ratio+f: measured / (model + fault ms)")


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
    print_model(runs)
    if args.json:
        Path(args.json).write_text(json.dumps({str(n): r for n, r in runs.items()}, indent=1))


if __name__ == "__main__":
    main()
