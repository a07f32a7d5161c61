"""How a benchmark report reads: the markdown tables, the header text and the PNG bar chart,
and reading a saved report back (report.py's JSON or pytest-benchmark's) to print it again.

    print(format_report(load("benchmarks/results/intel-xeon_cpu.json")))

It knows the layout of a report dict (`machine`, `devices`, `config`, `rows`) and nothing of
how one is measured: `report.py` measures and writes, then calls `format_report` and `chart`.
So it must not import `report` (which imports it), the case modules or `limits`; `devkit` only
for why a PyTorch column is empty. matplotlib is optional and imported by `chart` alone.
"""

import json
import re
import sys

import devkit
import numpy as np

IMPL_NAMES = ("tensorgrad", "numpy", "torch")  # "numpy": the hand-written baseline, any xp


# ---- text --------------------------------------------------------------------------------
def fmt_value(x, unit):
    if x is None:
        return "n/a"
    if unit == "bytes":
        return fmt_bytes(x)
    for scale, suffix in ((1, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if x >= scale:
            return f"{x / scale:.3g} {suffix}"
    return f"{x / 1e-9:.3g} ns"


def fmt_bytes(x):
    if x is None:
        return "n/a"
    for scale, suffix in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if x >= scale:
            return f"{x / scale:.3g} {suffix}"
    return f"{x:.0f} B"


def fmt_si(x, unit):
    """1.5e9, 'FLOP' -> '1.5 GFLOP' (decimal prefixes, as GB/s and GFLOP/s are)."""
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= scale:
            return f"{x / scale:.3g} {prefix}{unit}"
    return f"{x:.3g} {unit}"


def fmt_ratio(r):
    if r is None:
        return "n/a"
    return f"{r['median']:.2f} ({r['min']:.2f}–{r['max']:.2f})"


def fmt_times(x):
    if x is None:
        return "n/a"
    return f"{x:,.0f}×" if x >= 100 else f"{x:.3g}×"


def _hand_label(report, device):
    return report.get("devices", {}).get(device, {}).get("hand", "NumPy")


def fmt_target(row, hand="NumPy"):
    """The target and met cells: one entry per target, joined by "; "."""
    targets = row.get("targets")
    if targets is None:  # a run saved when a row had at most one target
        targets = [{**row["target"], "met": row["met"]}] if row.get("target") else []
    if not targets:
        return "—", "—"
    label = {"numpy": hand, "torch": "PyTorch"}
    met = {True: "yes", False: "**no**", None: "n/a"}
    return ("; ".join(f"tg/{label[t['vs']]} ≤ {t['max_ratio']}" for t in targets),
            "; ".join(met[t["met"]] for t in targets))


def _missing(report, row, name):
    """Why an implementation has no value in a row ('' when it has one)."""
    if name in row.get("values", {}):
        return ""
    if name == "torch":
        if not report["config"]["torch"]:
            return "n/a (PyTorch not installed)" if devkit.TORCH is None or \
                row.get("missing", {}).get("torch") == devkit.TORCH_MISSING \
                else "n/a (PyTorch left out)"
        why = row.get("missing", {}).get("torch")
        if why:
            return f"n/a ({why})"
        if row.get("metric") == "memory":
            return "n/a (not traced)"
    return "n/a"


def format_table(report):
    head = ["case", "device", "tensorgrad", "by hand", "PyTorch", "tg / hand", "tg / PyTorch",
            "GPU speed-up (tg)", "peak memory tg · hand · PyTorch", "target", "met"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in report["rows"]:
        device = row.get("device", "cpu")
        if "error" in row:
            lines.append(f"| {row['title']} | {device} | error: {row['error']} |"
                         + " |" * (len(head) - 3))
            continue
        cells = [row["title"], device]
        for name in IMPL_NAMES:
            cells.append(_missing(report, row, name) or fmt_value(row["values"][name],
                                                                   row["unit"]))
        cells += [fmt_ratio(row["ratios"].get("numpy")), fmt_ratio(row["ratios"].get("torch"))]
        sp = (row.get("speedup") or {}).get("tensorgrad")
        cells.append("—" if device == "cpu" or row["metric"] != "time"
                     else (f"{sp:.3g}×" if sp else "n/a"))
        peaks = row.get("peak_bytes") or {}
        cells.append(" · ".join(fmt_bytes(peaks.get(n)) for n in IMPL_NAMES))
        cells += fmt_target(row, _hand_label(report, device))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_bounds_table(report):
    head = ["case", "device", "lower bound", "set by", "tensorgrad × bound", "by hand × bound",
            "PyTorch × bound"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in report["rows"]:
        b = row.get("bound")
        if "error" in row or not b:
            continue
        lim = report["devices"][row["device"]]["limits"]
        if b["by"] == "FLOPs":
            why = f"{fmt_si(b['flops'], 'FLOP')} at {lim['matmul']['gflops']:.0f} GFLOP/s"
        else:
            why = f"{fmt_si(b['min_bytes'], 'B')} at {lim['copy']['gbs']:.1f} GB/s"
        cells = [row["title"], row["device"], fmt_value(b["s"], "s"), why]
        for name in IMPL_NAMES:
            cells.append(_missing(report, row, name) or fmt_times(row["x_bound"].get(name)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_machine(info):
    blas = "; ".join(f"{b['internal_api']} {b['version'] or ''} ({b['user_api']}, "
                     f"{b['num_threads']} threads, {b['threading_layer'] or '-'}, "
                     f"{b['architecture'] or '-'})" for b in info["blas"])
    torch = (f"{info['torch']} ({info['torch_threads']} threads)" if info["torch"]
             else "n/a (PyTorch not installed)")
    env = ", ".join(f"{k}={v}" for k, v in info["env"].items()) or "none"
    gpus = ", ".join(info.get("gpus") or []) or "none used"
    return "\n".join([
        f"Machine `{info.get('name', '?')}` ({info.get('date', 'date unknown')}): "
        f"CPU {info['cpu']} ({info['logical_cpus']} logical CPUs), threads used: "
        f"{info['threads']}; GPU: {gpus}",
        f"Python {info['python']}, NumPy {info['numpy']}, tensorgrad {info['tensorgrad']}, "
        f"PyTorch {torch}",
        f"BLAS/OpenMP (threadpoolctl): {blas}",
        f"environment: {env}; load average (1 min) at start {info['loadavg']}, "
        f"at end {info.get('loadavg_end')}",
    ])


def format_devices(report):
    lines = []
    for name, d in report.get("devices", {}).items():
        lim = d["limits"]
        torch = d["torch_device"] or f"n/a ({d['torch_missing']})"
        lines.append(
            f"- {name} ({d['hardware']}; by hand: {d['hand']} {d.get('xp_version') or ''}; "
            f"PyTorch on: {torch}): peak float32 matmul {lim['matmul']['gflops']:.1f} GFLOP/s "
            f"({lim['matmul']['how']}), copy bandwidth {lim['copy']['gbs']:.1f} GB/s "
            f"({lim['copy']['how']})")
    for name, why in report["config"].get("skipped_devices", {}).items():
        lines.append(f"- {name}: skipped ({why})")
    return "\n".join(lines)


def format_report(report):
    c = report["config"]
    how = (f"{c['rounds']} interleaved rounds, about {c['round_s']} s each; "
           "ratio = median of per-round ratios (min–max). By hand = NumPy on the CPU, CuPy "
           "on CUDA.")
    parts = [format_machine(report["machine"])]
    if report.get("devices") or c.get("skipped_devices"):
        parts.append("Devices and their measured limits:\n" + format_devices(report))
    parts += [how, format_table(report)]
    if any(row.get("bound") for row in report["rows"]):
        parts += ["Distance to the physical limit: lower bound = max(matmul/conv FLOPs / "
                  "peak matmul rate, minimum bytes / copy bandwidth), the limits measured at "
                  "the start and the end of the run, the better kept (or a case's fastest round "
                  "if that beat both); × bound = time / lower bound.", format_bounds_table(report)]
        if any(v < 1 for row in report["rows"] for v in (row.get("x_bound") or {}).values()):
            parts.append("A × bound below 1 means a limit was measured low (a busy machine): "
                         "read that row's bound as unreliable.")
    return "\n\n".join(parts)


# ---- chart -------------------------------------------------------------------------------
def chart(report, path):
    """A PNG bar chart: tensorgrad's ratios to hand-written and to PyTorch per case (left,
    with the quartiles of the per-round ratios), and each implementation's distance to the
    lower bound (right). None without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no chart: matplotlib is not installed", file=sys.stderr)
        return None
    rows = [r for r in report["rows"] if "error" not in r]
    if not rows:
        return None
    labels = [f"{r['key']} [{r['device']}]" for r in rows]
    y = np.arange(len(rows))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 1.6 + 0.42 * len(rows)), sharey=True)
    for ax, series, title in (
            (ax1, [("numpy", "tg / by hand", "tab:blue"), ("torch", "tg / PyTorch",
                                                             "tab:orange")],
             "tensorgrad time ÷ other (memory rows: peak bytes); 1 = equal\n"
             "bar: median of per-round ratios; whiskers: quartiles"),
            (ax2, [("tensorgrad", "tensorgrad", "tab:green"), ("numpy", "by hand", "tab:blue"),
                   ("torch", "PyTorch", "tab:orange")],
             "time ÷ physical lower bound; 1 = at the limit")):
        h = 0.8 / len(series)
        for i, (name, label, color) in enumerate(series):
            vals, lo, hi = [], [], []
            for r in rows:
                if ax is ax1:
                    rr = r["ratios"].get(name)
                    v = rr["median"] if rr else np.nan
                    lo.append(v - rr.get("q1", rr["min"]) if rr else 0)
                    hi.append(rr.get("q3", rr["max"]) - v if rr else 0)
                else:
                    v = r.get("x_bound", {}).get(name, np.nan)
                    lo.append(0)
                    hi.append(0)
                vals.append(v)
            pos = y - 0.4 + h * (i + 0.5)
            ax.barh(pos, vals, height=h, color=color, label=label,
                    xerr=[lo, hi] if ax is ax1 else None, error_kw={"lw": 0.8})
        ax.axvline(1.0, color="black", lw=0.8)
        ax.set_xscale("log")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=8, loc="lower right")
        ax.grid(axis="x", which="both", alpha=0.3)
    ax1.set_yticks(y)
    ax1.set_yticklabels(labels, fontsize=8)
    ax1.invert_yaxis()
    m = report["machine"]
    fig.suptitle(f"tensorgrad benchmarks: {m.get('name', '')} ({m['threads']} threads, "
                 f"{m.get('date', '')})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---- saved runs --------------------------------------------------------------------------
def load(path):
    """A saved report: this script's JSON, or pytest-benchmark's (`--benchmark-json`)."""
    with open(path) as f:
        data = json.load(f)
    if "rows" in data:
        data.setdefault("devices", {})
        data["config"].setdefault("skipped_devices", {})
        for row in data["rows"]:
            row.setdefault("device", "cpu")
        return data
    if "benchmarks" in data:
        return from_pytest_benchmark(data)
    raise ValueError(f"{path}: neither a report.py nor a pytest-benchmark JSON file")


def from_pytest_benchmark(data):
    """Rows from pytest-benchmark's JSON (bench_core.py, bench_training.py): medians per
    implementation, ratios of medians (spread: the ratio of the extremes, min/max and
    max/min), no limits (they are measured by report.py only)."""
    by_case = {}
    for b in data["benchmarks"]:
        m = re.fullmatch(r"(.+)\[(tensorgrad|numpy|torch)\]", b["name"])
        if m:
            by_case.setdefault(m.group(1), {"title": b.get("group") or m.group(1)})[
                m.group(2)] = b["stats"]
    rows = []
    for key, d in by_case.items():
        if "tensorgrad" not in d:
            continue
        stats = {n: d[n] for n in IMPL_NAMES if n in d}
        t = stats["tensorgrad"]
        rows.append({"key": key, "title": d["title"], "device": "cpu", "metric": "time",
                     "note": "", "target": None, "met": None, "unit": "s", "missing": {},
                     "values": {n: s["median"] for n, s in stats.items()},
                     "ratios": {n: {"median": t["median"] / s["median"],
                                    "min": t["min"] / s["max"], "max": t["max"] / s["min"],
                                    "n": min(t["rounds"], s["rounds"])}
                                for n, s in stats.items() if n != "tensorgrad"},
                     "peak_bytes": {}, "bound": None, "x_bound": {}, "speedup": None})
    mi = data.get("machine_info", {})
    info = {"name": "pytest-benchmark", "cpu": mi.get("cpu", {}).get("brand_raw", "?"),
            "logical_cpus": mi.get("cpu", {}).get("count"), "threads": "?",
            "python": mi.get("python_version", "?"), "numpy": "?", "tensorgrad": "?",
            "torch": None, "torch_threads": None, "blas": [], "env": {}, "loadavg": None,
            "date": data.get("datetime", "")}
    config = {"quick": None, "torch": any("torch" in r["values"] for r in rows),
              "devices": ["cpu"], "skipped_devices": {}, "rounds": "pytest-benchmark",
              "round_s": "?"}
    return {"machine": info, "devices": {}, "config": config, "rows": rows}
