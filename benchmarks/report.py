"""Print tensorgrad's benchmarks next to hand-written NumPy/CuPy, PyTorch eager and the
machine's physical limits; save them as JSON and a bar chart.

    python benchmarks/report.py [--device cpu,cuda] [--quick] [--rounds N] [--threads N]
                                [--cases KEY,...] [--no-torch] [--out-dir DIR] [--no-save]
                                [--json PATH]
    python benchmarks/report.py --from-json PATH     # re-print a saved run (or pytest-benchmark's)

Each case runs, on each device, its implementations in interleaved rounds (tensorgrad,
by hand, torch, tensorgrad, by hand, torch, ...); a round times a fixed number of calls with
`time.perf_counter` after a warm-up (on a GPU, after synchronizing). A ratio is the median
over rounds of the per-round ratio, with its spread (min-max). "By hand" is the same
hand-written code in the device's array namespace: NumPy on the CPU, CuPy on CUDA. Peak
memory is the peak allocated during one call: tracemalloc on the CPU (NumPy's buffers and
Python objects; PyTorch's CPU allocator is invisible to it, so that cell reads n/a), CuPy's
memory pool and `torch.cuda.max_memory_allocated` on CUDA. Before timing, every
implementation's loss and gradients are checked against the hand-written ones, so the table
compares the same computation. The training steps (`training_cases.py`) and optimizer steps
(`optim_cases.py`) follow the core cases, then the single ops at two sizes (`op_cases.py`).

The same run first measures each device's limits (`limits.py`): peak float32 matmul GFLOP/s
and copy bandwidth. Each case's lower bound is its matmul/conv FLOPs over the peak or its
minimum bytes over the bandwidth, whichever is larger; the second table prints it and how
many times it each implementation takes.

This file measures, writes the JSON and runs the command line; `report_render.py` prints
the tables and draws the chart, and reads saved runs back for `--from-json`.

`--device` defaults to the CPU plus CUDA when usable; an unusable device is skipped with the
reason. Results go to `<out-dir>/<machine>.json` and `<machine>.png` (default out-dir
`benchmarks/results`; machine = CPU and GPU names + devices, suffixed `-quick` / `-partial`
for --quick or --cases runs, so those never replace a full run's files).

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
    # float32 means float32 on a GPU too: no TF32 tensor-core matmuls in any column or in the
    # peak (CuPy and PyTorch default to it off already; this covers every cuBLAS user).
    os.environ.setdefault("NVIDIA_TF32_OVERRIDE", "0")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # cases/baselines: no package

import cases as _cases  # noqa: E402
import devkit  # noqa: E402
import limits as _limits  # noqa: E402
import numpy as np  # noqa: E402
import op_cases as _ops  # noqa: E402
import optim_cases as _optim  # noqa: E402
import threadpoolctl  # noqa: E402
import training_cases as _training  # noqa: E402

# The tables, chart and `load` live in report_render.py; IMPL_NAMES and fmt_target are
# re-exported so that `report.IMPL_NAMES` / `report.fmt_target` keep working for callers.
from report_render import IMPL_NAMES, chart, fmt_target, format_report, load  # noqa: E402, F401

import tensorgrad as tg  # noqa: E402
from tensorgrad import backend_api  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT_DIR = os.path.join(HERE, "results")
# rounds; seconds per round (sets the calls per round); warm-up calls; idle seconds between
# two implementations' turns. The idle gap lets the previous library's worker threads stop
# spinning: OpenBLAS's spin for ~2**28 cycles after a call and libgomp's (PyTorch) spin too,
# and on a 2-CPU machine a spinning pool of one library halves the next one's speed.
PRESETS = {
    "full": {"rounds": 11, "round_s": 0.2, "warmup": 2, "gap_s": 0.15},
    "quick": {"rounds": 3, "round_s": 0.01, "warmup": 1, "gap_s": 0.05},
}


# ---- measurement -------------------------------------------------------------------------
def _calls_per_round(step, round_s, sync):
    sync()
    t0 = time.perf_counter()
    step()
    sync()
    dt = max(time.perf_counter() - t0, 1e-9)
    return max(1, int(round_s / dt))


def time_rounds(impls, rounds, round_s, warmup, gap_s=0.0, sync=lambda: None):
    """Per-call seconds of each impl, one value per round, the rounds interleaved. `sync`
    waits for queued device work; it closes every timed region (a no-op on the CPU)."""
    for impl in impls.values():
        for _ in range(warmup):
            impl.step()
    sync()
    number = _calls_per_round(impls["tensorgrad"].step, round_s, sync)
    per_round = {name: [] for name in impls}
    for _ in range(rounds):
        for name, impl in impls.items():
            step = impl.step
            time.sleep(gap_s)
            sync()
            t0 = time.perf_counter()
            for _ in range(number):
                step()
            sync()
            per_round[name].append((time.perf_counter() - t0) / number)
    return per_round, number


def memory_rounds(impls, rounds, dev):
    """Peak bytes of one call of each impl whose allocator the device can see, interleaved."""
    per_round = {}
    for _ in range(rounds):
        for name, impl in impls.items():
            peak = dev.peak_memory(impl, name)
            if peak is not None:
                per_round.setdefault(name, []).append(float(peak))
    return per_round


def summarize(values):
    """Median, quartiles and range of a list of numbers."""
    v = sorted(values)
    q = statistics.quantiles(v, n=4, method="inclusive") if len(v) > 1 else [v[0]] * 3
    return {"median": statistics.median(v), "min": v[0], "max": v[-1],
            "q1": q[0], "q3": q[2], "n": len(v)}


def measure_case(case, impl_names, preset, dev=None, lim=None):
    """Build, cross-check and measure one case on one device; returns its JSON-ready row
    (with its lower bound when the device's limits `lim` are given)."""
    dev = dev or devkit.cpu()
    impls = case.build(impl_names, dev)
    _cases.check_agree(case, {name: impl.step() for name, impl in impls.items()})
    row = {"key": case.key, "title": case.title, "device": dev.name, "metric": case.metric,
           "note": case.note, "target": None, "met": None,
           "missing": {name: dev.torch_missing for name in impl_names
                       if name == "torch" and name not in impls}}
    if case.metric == "memory":
        per_round = memory_rounds(impls, min(preset["rounds"], 3), dev)
        row["unit"], row["calls_per_round"] = "bytes", 1
    else:
        per_round, number = time_rounds(impls, preset["rounds"], preset["round_s"],
                                        preset["warmup"], preset["gap_s"], dev.synchronize)
        row["unit"], row["calls_per_round"] = "s", number
    row["per_round"] = per_round
    row["values"] = {name: statistics.median(v) for name, v in per_round.items()}
    if case.metric == "memory":
        row["peak_bytes"] = dict(row["values"])
    else:
        row["peak_bytes"] = {name: dev.peak_memory(impl, name) for name, impl in impls.items()}
    tg_rounds = per_round["tensorgrad"]
    row["ratios"] = {
        base: summarize([t / b for t, b in zip(tg_rounds, per_round[base], strict=True)])
        for base in ("numpy", "torch") if base in per_round}
    set_targets(row, case.target)
    row["flops"], row["min_bytes"] = case.flops, case.min_bytes
    add_bound(row, lim)
    return row


def set_targets(row, target):
    """Judge the row against a case's target: `(impl, max ratio)` or a list of them. Each
    goes to `row["targets"]` with its own `met`; `row["target"]` keeps the first, as runs
    saved before cases could carry several have it, and `row["met"]` is False if any target
    is missed, True if one is met and none missed, None if none could be measured."""
    pairs = [target] if isinstance(target, tuple) else list(target or [])
    row["targets"] = []
    for base, limit in pairs:
        ratio = row["ratios"].get(base)
        row["targets"].append({"vs": base, "max_ratio": limit,
                               "met": None if ratio is None else ratio["median"] <= limit})
    mets = [t["met"] for t in row["targets"]]
    row["target"] = ({k: row["targets"][0][k] for k in ("vs", "max_ratio")}
                     if pairs else None)
    row["met"] = False if False in mets else (True if True in mets else None)


def add_bound(row, lim):
    """Set the row's lower bound from the device's limits and each implementation's
    distance to it (`x_bound`, time / bound)."""
    row["bound"] = _limits.bound(_CaseCost(row), lim) if lim else None
    row["x_bound"] = ({name: v / row["bound"]["s"] for name, v in row["values"].items()}
                      if row["bound"] and row["bound"]["s"] > 0 else {})


def raise_to_observed(lim, rows):
    """Raise a limit that a case's fastest round beat: on a machine shared with other jobs
    the dedicated measurements can both land in a busy moment, while a case's best round
    shows the rate the hardware reached in this run. The raised limit says where it came
    from; the dedicated measurement stays in `limits["runs"]`."""
    for kind, cost, unit, scale in (("matmul", "flops", "gflops", 1e9),
                                    ("copy", "min_bytes", "gbs", 1e9)):
        best = None
        for row in rows:
            if "error" in row or row["metric"] != "time" or not row.get(cost):
                continue
            for impl, times in row["per_round"].items():
                rate = row[cost] / min(times) / scale
                if best is None or rate > best[0]:
                    best = (rate, row["key"], impl)
        if best and best[0] > lim[kind][unit]:
            label = {"tensorgrad": "tensorgrad", "numpy": "by hand", "torch": "PyTorch"}
            lim[kind] = {unit: best[0], "raised_by": best[1],
                         "how": f"the fastest round of {best[1]} ({label[best[2]]}); the "
                                f"dedicated measurement, {lim[kind]['how']}, reached only "
                                f"{lim[kind][unit]:.1f}: a busy machine"}


class _CaseCost:
    def __init__(self, row):
        self.metric, self.flops, self.min_bytes = row["metric"], row["flops"], row["min_bytes"]


def best_limits(a, b):
    """The better of two measurements of a device's limits (both kept under 'runs'): a busy
    machine only ever makes a peak look lower, so the best one seen is the limit."""
    best = {k: max(a[k], b[k], key=lambda m: m["gflops" if k == "matmul" else "gbs"])
            for k in ("matmul", "copy")}
    best["runs"] = [{k: a[k] for k in ("matmul", "copy")}, {k: b[k] for k in ("matmul", "copy")}]
    return best


def all_cases(quick=False):
    """The core cases, the training steps of `training_cases.py`, the optimizer steps of
    `optim_cases.py`, then the single-op cases of `op_cases.py`."""
    return (_cases.get_cases(quick=quick) + _training.get_cases(quick=quick)
            + _optim.get_cases(quick=quick) + _ops.get_cases(quick=quick))


def default_devices():
    """The CPU, plus CUDA when it is usable."""
    ok, _ = backend_api.availability("cuda")
    return ["cpu", "cuda"] if ok else ["cpu"]


def open_devices(names, use_torch=True):
    """`({name: BenchDevice}, {name: why skipped})` for the requested device names."""
    opened, skipped = {}, {}
    for name in names:
        try:
            opened[name] = devkit.open_device(name, use_torch)
        except Exception as exc:  # DeviceError (not usable), or a broken install
            skipped[name] = str(exc).splitlines()[0]
    if "cuda" not in names:
        ok, reason = backend_api.availability("cuda")
        if not ok:
            skipped.setdefault("cuda", f"not requested; {reason.splitlines()[0]}")
    return opened, skipped


def run(quick=False, rounds=None, threads=2, use_torch=True, only=None, log=None,
        devices=None):
    """Measure the machine's limits, then every case (or those whose key is in `only`) on
    every usable device of `devices` (default: `default_devices()`); returns the report."""
    preset = dict(PRESETS["quick" if quick else "full"])
    if rounds is not None:
        preset["rounds"] = rounds
    torch = devkit.TORCH if use_torch else None
    impl_names = ("tensorgrad", "numpy") + (("torch",) if torch is not None else ())
    requested = list(devices or default_devices())
    devs, skipped = open_devices(requested, use_torch)
    old_torch_threads = torch.get_num_threads() if torch is not None else None
    rows, dev_info = [], {}
    try:
        if torch is not None:
            torch.set_num_threads(threads)
        with threadpoolctl.threadpool_limits(limits=threads):
            info = machine_info(threads, torch)
            for name, dev in devs.items():
                if log:
                    log(f"measuring the limits of {name} ...")
                dev_info[name] = {"hardware": dev.describe(), **dev.versions(),
                                  "hand": dev.hand_label, "torch_device": dev.torch_device,
                                  "torch_missing": dev.torch_missing,
                                  "limits": _limits.measure(dev, threads, quick)}
            for case in all_cases(quick):
                if only and case.key not in only:
                    continue
                for name, dev in devs.items():
                    if log:
                        log(f"measuring {case.key} on {name} ...")
                    try:
                        rows.append(measure_case(case, impl_names, preset, dev,
                                                 dev_info[name]["limits"]))
                    except Exception as exc:  # one broken case must not hide the others
                        rows.append({"key": case.key, "title": case.title, "device": name,
                                     "metric": case.metric,
                                     "error": f"{type(exc).__name__}: {exc}"})
            for name, dev in devs.items():  # again at the end: the best of both is the limit
                if log:
                    log(f"measuring the limits of {name} again ...")
                dev_info[name]["limits"] = best_limits(dev_info[name]["limits"],
                                                       _limits.measure(dev, threads, quick))
            for name in devs:
                raise_to_observed(dev_info[name]["limits"],
                                  [r for r in rows if r.get("device") == name])
            for row in rows:
                if "error" not in row:
                    add_bound(row, dev_info[row["device"]]["limits"])
    finally:
        if torch is not None:
            torch.set_num_threads(old_torch_threads)
    _add_speedups(rows)
    info["loadavg_end"] = _loadavg()
    info["gpus"] = sorted({d["hardware"] for n, d in dev_info.items() if n != "cpu"})
    config = {"quick": quick, "torch": torch is not None, "devices": list(devs),
              "requested_devices": requested, "skipped_devices": skipped,
              "cases": sorted(only) if only else None, **preset}
    report = {"machine": info, "devices": dev_info, "config": config, "rows": rows}
    report["machine"]["name"] = machine_name(report)
    return report


def _add_speedups(rows):
    """Each non-CPU row's speed-up over the same case on the CPU, per implementation."""
    cpu_rows = {r["key"]: r for r in rows if r.get("device") == "cpu" and "error" not in r}
    for row in rows:
        base = cpu_rows.get(row["key"])
        if row.get("device") == "cpu" or "error" in row or base is None \
                or row["metric"] != "time":
            row["speedup"] = None
            continue
        row["speedup"] = {name: base["values"][name] / v for name, v in row["values"].items()
                          if name in base["values"] and v > 0}


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
            "blas": blas, "env": env, "loadavg": _loadavg(),
            "date": time.strftime("%Y-%m-%d %H:%M %Z")}


