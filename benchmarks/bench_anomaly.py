"""pytest-benchmark suite: the MLP training step with anomaly mode off (the default) and on.

    pytest benchmarks/ -k anomaly --benchmark-enable
    TG_BENCH_QUICK=1 pytest benchmarks/ -k anomaly --benchmark-enable

Off, anomaly mode must cost nothing measurable (DESIGN section 4: at most 2 % on this step;
the cost is the one `graph._anomaly.enabled` check per recorded op and per VJP). On, every
recorded op and every VJP reads its result on the host to look for NaN and Inf, and each
node records its creating line, so "on" is expected to be slower: it is the debugging price.
"""

import os

import pytest
import training_cases

import tensorgrad as tg

QUICK = os.environ.get("TG_BENCH_QUICK", "") not in ("", "0")
MLP = [c for c in training_cases.get_cases(quick=QUICK) if c.key.startswith("train_mlp")]


@pytest.mark.parametrize("mode", ["off", "on"])
@pytest.mark.parametrize("case", MLP, ids=[c.key for c in MLP])
def test_anomaly_mode(benchmark, case, mode):
    step = case.build(("tensorgrad",))["tensorgrad"].step
    benchmark.group = f"anomaly mode: {case.title}"
    benchmark.name = f"{case.key}[anomaly {mode}]"
    with tg.autograd.set_detect_anomaly(mode == "on"):
        loss, grads = benchmark(step)
    assert not tg.autograd.is_anomaly_enabled()
    assert all(g is not None for g in grads)
