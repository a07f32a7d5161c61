"""Print tensorgrad's core benchmarks and training steps next to hand-written NumPy and
PyTorch eager.

    python benchmarks/report.py [--quick] [--rounds N] [--json PATH] [--threads N]
                                [--cases KEY,...] [--no-torch]

Each case runs its implementations in interleaved rounds (tensorgrad, numpy, torch,
tensorgrad, numpy, torch, ...); a round times a fixed number of calls with
`time.perf_counter` after a warm-up. A ratio is the median over rounds of the per-round
ratio, with its spread (min-max). Peak memory is tracemalloc's peak over one call, which sees
NumPy's allocations and tensorgrad's Python objects; PyTorch's CPU allocator is invisible to
it, so that cell reads n/a. Before timing, every implementation's loss and gradients are
checked against the NumPy ones, so the table compares the same computation. The training
steps (`training_cases.py`: MLP, CNN, LSTM with cross-entropy and an SGD update) follow the
core cases; their first step, from the same weights, is the one cross-checked.

BLAS and OpenMP run on `--threads` threads (default 2, the CI machine's size): the
environment variables are set before NumPy is imported, and threadpoolctl and
`torch.set_num_threads` enforce it at run time too.
"""

import os
import sys


def _threads_from_argv(argv):
    for i, arg in enumerate(argv):
        if arg == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--threads="):
            return arg.split("=", 1)[1]
    return "2"


if __name__ == "__main__":  # before NumPy and PyTorch load their thread pools
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = _threads_from_argv(sys.argv[1:])
    # PyTorch's OpenMP workers otherwise spin after each parallel region and, on a small
    # machine, steal the CPUs OpenBLAS needs in the next implementation's turn (and the
    # other way round): measured 10-100x slowdowns on 2 CPUs. Sleeping waiters cost a
    # wake-up (microseconds) per parallel region, nothing at these sizes.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # cases/baselines: no package

import cases as _cases  # noqa: E402
import numpy as np  # noqa: E402
import optim_cases as _optim  # noqa: E402
import threadpoolctl  # noqa: E402
import training_cases as _training  # noqa: E402

import tensorgrad as tg  # noqa: E402

LABELS = {"tensorgrad": "tensorgrad", "numpy": "NumPy by hand", "torch": "PyTorch eager"}
# rounds; seconds per round (sets the calls per round); warm-up calls; idle seconds between
# two implementations' turns. The idle gap lets the previous library's worker threads stop
# spinning: OpenBLAS's spin for ~2**28 cycles after a call and libgomp's (PyTorch) spin too,
# and on a 2-CPU machine a spinning pool of one library halves the next one's speed.
PRESETS = {
    "full": {"rounds": 11, "round_s": 0.2, "warmup": 2, "gap_s": 0.15},
    "quick": {"rounds": 3, "round_s": 0.01, "warmup": 1, "gap_s": 0.05},
}


# ---- measurement -------------------------------------------------------------------------
def _calls_per_round(step, round_s):
    t0 = time.perf_counter()
    step()
    dt = max(time.perf_counter() - t0, 1e-9)
    return max(1, int(round_s / dt))


def time_rounds(impls, rounds, round_s, warmup, gap_s=0.0):
    """Per-call seconds of each impl, one value per round, the rounds interleaved."""
    for impl in impls.values():
        for _ in range(warmup):
            impl.step()
    number = _calls_per_round(impls["tensorgrad"].step, round_s)
    per_round = {name: [] for name in impls}
    for _ in range(rounds):
        for name, impl in impls.items():
            step = impl.step
            time.sleep(gap_s)
            t0 = time.perf_counter()
            for _ in range(number):
                step()
            per_round[name].append((time.perf_counter() - t0) / number)
    return per_round, number


def memory_rounds(impls, rounds):
    """Peak traced bytes of one call of each impl that tracemalloc can see, interleaved."""
    seen = {name: impl for name, impl in impls.items() if name != "torch"}
    per_round = {name: [] for name in seen}
    for _ in range(rounds):
        for name, impl in seen.items():
            per_round[name].append(float(impl.peak_memory()))
    return per_round


