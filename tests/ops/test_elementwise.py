"""Unary math and activations through the op harness."""

import numpy as np
import pytest
from harness import OpCase, check_op

import tensorgrad as tg

S = (3, 4)


def _np_sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _away_from_zero(rng):
    # Kinked ops (abs, relu, sign) are checked away from the kink: finite differences
    # straddling 0 measure the average slope, not the derivative.
    x = rng.uniform(0.1, 2.0, size=S) * rng.choice([-1, 1], size=S)
    return [x]


def _clamp_inputs(rng):
    x = rng.uniform(-2, 2, size=S)
    x[np.abs(np.abs(x) - 1) < 0.05] = 0.3  # keep away from the bounds
    return [x]


CASES = [
    OpCase(("exp",), tg.exp, np.exp, (S,)),
    OpCase(("log",), tg.log, np.log, (S,), low=0.2, high=3),
    OpCase(("log1p",), tg.log1p, np.log1p, (S,), low=-0.5, high=3),
    OpCase(("expm1",), tg.expm1, np.expm1, (S,)),
    OpCase(("sqrt",), tg.sqrt, np.sqrt, (S,), low=0.2, high=3),
    OpCase(("rsqrt",), tg.rsqrt, lambda x: 1 / np.sqrt(x), (S,), low=0.2, high=3),
    OpCase(("sin",), tg.sin, np.sin, (S,)),
    OpCase(("cos",), tg.cos, np.cos, (S,)),
    OpCase(("tanh",), tg.tanh, np.tanh, (S,)),
    OpCase(("sigmoid",), tg.sigmoid, _np_sigmoid, (S,), low=-6, high=6),
    OpCase(("neg",), lambda x: -x, np.negative, (S,)),
    OpCase(("reciprocal",), tg.reciprocal, np.reciprocal, (S,), low=0.3, high=3),
    OpCase(("square",), tg.square, np.square, (S,)),
    OpCase(("abs",), tg.abs, np.abs, make=_away_from_zero, second_order=True),
    OpCase(("sign",), tg.sign, np.sign, make=_away_from_zero),
    OpCase(("relu",), tg.relu, lambda x: np.maximum(x, 0), make=_away_from_zero),
    OpCase(("clamp",), lambda x: tg.clamp(x, -1, 1), lambda x: np.clip(x, -1, 1),
           make=_clamp_inputs),
    OpCase(("clamp",), lambda x: x.clamp(min=0.5), lambda x: np.maximum(x, 0.5),
           make=_clamp_inputs, name="clamp-min-only"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_op(case, device):
    check_op(case, device)


def test_integer_input_gives_default_float(device):
    x = tg.tensor([1, 2, 3], device=device)
    assert tg.exp(x).dtype == tg.float32
    assert tg.sqrt(x).dtype == tg.float32


def test_sigmoid_is_finite_for_large_inputs(device):
    x = tg.tensor([-1e4, -50.0, 0.0, 50.0, 1e4], device=device)
    y = tg.sigmoid(x).tolist()
    assert y[0] == 0.0 and y[-1] == 1.0 and y[2] == 0.5


def test_gradients_at_kinks_follow_pytorch(device):
    x = tg.tensor([0.0, 0.0, 0.0], device=device, requires_grad=True)
    (x.relu().sum() + x.abs().sum()).backward()
    assert x.grad.tolist() == [0.0, 0.0, 0.0]
    x = tg.tensor([-1.0, 1.0, 0.5], device=device, requires_grad=True)
    x.clamp(-1, 1).sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 1.0]  # gradient 1 at the bounds
