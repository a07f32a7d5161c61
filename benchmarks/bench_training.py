"""pytest-benchmark suite of the training steps: tensorgrad, hand-written NumPy, PyTorch eager.

    pytest benchmarks/ -k training_step --benchmark-enable        # the issue's sizes
    TG_BENCH_QUICK=1 pytest benchmarks/ -k training_step --benchmark-enable

(Pass the folder, not this file: conftest.py's collection hook would collect a file named on
the command line a second time.)

Each network's implementations are separate benchmarks in one group, so pytest-benchmark's
table puts them side by side. Before timing, each implementation's first step (loss and
every parameter gradient) is checked against the NumPy one, from the same weights.
`benchmarks/report.py` prints the interleaved ratio table with the targets.
"""

import os

import cases
import pytest
import training_cases

QUICK = os.environ.get("TG_BENCH_QUICK", "") not in ("", "0")
CASES = training_cases.get_cases(quick=QUICK)


@pytest.mark.parametrize("impl", training_cases.IMPLS)
@pytest.mark.parametrize("case", CASES, ids=[c.key for c in CASES])
def test_training_step(benchmark, case, impl):
    if impl == "torch" and cases.TORCH is None:
        pytest.skip("n/a (PyTorch not installed)")
    names = ("numpy",) if impl == "numpy" else (impl, "numpy")
    built = case.build(names)
    cases.check_agree(case, {name: b.step() for name, b in built.items()})
    benchmark.group = case.title
    benchmark.name = f"{case.key}[{impl}]"
    loss, grads = benchmark(built[impl].step)
    assert all(g is not None for g in grads)