def summarize(values):
    """Median, quartiles and range of a list of numbers."""
    v = sorted(values)
    q = statistics.quantiles(v, n=4, method="inclusive") if len(v) > 1 else [v[0]] * 3
    return {"median": statistics.median(v), "min": v[0], "max": v[-1],
            "q1": q[0], "q3": q[2], "n": len(v)}


def measure_case(case, impl_names, preset):
    """Build, cross-check and measure one case; returns its JSON-ready row."""
    impls = case.build(impl_names)
    _cases.check_agree(case, {name: impl.step() for name, impl in impls.items()})
    row = {"key": case.key, "title": case.title, "metric": case.metric, "note": case.note,
           "target": None, "met": None}
    if case.metric == "memory":
        per_round = memory_rounds(impls, min(preset["rounds"], 3))
        row["unit"], row["calls_per_round"] = "bytes", 1
    else:
        per_round, number = time_rounds(impls, preset["rounds"], preset["round_s"],
                                        preset["warmup"], preset["gap_s"])
        row["unit"], row["calls_per_round"] = "s", number
    row["per_round"] = per_round
    row["values"] = {name: statistics.median(v) for name, v in per_round.items()}
    tg_rounds = per_round["tensorgrad"]
    row["ratios"] = {
        base: summarize([t / b for t, b in zip(tg_rounds, per_round[base], strict=True)])
        for base in ("numpy", "torch") if base in per_round}
    if case.target is not None:
        base, limit = case.target
        row["target"] = {"vs": base, "max_ratio": limit}
        if base in row["ratios"]:
            row["met"] = row["ratios"][base]["median"] <= limit
    return row


def all_cases(quick=False):
    """The core cases, the training steps of `training_cases.py`, then the optimizer steps
    of `optim_cases.py`."""
    return (_cases.get_cases(quick=quick) + _training.get_cases(quick=quick)
            + _optim.get_cases(quick=quick))


def run(quick=False, rounds=None, threads=2, use_torch=True, only=None, log=None):
    """Measure every case (or those whose key is in `only`); returns the report dict."""
    preset = dict(PRESETS["quick" if quick else "full"])
    if rounds is not None:
        preset["rounds"] = rounds
    torch = _cases.TORCH if use_torch else None
    impl_names = ("tensorgrad", "numpy") + (("torch",) if torch is not None else ())
    old_torch_threads = torch.get_num_threads() if torch is not None else None
    rows = []
    try:
        if torch is not None:
            torch.set_num_threads(threads)
        with threadpoolctl.threadpool_limits(limits=threads):
            info = machine_info(threads, torch)
            for case in all_cases(quick):
                if only and case.key not in only:
                    continue
                if log:
                    log(f"measuring {case.key} ...")
                try:
                    rows.append(measure_case(case, impl_names, preset))
                except Exception as exc:  # one broken case must not hide the others
                    rows.append({"key": case.key, "title": case.title, "metric": case.metric,
                                 "error": f"{type(exc).__name__}: {exc}"})
    finally:
        if torch is not None:
            torch.set_num_threads(old_torch_threads)
    info["loadavg_end"] = _loadavg()
    config = {"quick": quick, "torch": torch is not None, **preset}
    return {"machine": info, "config": config, "rows": rows}


# ---- machine info ------------------------------------------------------------------------
def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(threads, torch):
    blas = [{k: lib.get(k) for k in ("user_api", "internal_api", "version", "num_threads",
                                       "threading_layer", "architecture")}
            for lib in threadpoolctl.threadpool_info()]
    env = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                      "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "OPENBLAS_CORETYPE",
                                      "OPENBLAS_L2_SIZE") if k in os.environ}
    return {"cpu": _cpu_model(), "logical_cpus": os.cpu_count(), "threads": threads,
            "python": platform.python_version(), "numpy": np.__version__,
            "tensorgrad": tg.__version__,
            "torch": torch.__version__ if torch is not None else None,
            "torch_threads": torch.get_num_threads() if torch is not None else None,
            "blas": blas, "env": env, "loadavg": _loadavg()}


