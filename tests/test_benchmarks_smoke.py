"""Smoke test of benchmarks/report.py: it runs end to end and yields finite ratios.

No timing is asserted (machines are shared and noisy); this only keeps the benchmark code
from rotting as the core changes. The full report is `python benchmarks/report.py`.
"""

import json
import math
import os
import subprocess
import sys

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


def test_report_quick_produces_finite_ratios(tmp_path):
    stdout, report = _run_report(tmp_path)
    keys = [row["key"] for row in report["rows"]]
    assert {"per_op", "memory_bound", "mlp_time", "mlp_memory"} <= set(keys)
    assert {"train_cnn", "train_lstm"} <= set(keys)
    assert sum(k.startswith("train_mlp_") for k in keys) == 2
    assert any(k.startswith("matmul_") for k in keys)
    for row in report["rows"]:
        assert "error" not in row, row
        assert _finite(row["values"]["tensorgrad"]) and _finite(row["values"]["numpy"])
        ratio = row["ratios"]["numpy"]
        assert all(_finite(ratio[k]) for k in ("median", "min", "max"))
        assert ratio["min"] <= ratio["median"] <= ratio["max"]
        assert len(row["per_round"]["tensorgrad"]) == ratio["n"]
        assert row["met"] in (True, False, None)
        assert "| " + row["title"] + " |" in stdout
    assert report["machine"]["threads"] == 2
    assert report["machine"]["blas"], "threadpoolctl found no BLAS"


def test_training_targets_are_listed(tmp_path):
    stdout, report = _run_report(tmp_path, "--no-torch", "--rounds", "1",
                                 "--cases", "train_cnn,train_lstm")
    assert [row["key"] for row in report["rows"]] == ["train_cnn", "train_lstm"]
    for row in report["rows"]:
        assert "error" not in row, row
        assert row["target"]["vs"] == "numpy"
        assert _finite(row["ratios"]["numpy"]["median"])
    assert "tg/NumPy ≤ 1.3" in stdout and "tg/NumPy ≤ 1.5" in stdout


def test_report_without_torch_says_na(tmp_path):
    stdout, report = _run_report(tmp_path, "--no-torch", "--cases", "per_op", "--rounds", "2")
    (row,) = report["rows"]
    assert "torch" not in row["values"] and "torch" not in row["ratios"]
    assert _finite(row["ratios"]["numpy"]["median"])
    assert "n/a (PyTorch not installed)" in stdout
