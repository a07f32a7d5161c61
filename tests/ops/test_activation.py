"""Activation ops and erf/erfc through the op harness, plus accuracy and stability checks."""

import math

import numpy as np
import pytest
from harness import OpCase, check_op

import tensorgrad as tg
from tensorgrad.ops import activation as A

S = (3, 4)
_erf = np.vectorize(math.erf)
_erfc = np.vectorize(math.erfc)


def _np_sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _np_gelu(x):
    return 0.5 * x * (1 + _erf(x / math.sqrt(2)))


def _np_gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def _np_softplus(x, beta=1.0, threshold=20.0):
    return np.where(beta * x > threshold, x, np.log1p(np.exp(beta * x)) / beta)


def _away_from_zero(rng):
    # Kinked ops are checked away from the kink: finite differences there see the mean slope.
    x = rng.uniform(0.1, 2.0, size=S) * rng.choice([-1, 1], size=S)
    return [x]


def _hardtanh_inputs(rng):
    x = rng.uniform(-2, 2, size=S)
    x[np.abs(np.abs(x) - 1) < 0.05] = 0.3  # away from the bounds
    return [x]


def _erf_inputs(rng):
    # Each of Cody's three ranges: |x| <= 0.46875, up to 4, beyond 4.
    return [np.array([[-0.3, 0.1, 0.4, -0.45], [0.6, -1.5, 2.5, 3.9], [-4.2, 4.5, 5.0, -0.01]])]


def _softplus_inputs(rng):
    # beta=2, threshold=1: the linear branch starts at x = 0.5; stay off the switch.
    x = rng.uniform(-2, 2, size=S)
    x[np.abs(x - 0.5) < 0.1] = -0.7
    return [x]