def _loadavg():
    """The 1-minute load average: on a shared machine, a reader's first clue to noise."""
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


# ---- formatting --------------------------------------------------------------------------
def fmt_value(x, unit):
    if x is None:
        return "n/a"
    if unit == "bytes":
        return f"{x / 2**20:.1f} MiB"
    for scale, suffix in ((1, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if x >= scale:
            return f"{x / scale:.3g} {suffix}"
    return f"{x / 1e-9:.3g} ns"


def fmt_ratio(r):
    if r is None:
        return "n/a"
    return f"{r['median']:.2f} ({r['min']:.2f}–{r['max']:.2f})"


def fmt_target(row):
    t = row.get("target")
    if not t:
        return "—", "—"
    label = "NumPy" if t["vs"] == "numpy" else "PyTorch"
    met = {True: "yes", False: "**no**", None: "n/a"}[row["met"]]
    return f"tg/{label} ≤ {t['max_ratio']}", met


def format_table(report):
    torch_missing = not report["config"]["torch"]
    head = ["case", *LABELS.values(), "tg / NumPy", "tg / PyTorch", "target", "met"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in report["rows"]:
        if "error" in row:
            lines.append(f"| {row['title']} | error: {row['error']} |" + " |" * (len(head) - 2))
            continue
        cells = [row["title"]]
        for name in LABELS:
            v = row["values"].get(name)
            if name == "torch" and torch_missing:
                cells.append("n/a (PyTorch not installed)")
            elif v is None and row["metric"] == "memory" and name == "torch":
                cells.append("n/a (not traced)")
            else:
                cells.append(fmt_value(v, row["unit"]))
        cells += [fmt_ratio(row["ratios"].get("numpy")), fmt_ratio(row["ratios"].get("torch"))]
        cells += fmt_target(row)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_machine(info):
    blas = "; ".join(f"{b['internal_api']} {b['version'] or ''} ({b['user_api']}, "
                     f"{b['num_threads']} threads, {b['threading_layer'] or '-'}, "
                     f"{b['architecture'] or '-'})" for b in info["blas"])
    torch = (f"{info['torch']} ({info['torch_threads']} threads)" if info["torch"]
             else "n/a (PyTorch not installed)")
    env = ", ".join(f"{k}={v}" for k, v in info["env"].items()) or "none"
    return "\n".join([
        f"CPU: {info['cpu']} ({info['logical_cpus']} logical CPUs), threads used: "
        f"{info['threads']}",
        f"Python {info['python']}, NumPy {info['numpy']}, tensorgrad {info['tensorgrad']}, "
        f"PyTorch {torch}",
        f"BLAS/OpenMP (threadpoolctl): {blas}",
        f"environment: {env}; load average (1 min) at start {info['loadavg']}, "
        f"at end {info.get('loadavg_end')}",
    ])


def format_report(report):
    c = report["config"]
    how = (f"{c['rounds']} interleaved rounds, about {c['round_s']} s each; "
           "ratio = median of per-round ratios (min–max)")
    return "\n\n".join([format_machine(report["machine"]), how, format_table(report)])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes, few rounds (< 1 min)")
    p.add_argument("--rounds", type=int, help="interleaved rounds (default 11, quick 3)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--threads", type=int, default=2, help="BLAS/OpenMP/torch threads")
    p.add_argument("--cases", help="comma-separated case keys to run (default: all)")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    args = p.parse_args(argv)
    only = set(args.cases.split(",")) if args.cases else None
    report = run(quick=args.quick, rounds=args.rounds, threads=args.threads,
                 use_torch=not args.no_torch, only=only,
                 log=lambda msg: print(msg, file=sys.stderr, flush=True))
    print(format_report(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2, default=str)
    return 1 if any("error" in row for row in report["rows"]) else 0


if __name__ == "__main__":
    sys.exit(main())
