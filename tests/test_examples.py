"""The example scripts run as a user runs them (`python examples/<name>.py`), in a subprocess.

The main job, examples/digits_softmax.py, runs in full with its default settings and must
reach a test accuracy of at least 0.94 on the held-out 20 % of the digits.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"

pytest.importorskip("sklearn", reason="the examples need scikit-learn: pip install -e .[test]")


def run_example(name, *args, timeout=300):
    """Run examples/<name> on the CPU from the repo root; return its stdout."""
    env = dict(os.environ, TENSORGRAD_DEVICE="cpu")
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def parse_accuracy(out, label="test accuracy"):
    m = re.search(rf"^{label}: ([0-9.]+)$", out, re.MULTILINE)
    assert m, f"no '{label}: ...' line in the output:\n{out}"
    return float(m.group(1))


def test_digits_softmax_reaches_94_percent():
    out = run_example("digits_softmax.py", "--device", "cpu")
    assert parse_accuracy(out) >= 0.94, out
    losses = [float(x) for x in re.findall(r"train loss ([0-9.]+)", out)]
    assert len(losses) >= 3 and losses[-1] < losses[0] / 4, f"loss did not fall:\n{out}"


def test_digits_softmax_is_deterministic():
    first = run_example("digits_softmax.py", "--device", "cpu", "--epochs", "2")
    second = run_example("digits_softmax.py", "--device", "cpu", "--epochs", "2")
    strip = re.compile(r"^trained in .*$", re.MULTILINE)  # the only line with a timing
    assert strip.sub("", first) == strip.sub("", second)


def test_digits_softmax_without_scikit_learn_names_the_extra(tmp_path):
    # A `sklearn` package that fails to import stands in for a missing scikit-learn.
    (tmp_path / "sklearn").mkdir()
    (tmp_path / "sklearn" / "__init__.py").write_text("raise ImportError('no sklearn here')\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    proc = subprocess.run([sys.executable, str(EXAMPLES / "digits_softmax.py"), "--epochs", "1",
                           "--device", "cpu"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode != 0
    assert "pip install -e .[examples]" in proc.stderr