CASES = [
    OpCase(("erf",), tg.erf, _erf, make=_erf_inputs, name="erf-ranges"),
    OpCase(("erf",), lambda x: x.erf(), _erf, (S,), name="erf-method"),
    OpCase(("erfc",), tg.erfc, _erfc, make=_erf_inputs, name="erfc-ranges"),
    OpCase(("gelu",), A.gelu, _np_gelu, (S,), low=-4, high=4),
    OpCase(("gelu",), lambda x: A.gelu(x, approximate="tanh"), _np_gelu_tanh, (S,),
           low=-4, high=4, name="gelu-tanh"),
    OpCase(("silu",), A.silu, lambda x: x * _np_sigmoid(x), (S,), low=-5, high=5),
    OpCase(("softplus",), A.softplus, _np_softplus, (S,), low=-5, high=5),
    OpCase(("softplus",), lambda x: A.softplus(x, beta=2.0, threshold=1.0),
           lambda x: _np_softplus(x, 2.0, 1.0), make=_softplus_inputs, name="softplus-threshold"),
    OpCase(("logsigmoid",), A.logsigmoid, lambda x: np.log(_np_sigmoid(x)), (S,), low=-6, high=6),
    OpCase(("leaky_relu",), lambda x: A.leaky_relu(x, 0.2),
           lambda x: np.where(x > 0, x, 0.2 * x), make=_away_from_zero),
    OpCase(("elu",), lambda x: A.elu(x, alpha=1.5),
           lambda x: np.where(x > 0, x, 1.5 * np.expm1(x)), make=_away_from_zero),
    OpCase(("hardtanh",), A.hardtanh, lambda x: np.clip(x, -1, 1), make=_hardtanh_inputs),
    # Deliberately not the derivative of the identity: applied twice with lambdas 2 and 0.5 the
    # gradient is (-2)(-0.5) = 1, which finite differences can check (the single case is below).
    OpCase(("gradient_reversal",), lambda x: A.gradient_reversal(A.gradient_reversal(x, 2.0), 0.5),
           lambda x: x, (S,), name="gradient_reversal-twice"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_op(case, device):
    check_op(case, device)


def test_erf_matches_math_erf_to_1e14():
    x = np.concatenate([np.linspace(-7, 7, 20001), [0.0, 0.46875, -0.46875, 4.0, -4.0, 30.0]])
    got = tg.erf(tg.tensor(x)).numpy()
    np.testing.assert_allclose(got, _erf(x), rtol=0, atol=1e-14)
    gotc = tg.erfc(tg.tensor(x)).numpy()
    np.testing.assert_allclose(gotc, _erfc(x), rtol=1e-13, atol=1e-300)


def test_erf_special_values():
    x = tg.tensor([float("nan"), float("inf"), -float("inf"), 0.0], dtype=tg.float64)
    out = tg.erf(x).tolist()
    assert math.isnan(out[0]) and out[1:] == [1.0, -1.0, 0.0]
    assert tg.erfc(tg.tensor([-40.0, 40.0])).tolist() == [2.0, 0.0]


def test_erf_float16_and_int_inputs():
    y = tg.erf(tg.tensor([0.5, -1.0], dtype=tg.float16))
    assert y.dtype == tg.float16
    np.testing.assert_allclose(y.numpy().astype(float), _erf([0.5, -1.0]), atol=1e-3)
    assert tg.erf(tg.tensor([1, 2])).dtype == tg.float32


def test_gelu_values_against_the_exact_formula():
    x = np.linspace(-10, 10, 2001)
    got = A.gelu(tg.tensor(x)).numpy()
    np.testing.assert_allclose(got, _np_gelu(x), rtol=1e-13, atol=1e-15)
    # The negative tail stays accurate relative to its size (erfc, not 1 + erf).
    tail = A.gelu(tg.tensor([-12.0], dtype=tg.float64)).item()
    assert tail == pytest.approx(-12.0 * 0.5 * math.erfc(12 / math.sqrt(2)), rel=1e-12)


def test_gelu_rejects_unknown_approximation():
    with pytest.raises(ValueError, match="approximate"):
        A.gelu(tg.zeros(2), approximate="fast")


def test_softplus_and_logsigmoid_are_finite_for_large_inputs(device):
    x = tg.tensor([-1e3, -50.0, 0.0, 50.0, 1e3], dtype=tg.float64, device=device,
                  requires_grad=True)
    np.testing.assert_allclose(A.softplus(x).tolist(), [0.0, math.exp(-50), math.log(2), 50, 1e3],
                               rtol=1e-12)
    y = A.logsigmoid(x)
    np.testing.assert_allclose(y.tolist(), [-1e3, -50.0, -math.log(2), -math.exp(-50), 0.0],
                               rtol=1e-12)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.tolist(), [1.0, 1.0, 0.5, math.exp(-50), 0.0], rtol=1e-12,
                               atol=1e-15)


def test_gradients_at_kinks_follow_pytorch(device):
    x = tg.tensor([0.0, 0.0, 1.0, -1.0], device=device, requires_grad=True)
    A.leaky_relu(x, 0.1).sum().backward()
    np.testing.assert_allclose(x.grad.tolist(), [0.1, 0.1, 1.0, 0.1], rtol=1e-6)
    x = tg.tensor([0.0, 2.0], device=device, requires_grad=True)
    A.elu(x, alpha=0.5).sum().backward()
    assert x.grad.tolist() == [0.5, 1.0]
    x = tg.tensor([-1.0, 1.0, 0.5, 6.0, 3.0], device=device, requires_grad=True)
    (A.hardtanh(x[:3]).sum() + A.relu6(x[3:]).sum()).backward()
    assert x.grad.tolist() == [0.0, 0.0, 1.0, 0.0, 1.0]  # 0 at the bounds, unlike clamp


def test_elu_large_inputs_do_not_overflow():
    x = tg.tensor([1e4, -1e4], requires_grad=True)
    y = A.elu(x)
    assert y.tolist() == [1e4, -1.0]
    y.sum().backward()
    assert x.grad.tolist() == [1.0, 0.0]


def test_gradient_reversal_flips_and_scales(device):
    x = tg.tensor([1.0, -2.0, 3.0], device=device, requires_grad=True)
    y = A.gradient_reversal(x, lambda_=0.25)
    assert y.tolist() == x.tolist()
    (y * tg.tensor([1.0, 2.0, 4.0], device=device)).sum().backward()
    assert x.grad.tolist() == [-0.25, -0.5, -1.0]


def test_inplace_forms_write_into_the_tensor():
    x = tg.tensor([-2.0, 3.0])
    assert A.leaky_relu_(x, 0.5) is x and x.tolist() == [-1.0, 3.0]
    A.hardtanh_(x)
    assert x.tolist() == [-1.0, 1.0]
    w = tg.tensor([-1.0, 2.0], requires_grad=True)
    h = w * 1
    A.elu_(h)
    h.sum().backward()
    np.testing.assert_allclose(w.grad.tolist(), [math.exp(-1), 1.0], rtol=1e-6)


def test_against_torch_if_present():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = np.random.default_rng(0).uniform(-6, 6, size=200)
    tx = torch.tensor(x)
    pairs = [(A.gelu, torch.nn.functional.gelu), (A.silu, torch.nn.functional.silu),
             (A.softplus, torch.nn.functional.softplus), (tg.erf, torch.erf),
             (A.logsigmoid, torch.nn.functional.logsigmoid), (tg.erfc, torch.erfc),
             (lambda t: A.gelu(t, "tanh"), lambda t: F.gelu(t, approximate="tanh"))]
    for ours, theirs in pairs:
        np.testing.assert_allclose(ours(tg.tensor(x)).numpy(), theirs(tx).numpy(), rtol=1e-12,
                                   atol=1e-14)
