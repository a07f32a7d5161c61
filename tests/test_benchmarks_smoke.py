"""Smoke test of benchmarks/report.py: it runs end to end and yields finite ratios.

No timing is asserted (machines are shared and noisy); this only keeps the benchmark code
from rotting as the core changes. The full report is `python benchmarks/report.py`.

The quick report runs once as a subprocess (the way a user runs it: thread variables set
before NumPy loads), writing its JSON and PNG into a tmp dir, and `--from-json` re-prints it.
The device path runs in-process on "cpu,alt,cuda": "alt" (tests/alt_backend.py, registered by
conftest) stands in for a GPU, so per-device inputs, the by-hand baseline on the device's
`xp`, synchronization, speed-ups and per-device limits run on CI; "cuda" is measured where a
GPU is usable and otherwise skipped with its reason.
"""

import importlib.util
import json
import math
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPORT = os.path.join(ROOT, "benchmarks", "report.py")


def _run_report(tmp_path, *args):
    out = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, REPORT, "--quick", "--json", str(out), *args],
                          capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout, json.loads(out.read_text())


def _finite(x):
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.fixture(scope="module")
def report_module():
    spec = importlib.util.spec_from_file_location("tg_bench_report", REPORT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_report_quick_writes_json_png_and_reprints(tmp_path):
    out_dir = tmp_path / "results"
    stdout, report = _run_report(tmp_path, "--out-dir", str(out_dir))
    keys = [row["key"] for row in report["rows"]]
    assert {"per_op", "memory_bound", "mlp_time", "mlp_memory"} <= set(keys)
    assert {"train_cnn", "train_lstm", "train_transformer", "optim_sgd",
            "optim_adam"} <= set(keys)
    ops = ("elementwise", "broadcast", "reduction", "softmax", "conv2d", "maxpool")
    assert {f"op_{op}_{size}" for op in ops for size in ("small", "large")} <= set(keys)
    assert sum(k.startswith("train_mlp_") for k in keys) == 2
    assert any(k.startswith("matmul_") for k in keys)
    assert "cpu" in report["config"]["devices"]
    lim = report["devices"]["cpu"]["limits"]
    assert _finite(lim["matmul"]["gflops"]) and _finite(lim["copy"]["gbs"])
    for row in report["rows"]:
        assert "error" not in row, row
        assert _finite(row["values"]["tensorgrad"]) and _finite(row["values"]["numpy"])
        ratio = row["ratios"]["numpy"]
        assert all(_finite(ratio[k]) for k in ("median", "min", "max"))
        assert ratio["min"] <= ratio["median"] <= ratio["max"]
        assert len(row["per_round"]["tensorgrad"]) == ratio["n"]
        assert row["met"] in (True, False, None)
        assert "| " + row["title"] + " | " + row["device"] + " |" in stdout
        assert _finite(row["peak_bytes"]["numpy"])
        if row["metric"] == "time":  # every timed case has a physical lower bound
            assert _finite(row["bound"]["s"]) and row["bound"]["by"] in ("FLOPs", "bytes")
            assert all(_finite(v) for v in row["x_bound"].values())
    by_key = {row["key"]: row for row in report["rows"]}
    assert by_key["matmul_64"]["bound"]["flops"] == 3 * 2 * 64 ** 3
    assert by_key["optim_adam"]["bound"]["by"] == "bytes"
    assert by_key["op_conv2d_small"]["bound"]["flops"] == 3 * 2 * 2 * 4 * 8 * 8 * 2 * 9
    assert by_key["op_softmax_large"]["target"] is None
    assert by_key["train_transformer"]["target"] is None
    assert by_key["train_transformer"]["bound"]["flops"] > 0
    assert by_key["op_elementwise_small"]["target"] is None  # per-op overhead at that size
    assert by_key["op_elementwise_large"]["target"] == {"vs": "numpy", "max_ratio": 1.2}
    # two targets on one row: each judged and printed, the first kept as "target"
    mlp = by_key["train_mlp_8"]
    assert [(t["vs"], t["max_ratio"]) for t in mlp["targets"]] == [("numpy", 1.3),
                                                                     ("torch", 1.0)]
    assert mlp["target"] == {"vs": "numpy", "max_ratio": 1.3}
    if "torch" in mlp["ratios"]:
        assert "tg/NumPy ≤ 1.3; tg/PyTorch ≤ 1.0" in stdout
    assert report["machine"]["threads"] == 2
    assert report["machine"]["blas"], "threadpoolctl found no BLAS"
    assert "× bound" in stdout and "GFLOP/s" in stdout and "GB/s" in stdout

    name = report["machine"]["name"]
    assert name.endswith("-quick") and "_cpu" in name  # never the full run's file name
    saved = out_dir / f"{name}.json"
    assert json.loads(saved.read_text())["rows"] == json.loads(json.dumps(report["rows"]))
    if importlib.util.find_spec("matplotlib") is not None:
        assert (out_dir / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    proc = subprocess.run([sys.executable, REPORT, "--from-json", str(saved)],
                          capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == stdout


def test_training_targets_are_listed(tmp_path):
    stdout, report = _run_report(tmp_path, "--no-torch", "--rounds", "1", "--no-save",
                                 "--device", "cpu", "--cases", "train_cnn,train_lstm")
    assert [row["key"] for row in report["rows"]] == ["train_cnn", "train_lstm"]
    for row in report["rows"]:
        assert "error" not in row, row
        assert row["target"]["vs"] == "numpy"
        assert _finite(row["ratios"]["numpy"]["median"])
    assert "tg/NumPy ≤ 1.25" in stdout and "tg/NumPy ≤ 1.4" in stdout
    assert not list(tmp_path.glob("*.png")), "--no-save wrote a chart"


def test_report_without_torch_says_na(tmp_path):
    stdout, report = _run_report(tmp_path, "--no-torch", "--cases", "per_op", "--rounds", "2",
                                 "--no-save", "--device", "cpu")
    (row,) = report["rows"]
    assert "torch" not in row["values"] and "torch" not in row["ratios"]
    assert _finite(row["ratios"]["numpy"]["median"])
    assert "n/a (PyTorch" in stdout


def test_report_per_device(report_module, tmp_path, capsys):
    """Every case on each device, the baseline in that device's xp; unusable ones skipped."""
    from tensorgrad import backend_api

    keys = ["per_op", "mlp_memory", "train_cnn", "train_lstm", "train_transformer", "optim_sgd",
            "op_conv2d_small"]
    rc = report_module.main(["--quick", "--rounds", "1", "--no-torch", "--device",
                             "cpu,alt,cuda", "--cases", ",".join(keys),
                             "--out-dir", str(tmp_path)])
    stdout = capsys.readouterr().out
    assert rc == 0, stdout
    (path,) = tmp_path.glob("*.json")
    report = json.loads(path.read_text())
    cuda_ok, why = backend_api.availability("cuda")
    devices = ["cpu", "alt"] + (["cuda"] if cuda_ok else [])
    assert report["config"]["devices"] == devices
    if not cuda_ok:
        assert report["config"]["skipped_devices"]["cuda"]
        assert "- cuda: skipped (" in stdout
    assert path.stem.endswith("-quick") and "cpu-alt" in path.stem
    rows = {(row["key"], row["device"]): row for row in report["rows"]}
    assert set(rows) == {(k, d) for k in keys for d in devices}
    for d in devices:
        assert _finite(report["devices"][d]["limits"]["matmul"]["gflops"])
        for k in keys:
            row = rows[k, d]
            assert "error" not in row, row
            assert _finite(row["ratios"]["numpy"]["median"])
            if d != "cpu" and row["metric"] == "time":
                assert _finite(row["speedup"]["tensorgrad"])
    assert rows["per_op", "cpu"]["speedup"] is None
    assert report["devices"]["alt"]["hand"] == "NumPy"


def test_from_json_reads_pytest_benchmark(report_module, tmp_path, capsys):
    stats = {"median": 2e-3, "min": 1e-3, "max": 3e-3, "rounds": 5}
    data = {"machine_info": {"cpu": {"brand_raw": "Test CPU"}}, "benchmarks": [
        {"name": "matmul_64[tensorgrad]", "group": "matmul 64", "stats": stats},
        {"name": "matmul_64[numpy]", "group": "matmul 64",
         "stats": {**stats, "median": 1e-3}}]}
    path = tmp_path / "pb.json"
    path.write_text(json.dumps(data))
    assert report_module.main(["--from-json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "| matmul 64 | cpu | 2 ms | 1 ms |" in out and "2.00 (" in out


def test_targets_of_old_and_new_rows(report_module):
    """A row saved with one `target` (before rows carried `targets`) still prints."""
    old = {"target": {"vs": "torch", "max_ratio": 1.0}, "met": False}
    assert report_module.fmt_target(old) == ("tg/PyTorch ≤ 1.0", "**no**")
    row = {"ratios": {"numpy": {"median": 1.1}}}
    report_module.set_targets(row, [("numpy", 1.3), ("torch", 1.0)])
    assert row["met"] is True and row["target"] == {"vs": "numpy", "max_ratio": 1.3}
    assert report_module.fmt_target(row, "CuPy") == ("tg/CuPy ≤ 1.3; tg/PyTorch ≤ 1.0",
                                                     "yes; n/a")
    report_module.set_targets(row, ("numpy", 1.05))
    assert row["met"] is False and len(row["targets"]) == 1
    report_module.set_targets(row, None)
    assert row["target"] is None and report_module.fmt_target(row) == ("—", "—")
