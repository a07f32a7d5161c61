"""Activation modules: forward against NumPy, gradients by gradcheck, in-place variants,
reprs as PyTorch prints them, and no parameters or state."""

import math

import numpy as np
import pytest

import tensorgrad as tg
from tensorgrad import nn
from tensorgrad.autograd import gradcheck

_erf = np.vectorize(math.erf)


def _np(t):
    return t.detach().cpu().numpy()


def _softmax(x, dim):
    e = np.exp(x - x.max(axis=dim, keepdims=True))
    return e / e.sum(axis=dim, keepdims=True)


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


CASES = [
    (nn.ReLU(), lambda x: np.maximum(x, 0), "ReLU()"),
    (nn.LeakyReLU(), lambda x: np.where(x > 0, x, 0.01 * x), "LeakyReLU(negative_slope=0.01)"),
    (nn.LeakyReLU(0.2), lambda x: np.where(x > 0, x, 0.2 * x), "LeakyReLU(negative_slope=0.2)"),
    (nn.ELU(), lambda x: np.where(x > 0, x, np.expm1(x)), "ELU(alpha=1.0)"),
    (nn.ELU(0.5), lambda x: np.where(x > 0, x, 0.5 * np.expm1(x)), "ELU(alpha=0.5)"),
    (nn.GELU(), lambda x: 0.5 * x * (1 + _erf(x / math.sqrt(2))), "GELU(approximate='none')"),
    (nn.GELU("tanh"),
     lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3))),
     "GELU(approximate='tanh')"),
    (nn.SiLU(), lambda x: x * _sigmoid(x), "SiLU()"),
    (nn.Softplus(), lambda x: np.log1p(np.exp(x)), "Softplus(beta=1.0, threshold=20.0)"),
    (nn.Softplus(2.0, 1.0), lambda x: np.where(2 * x > 1, x, np.log1p(np.exp(2 * x)) / 2),
     "Softplus(beta=2.0, threshold=1.0)"),
    (nn.Sigmoid(), _sigmoid, "Sigmoid()"),
    (nn.Tanh(), np.tanh, "Tanh()"),
    (nn.Softmax(dim=1), lambda x: _softmax(x, 1), "Softmax(dim=1)"),
    (nn.Softmax(dim=-1), lambda x: _softmax(x, -1), "Softmax(dim=-1)"),
    (nn.LogSoftmax(dim=0), lambda x: np.log(_softmax(x, 0)), "LogSoftmax(dim=0)"),
    (nn.Hardtanh(), lambda x: np.clip(x, -1, 1), "Hardtanh(min_val=-1.0, max_val=1.0)"),
    (nn.Hardtanh(-2.0, 3.0), lambda x: np.clip(x, -2, 3), "Hardtanh(min_val=-2.0, max_val=3.0)"),
    (nn.ReLU6(), lambda x: np.clip(x, 0, 6), "ReLU6()"),
    (nn.LogSigmoid(), lambda x: -np.logaddexp(0, -x), "LogSigmoid()"),
]
IDS = [c[2] for c in CASES]


@pytest.mark.parametrize("module,ref,text", CASES, ids=IDS)
def test_forward_matches_numpy(device, module, ref, text):
    x = np.random.default_rng(0).standard_normal((4, 5)) * 2
    out = module(tg.tensor(x.astype(np.float32), device=device))
    assert out.shape == (4, 5) and out.device == tg.device(device)
    np.testing.assert_allclose(_np(out), ref(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("module,ref,text", CASES, ids=IDS)
def test_gradcheck_repr_and_no_state(module, ref, text):
    x = tg.tensor(np.random.default_rng(1).standard_normal((3, 4)) * 2, requires_grad=True)
    assert gradcheck(module, (x,))
    assert repr(module) == text
    assert list(module.state_dict()) == [] and list(module.parameters()) == []


@pytest.mark.parametrize("module,reference,text", [
    (nn.ReLU(inplace=True), nn.ReLU(), "ReLU(inplace=True)"),
    (nn.LeakyReLU(0.1, inplace=True), nn.LeakyReLU(0.1),
     "LeakyReLU(negative_slope=0.1, inplace=True)"),
    (nn.ELU(0.5, inplace=True), nn.ELU(0.5), "ELU(alpha=0.5, inplace=True)"),
    (nn.SiLU(inplace=True), nn.SiLU(), "SiLU(inplace=True)"),
    (nn.Hardtanh(-1.5, 1.0, inplace=True), nn.Hardtanh(-1.5, 1.0),
     "Hardtanh(min_val=-1.5, max_val=1.0, inplace=True)"),
    (nn.ReLU6(inplace=True), nn.ReLU6(), "ReLU6(inplace=True)"),
])
def test_inplace_variants_overwrite_and_stay_differentiable(module, reference, text):
    assert repr(module) == text
    x = tg.tensor([-2.0, -0.5, 0.5, 2.0])
    expected = reference(x)
    out = module(x)
    assert out is x
    np.testing.assert_allclose(_np(x), _np(expected), rtol=1e-6)
    leaf = tg.tensor([-2.0, -0.5, 0.5, 2.0], dtype=tg.float64, requires_grad=True)
    assert gradcheck(lambda v: module(v * 1.0), (leaf,))


def test_relu_inplace_on_a_leaf_that_requires_grad_raises():
    with pytest.raises(RuntimeError):
        nn.ReLU(inplace=True)(tg.ones(2, requires_grad=True))


def test_softmax_implicit_dim_warns_and_follows_pytorch():
    x = tg.randn(2, 3)
    with pytest.warns(UserWarning, match="Implicit dimension"):
        out = nn.Softmax()(x)
    np.testing.assert_allclose(_np(out), _softmax(_np(x), 1), rtol=1e-5)
    assert repr(nn.Softmax()) == "Softmax(dim=None)"


def test_gelu_rejects_unknown_approximation():
    with pytest.raises(ValueError, match="approximate"):
        nn.GELU("fast")


def test_hardtanh_bounds_and_deprecated_keywords_as_pytorch():
    with pytest.raises(ValueError, match=r"max_val \(1.0\) must be greater than min_val \(2.0\)"):
        nn.Hardtanh(2.0, 1.0)
    with pytest.warns(FutureWarning, match="min_value"):
        m = nn.Hardtanh(min_value=-3.0)
    assert (m.min_val, m.max_val) == (-3.0, 1.0)
    relu6 = nn.ReLU6()
    assert isinstance(relu6, nn.Hardtanh) and (relu6.min_val, relu6.max_val) == (0.0, 6.0)


def test_logsigmoid_is_finite_for_large_inputs():
    out = nn.LogSigmoid()(tg.tensor([-200.0, 0.0, 200.0]))
    np.testing.assert_allclose(_np(out), [-200.0, -math.log(2), 0.0], rtol=1e-6)
