"""One op-test harness for every op: `OpCase` describes a case, `check_op` runs it.

For each case, on the given device:
1. forward against a NumPy reference, in float32 and float64 (output shape, dtype, device);
2. first-order gradients by `gradcheck` in float64;
3. second order by `gradgradcheck` where `second_order=True` (every smooth op has such a case);
4. where the device's backend overrides an op, the same case without the override must give
   the same numbers (1e-6 relative in float32, 1e-12 in float64).

Test modules under tests/ops/ list their cases in a module-level `CASES`; tests/ops/
test_coverage.py fails for any registered op without a case, or any smooth op without a
second-order case.
"""

from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

import tensorgrad as tg
from tensorgrad import backend_api

TOL = {"float32": dict(rtol=2e-5, atol=2e-6), "float64": dict(rtol=1e-10, atol=1e-12)}
PARITY = {"float32": dict(rtol=1e-6, atol=1e-7), "float64": dict(rtol=1e-12, atol=1e-14)}


@dataclass
class OpCase:
    """One way of calling an op.

    ops: registry names this case covers. fn(*tensors) calls tensorgrad; ref(*arrays) is the
    NumPy reference (it gets float64 arrays and its result is compared after casting).
    Inputs are `shapes` drawn uniformly from [low, high], or whatever `make(rng)` returns
    (a list of NumPy arrays; integer arrays stay integer and are never differentiated).
    """

    ops: tuple
    fn: Callable
    ref: Callable
    shapes: tuple = ()
    make: Callable = None
    low: float = -2.0
    high: float = 2.0
    grad: tuple = None             # indices of inputs to differentiate (default: float ones)
    second_order: bool = True
    differentiable: bool = True
    dtypes: tuple = ("float32", "float64")
    tol: dict = field(default_factory=dict)  # dtype name -> dict(rtol=, atol=) overrides
    name: str = ""

    @property
    def id(self):
        return self.name or f"{'+'.join(self.ops)}{list(self.shapes) if self.shapes else ''}"


def _inputs(case, seed):
    rng = np.random.default_rng(seed)
    if case.make is not None:
        return [np.asarray(a) for a in case.make(rng)]
    return [rng.uniform(case.low, case.high, size=s) for s in case.shapes]


def _tensors(arrays, dtype, device, grad_idx=()):
    out = []
    for i, a in enumerate(arrays):
        if a.dtype.kind == "f":
            t = tg.tensor(a.astype(dtype), device=device, requires_grad=i in grad_idx)
        else:
            t = tg.tensor(a, device=device)
        out.append(t)
    return out


def _grad_indices(case, arrays):
    if case.grad is not None:
        return tuple(case.grad)
    return tuple(i for i, a in enumerate(arrays) if a.dtype.kind == "f")


def check_forward(case, device, seed=0):
    arrays = _inputs(case, seed)
    expected = np.asarray(case.ref(*[a.copy() for a in arrays]))
    for dtype in case.dtypes:
        out = case.fn(*_tensors(arrays, dtype, device))
        assert str(out.device).split(":")[0] == device, f"{case.id}: output on {out.device}"
        got = out._backend.to_numpy(out._array)
        assert got.shape == expected.shape, (
            f"{case.id} [{dtype}]: shape {got.shape}, expected {expected.shape}")
        if expected.dtype.kind == "f":
            assert got.dtype == np.dtype(dtype), f"{case.id}: dtype {got.dtype}, wanted {dtype}"
        tol = dict(TOL[dtype], **case.tol.get(dtype, {}))
        np.testing.assert_allclose(got.astype(np.float64) if got.dtype.kind == "f" else got,
                                   expected, err_msg=f"{case.id} [{dtype}] on {device}",
                                   equal_nan=True, **tol)


def check_gradients(case, device, seed=0):
    arrays = _inputs(case, seed)
    idx = _grad_indices(case, arrays)
    tensors = _tensors(arrays, "float64", device, idx)
    assert tg.autograd.gradcheck(case.fn, tensors, eps=1e-6, atol=1e-6, rtol=1e-4)
    # Gradients land with their inputs' shapes (the engine checks it too; this is the user view).
    out = case.fn(*tensors)
    (out * tg.ones_like(out)).sum().backward()
    for i in idx:
        assert tensors[i].grad is not None, f"{case.id}: input {i} got no gradient"
        assert tensors[i].grad.shape == tensors[i].shape
    if case.second_order:
        tensors = _tensors(arrays, "float64", device, idx)
        assert tg.autograd.gradgradcheck(case.fn, tensors, eps=1e-6, atol=1e-5, rtol=1e-3)


@contextmanager
def without_overrides(device):
    backend = backend_api.get_backend(device)
    saved = backend.overrides
    backend.overrides = {}
    try:
        yield
    finally:
        backend.overrides = saved


def check_override_parity(case, device, seed=0):
    backend = backend_api.get_backend(device)
    if not set(case.ops) & set(backend.overrides or {}):
        return
    arrays = _inputs(case, seed)
    for dtype in case.dtypes:
        idx = _grad_indices(case, arrays) if case.differentiable else ()
        results = []
        for use_override in (True, False):
            tensors = _tensors(arrays, dtype, device, idx)
            if use_override:
                out = case.fn(*tensors)
            else:
                with without_overrides(device):
                    out = case.fn(*tensors)
            if idx:
                out.sum().backward()
            results.append([out] + [tensors[i].grad for i in idx])
        for a, b in zip(*results):
            np.testing.assert_allclose(a._backend.to_numpy(a._array),
                                       b._backend.to_numpy(b._array), **PARITY[dtype],
                                       err_msg=f"{case.id}: override differs from generic op")


def check_op(case, device, seed=0):
    """Everything the harness checks for one case on one device."""
    check_forward(case, device, seed)
    if case.differentiable:
        check_gradients(case, device, seed)
    check_override_parity(case, device, seed)
