"""Every registered op has a harness case; every smooth op has a second-order case.

Walks `tensorgrad.ops.registry.OPS` and the `CASES` lists of the modules in tests/ops/, so a
new op without tests fails here instead of going unnoticed.
"""

import importlib.util
from pathlib import Path

from tensorgrad.ops.registry import OPS

HERE = Path(__file__).parent


def _cases():
    cases = []
    for path in sorted(HERE.glob("test_*.py")):
        if path.name == Path(__file__).name:
            continue
        spec = importlib.util.spec_from_file_location(f"_coverage_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        cases.extend(getattr(module, "CASES", []))
    return cases


def _library_ops():
    # Ops registered by tests themselves (deliberately broken ones) are not the library's.
    return {name: op for name, op in OPS.items()
            if op.forward.__module__.startswith("tensorgrad.")}


def test_every_op_has_a_case():
    covered = {name for case in _cases() for name in case.ops}
    missing = sorted(set(_library_ops()) - covered)
    assert not missing, f"ops without a harness case in tests/ops/: {missing}"


def test_every_smooth_op_has_a_second_order_case():
    second = {name for case in _cases() if case.second_order and case.differentiable
              for name in case.ops}
    smooth = {name for name, op in _library_ops().items() if op.smooth}
    missing = sorted(smooth - second)
    assert not missing, f"smooth ops without a second-order (gradgradcheck) case: {missing}"


def test_every_differentiable_op_has_a_gradient_case():
    grad = {name for case in _cases() if case.differentiable for name in case.ops}
    diff = {name for name, op in _library_ops().items() if op.differentiable}
    missing = sorted(diff - grad)
    assert not missing, f"differentiable ops without a gradcheck case: {missing}"