def _loadavg():
    """The 1-minute load average: on a shared machine, a reader's first clue to noise."""
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def slug(text):
    """A file-name-safe lower-case slug: 'Intel(R) Xeon(R) Gold 6338' -> 'intel-xeon-gold-6338'."""
    text = re.sub(r"\((r|tm|c)\)|\bcpu\b|\bprocessor\b|@.*$", " ", text, flags=re.I)
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def machine_name(report):
    """`<cpu>[_<gpu>...]_<devices>[-quick|-partial]`: the file name of this run's results."""
    parts = [slug(report["machine"]["cpu"])]
    parts += [slug(g) for g in report["machine"].get("gpus", [])]
    devices = [re.sub(r"[^a-z0-9]+", "", d.lower()) for d in report["config"]["devices"]]
    parts.append("-".join(devices) or "none")
    name = "_".join(parts)
    if report["config"].get("quick"):
        name += "-quick"
    elif report["config"].get("cases"):
        name += "-partial"
    return name


# ---- files -------------------------------------------------------------------------------
def save(report, out_dir):
    """Write `<out_dir>/<machine>.json` and `.png`; returns the paths written."""
    os.makedirs(out_dir, exist_ok=True)
    base = os.path.join(out_dir, report["machine"]["name"])
    with open(base + ".json", "w") as f:
        json.dump(report, f, indent=1, default=str)
        f.write("\n")
    written = [base + ".json"]
    png = chart(report, base + ".png")
    if png:
        written.append(png)
    return written


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes, few rounds (< 1 min)")
    p.add_argument("--rounds", type=int, help="interleaved rounds (default 11, quick 3)")
    p.add_argument("--device", help="comma-separated devices, e.g. cpu,cuda (default: cpu, "
                                    "plus cuda when usable); unusable ones are skipped")
    p.add_argument("--threads", type=int, default=2, help="BLAS/OpenMP/torch threads")
    p.add_argument("--cases", help="comma-separated case keys to run (default: all)")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    p.add_argument("--out-dir", default=DEFAULT_OUT_DIR,
                   help="where <machine>.json and <machine>.png go (default benchmarks/results)")
    p.add_argument("--no-save", action="store_true", help="write no results file or chart")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    p.add_argument("--from-json", metavar="PATH",
                   help="print a saved run (this script's or pytest-benchmark's JSON), "
                        "measure nothing")
    args = p.parse_args(argv)
    if args.from_json:
        print(format_report(load(args.from_json)))
        return 0
    only = set(args.cases.split(",")) if args.cases else None
    devices = [d.strip() for d in args.device.split(",") if d.strip()] if args.device else None
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    report = run(quick=args.quick, rounds=args.rounds, threads=args.threads,
                 use_torch=not args.no_torch, only=only, log=log, devices=devices)
    print(format_report(report))
    if not args.no_save:
        for path in save(report, args.out_dir):
            log(f"wrote {path}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1, default=str)
    failed = any("error" in row for row in report["rows"]) or not report["config"]["devices"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
