"""gradcheck / gradgradcheck: True on correct gradients, a precise GraphError on wrong ones."""

import re

import numpy as np
import pytest

import tensorgrad as tg
from tensorgrad.autograd import Function, gradcheck, gradgradcheck
from tensorgrad.errors import DTypeError, GraphError


def _x(device, values=(0.3, -1.2, 0.8), requires_grad=True, dtype=tg.float64):
    return tg.tensor(list(values), dtype=dtype, device=device, requires_grad=requires_grad)


class WrongSin(Function):
    """sin whose gradient is 1.5x too large at element 1 only."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.sin()

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        scale = tg.tensor([1.0, 1.5, 1.0], dtype=x.dtype, device=x.device)
        return g * x.cos() * scale


class DetachedCube(Function):
    """x ** 3 with a correct first derivative that is cut from the graph (wrong second)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 3 * x.detach() ** 2


# ---- correct functions ------------------------------------------------------------------------
def test_gradcheck_true_on_correct_functions(device):
    x, y = _x(device), _x(device, (0.5, 2.0, -0.7))
    assert gradcheck(lambda a: (a.sin() * a).sum(), (x,)) is True
    assert gradcheck(lambda a, b: a * b.exp() - a / (b * b + 1), (x, y)) is True
    assert gradcheck(lambda a, b: (a.tanh() + b, a * b), (x, y)) is True  # two outputs
    assert gradcheck(lambda a, k: a ** k, (x, 3)) is True  # a non-tensor argument
    w = tg.randn(3, 2, dtype=tg.float64, device=device, requires_grad=True)
    assert gradcheck(lambda a, m: (a @ m).sigmoid(), (x, w)) is True


def test_gradcheck_ignores_inputs_without_grad(device):
    x, c = _x(device), _x(device, requires_grad=False, dtype=tg.float32)
    assert gradcheck(lambda a, b: a * b.to(tg.float64), (x, c))


def test_gradgradcheck_true_on_correct_functions(device):
    x, y = _x(device), _x(device, (0.5, 2.0, -0.7))
    assert gradgradcheck(lambda a: (a.exp() * a).sum(), (x,)) is True
    assert gradgradcheck(lambda a, b: a * b.sin() + a ** 3, (x, y)) is True
    assert gradgradcheck(lambda a: DetachedCube.apply(a) * 0 + a ** 3, (x,)) is True


def test_fast_mode_true_on_correct_functions(device):
    x = tg.randn(5, 4, dtype=tg.float64, device=device, requires_grad=True)
    assert gradcheck(lambda a: (a.tanh() * a).sum(dim=0), (x,), fast_mode=True)
    assert gradgradcheck(lambda a: a.sin() * a, (x,), fast_mode=True)


def test_large_inputs_switch_to_random_directions(device):
    x = tg.randn(100, dtype=tg.float64, device=device, requires_grad=True)
    assert gradcheck(lambda a: a.exp() * a, (x,), max_full=50)
    with pytest.raises(GraphError, match="random directions"):
        gradcheck(lambda a: WrongSin.apply(a[:3]) + a[:3], (x,), max_full=50)


# ---- wrong functions ----------------------------------------------------------------------------
def _values(message):
    found = re.search(r"analytical (\S+), numerical (\S+)", message)
    return float(found.group(1)), float(found.group(2))


def test_gradcheck_names_the_worst_element(device):
    x = _x(device)
    with pytest.raises(GraphError) as info:
        gradcheck(WrongSin.apply, (x,))
    msg = str(info.value)
    assert "output 0" in msg and "input 0" in msg
    assert "d out0[1] / d in0[1]" in msg
    analytical, numerical = _values(msg)
    np.testing.assert_allclose(analytical, 1.5 * np.cos(-1.2), rtol=1e-9)
    np.testing.assert_allclose(numerical, np.cos(-1.2), rtol=1e-6)


def test_gradcheck_names_the_right_input(device):
    x, y = _x(device), _x(device, (0.5, 2.0, -0.7))
    with pytest.raises(GraphError) as info:
        gradcheck(lambda a, b: a * 2 + WrongSin.apply(b), (x, y))
    msg = str(info.value)
    assert "input 1" in msg and "d out0[1] / d in1[1]" in msg
    analytical, numerical = _values(msg)
    np.testing.assert_allclose(analytical, 1.5 * np.cos(2.0), rtol=1e-9)


def test_gradgradcheck_catches_a_wrong_second_derivative(device):
    x = _x(device)
    assert gradcheck(DetachedCube.apply, (x,))  # first order is right
    with pytest.raises(GraphError, match="Jacobian mismatch"):
        gradgradcheck(DetachedCube.apply, (x,))
    assert gradgradcheck(DetachedCube.apply, (x,), raise_exception=False) is False


def test_raise_exception_false_returns_false(device):
    x = _x(device)
    assert gradcheck(WrongSin.apply, (x,), raise_exception=False) is False
    assert gradcheck(WrongSin.apply, (x,), fast_mode=True, raise_exception=False) is False


def test_fast_mode_catches_a_wrong_gradient(device):
    x = _x(device)
    with pytest.raises(GraphError, match=r"u·J·v analytical .* vs numerical"):
        gradcheck(WrongSin.apply, (x,), fast_mode=True)


def test_inputs_are_restored_after_the_check(device):
    x = _x(device)
    gradcheck(lambda a: a.sin(), (x,))
    gradcheck(lambda a: a.sin(), (x,), fast_mode=True)
    np.testing.assert_array_equal(x.detach().numpy(force=True), [0.3, -1.2, 0.8])
    assert x.grad is None


def test_float32_inputs_are_refused(device):
    x = _x(device, dtype=tg.float32)
    with pytest.raises(DTypeError, match="float64"):
        gradcheck(lambda a: a.sin(), (x,))
    with pytest.raises(DTypeError, match="input 1"):
        gradgradcheck(lambda a, b: a * b, (_x(device), x))


def test_nan_in_the_jacobian_never_passes():
    # NaN compares False with everything, so a naive `err > tol` check would let it through.
    x = tg.randn(3, dtype=tg.float64, requires_grad=True)
    with pytest.raises(tg.GraphError, match="Jacobian mismatch"):
        tg.autograd.gradcheck(lambda x: x.sum() * float("nan"), (x,))
    assert not tg.autograd.gradcheck(lambda x: x.sum() * float("nan"), (x,), fast_mode=True,
                                     raise_exception=False)
