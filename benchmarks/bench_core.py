"""pytest-benchmark suite of the core cases: tensorgrad, hand-written NumPy and PyTorch eager.

    pytest benchmarks/ --benchmark-enable            # full sizes (cases.SIZES["full"])
    TG_BENCH_QUICK=1 pytest benchmarks/ --benchmark-enable

Each case's implementations are separate benchmarks in one group, so pytest-benchmark's table
puts them side by side. The MLP benchmarks also record tracemalloc's peak bytes of one call in
`extra_info` (see --benchmark-json). `benchmarks/report.py` prints the interleaved ratio
table with the targets; this suite is for pytest-benchmark's history and comparisons.
"""

import os

import cases
import pytest

QUICK = os.environ.get("TG_BENCH_QUICK", "") not in ("", "0")
TIMED = [c for c in cases.get_cases(quick=QUICK) if c.metric == "time"]


@pytest.mark.parametrize("impl", cases.IMPLS)
@pytest.mark.parametrize("case", TIMED, ids=[c.key for c in TIMED])
def test_core(benchmark, case, impl):
    if impl == "torch" and cases.TORCH is None:
        pytest.skip("n/a (PyTorch not installed)")
    step = case.build([impl])[impl]
    benchmark.group = case.title
    benchmark.name = f"{case.key}[{impl}]"
    if case.key.startswith("mlp") and impl != "torch":  # tracemalloc cannot see torch's heap
        benchmark.extra_info["peak_traced_bytes"] = step.peak_memory()
    loss, grads = benchmark(step.step)
    assert all(g is not None for g in grads)
