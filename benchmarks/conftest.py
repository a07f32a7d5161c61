"""pytest setup for the benchmark suites (benchmarks/ is not a package and not in testpaths).

Collects `bench_*.py` (pyproject's python_files keeps the default `test_*.py`).
Puts this folder on sys.path so the suites import `cases` and `baselines` under pytest's
importlib mode (the repository root stays off the path, see shared/STYLE.md section 3), and
runs BLAS, OpenMP and PyTorch on TG_BENCH_THREADS threads (default 2, the CI machine's size).
"""

import os
import sys

THREADS = int(os.environ.get("TG_BENCH_THREADS", "2"))
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, str(THREADS))  # effective only if NumPy is not loaded yet
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see report.py: spinning pools contend

import pytest  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def pytest_collect_file(file_path, parent):
    if file_path.suffix == ".py" and file_path.name.startswith("bench_"):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


@pytest.fixture(scope="session", autouse=True)
def _bench_threads():
    import threadpoolctl

    try:
        import torch
    except ImportError:
        torch = None
    old = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(THREADS)
    with threadpoolctl.threadpool_limits(limits=THREADS):
        yield
    if torch is not None:
        torch.set_num_threads(old)
