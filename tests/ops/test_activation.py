"""Activation ops and erf/erfc through the op harness, plus accuracy and stability checks."""

import math

import numpy as np
import pytest
from harness import OpCase, check_op

import tensorgrad as tg
from tensorgrad.ops import activation as A
from tensorgrad.ops.registry import apply

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


def _np_gelu_prime(x):
    return 0.5 * (1 + _erf(x / math.sqrt(2))) + x * np.exp(-x * x / 2) / math.sqrt(2 * math.pi)


def _np_gelu_tanh_prime(x):
    k, c = math.sqrt(2 / math.pi), 0.044715
    t = np.tanh(k * (x + c * x ** 3))
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * c * x * x)


def _g_and(make_second):
    """An incoming gradient and a second input (activation input or output) of shape S."""
    def make(rng):
        return [rng.uniform(-2, 2, size=S), make_second(rng)]
    return make


def _relu_out(rng):
    return np.maximum(rng.uniform(0.1, 2.0, size=S) * rng.choice([-1, 1], size=S), 0)


def _backward(op, **attrs):
    return lambda g, y: apply(op, (g, y), attrs)


def _bias_inputs(rng):
    # x + bias kept away from 0, so relu's kink is not between the finite differences.
    x, b = rng.uniform(-2, 2, size=S), rng.uniform(-1, 1, size=S[-1:])
    z = x + b
    x[np.abs(z) < 0.1] += 0.3
    return [x, b]


_NP_ACTS = {"relu": lambda z: np.maximum(z, 0), "sigmoid": _np_sigmoid, "tanh": np.tanh,
            "silu": lambda z: z * _np_sigmoid(z), "gelu": _np_gelu, "gelu_tanh": _np_gelu_tanh}


def _bias_act_case(activation):
    return OpCase(("bias_act",), lambda x, b: A.bias_act(x, b, activation),
                  lambda x, b: _NP_ACTS[activation](x + b), make=_bias_inputs,
                  name=f"bias_act-{activation}")


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
    # The backward ops the activations' VJPs call (fused on the GPU), with their own VJPs.
    OpCase(("relu_backward",), _backward(A.RELU_BACKWARD), lambda g, y: g * (y > 0),
           make=_g_and(_relu_out), grad=(0,), name="relu_backward"),
    OpCase(("sigmoid_backward",), _backward(A.SIGMOID_BACKWARD), lambda g, y: g * y * (1 - y),
           make=_g_and(lambda rng: rng.uniform(0.05, 0.95, size=S)), name="sigmoid_backward"),
    OpCase(("tanh_backward",), _backward(A.TANH_BACKWARD), lambda g, y: g * (1 - y * y),
           make=_g_and(lambda rng: rng.uniform(-0.95, 0.95, size=S)), name="tanh_backward"),
    OpCase(("silu_backward",), _backward(A.SILU_BACKWARD),
           lambda g, x: g * _np_sigmoid(x) * (1 + x * (1 - _np_sigmoid(x))),
           make=_g_and(lambda rng: rng.uniform(-5, 5, size=S)), name="silu_backward"),
    OpCase(("gelu_backward",), _backward(A.GELU_BACKWARD, approximate="none"),
           lambda g, x: g * _np_gelu_prime(x),
           make=_g_and(lambda rng: rng.uniform(-4, 4, size=S)), name="gelu_backward"),
    OpCase(("gelu_backward",), _backward(A.GELU_BACKWARD, approximate="tanh"),
           lambda g, x: g * _np_gelu_tanh_prime(x),
           make=_g_and(lambda rng: rng.uniform(-4, 4, size=S)), name="gelu_backward-tanh"),
] + [_bias_act_case(a) for a in _NP_ACTS]


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


def test_bias_act_is_the_two_ops_apart(device):
    x = tg.randn(5, 7, device=device, dtype=tg.float64, requires_grad=True)
    b = tg.randn(7, device=device, dtype=tg.float64, requires_grad=True)
    for activation, act in [("relu", tg.relu), ("sigmoid", tg.sigmoid), ("tanh", tg.tanh),
                            ("silu", A.silu), ("gelu", A.gelu),
                            ("gelu_tanh", lambda z: A.gelu(z, approximate="tanh"))]:
        fused = A.bias_act(x, b, activation)
        apart = act(x + b)
        np.testing.assert_allclose(fused.tolist(), apart.tolist(), rtol=1e-14, atol=1e-15)
        gx, gb = tg.autograd.grad(fused.sum(), [x, b])
        ax, ab = tg.autograd.grad(apart.sum(), [x, b])
        np.testing.assert_allclose(gx.tolist(), ax.tolist(), rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(gb.tolist(), ab.tolist(), rtol=1e-13, atol=1e-15)


def test_bias_act_rejects_bad_input():
    x = tg.zeros(2, 3)
    with pytest.raises(ValueError, match="activation must be one of"):
        A.bias_act(x, tg.zeros(3), "swish")
    with pytest.raises(tg.ShapeError, match=r"bias must have shape \(C,\)"):
        A.bias_act(x, tg.zeros(2), "relu")
    with pytest.raises(tg.DTypeError, match="one floating dtype"):
        A.bias_act(x, tg.zeros(3, dtype=tg.float64), "relu")
    with pytest.raises(TypeError, match="bias"):
        A.bias_act(x, [0.0, 0.0, 0.0], "relu")


def test_activation_gradients_unchanged_by_the_backward_ops():
    # gelu/silu VJPs now go through gelu_backward/silu_backward: the same numbers as the
    # formulas they replaced, and third order still works (their VJPs are tensor ops).
    x = tg.tensor(np.linspace(-4, 4, 9), requires_grad=True)
    for f, prime in [(A.gelu, _np_gelu_prime), (A.silu, lambda v: _np_sigmoid(v) * (
            1 + v * (1 - _np_sigmoid(v)))),
                     (lambda v: A.gelu(v, approximate="tanh"), _np_gelu_tanh_prime)]:
        (g,) = tg.autograd.grad(f(x).sum(), [x], create_graph=True)
        np.testing.assert_allclose(g.tolist(), prime(x.detach().numpy()), rtol=1e-12)
        (h,) = tg.autograd.grad(g.sum(), [x], create_graph=True)
        (third,) = tg.autograd.grad(h.sum(), [x])
        assert np.all(np.isfinite(third.numpy()))
