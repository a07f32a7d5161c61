"""Linear, Bilinear, Embedding, Flatten, Unflatten, Identity, Dropout, GradientReversal:
forward against NumPy, gradients by gradcheck, default init, state_dict keys, reprs, errors."""

import math

import numpy as np
import pytest

import tensorgrad as tg
from tensorgrad import nn
from tensorgrad.autograd import gradcheck


def _np(t):
    return t.detach().cpu().numpy()


def _t(a, device="cpu", **kw):
    return tg.tensor(np.asarray(a), device=device, **kw)


def _check_uniform(values, bound):
    """Samples of U(-bound, bound): inside the bounds, reaching near them, the right moments."""
    v = _np(values).ravel().astype(np.float64)
    assert np.all(np.abs(v) <= bound * (1 + 1e-6))
    assert np.abs(v).max() > 0.95 * bound
    n = v.size
    assert abs(v.mean()) < 5 * bound / math.sqrt(3 * n)
    assert v.var() == pytest.approx(bound ** 2 / 3, rel=0.08)


# ---- Linear ---------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4), (4,)])
def test_linear_forward_matches_numpy(device, shape):
    lin = nn.Linear(4, 3, device=device)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    out = lin(_t(x, device))
    ref = x @ _np(lin.weight).T + _np(lin.bias)
    assert out.shape == ref.shape and out.device == tg.device(device)
    np.testing.assert_allclose(_np(out), ref, rtol=1e-5, atol=1e-6)


def test_linear_without_bias(device):
    lin = nn.Linear(4, 3, bias=False, device=device)
    assert lin.bias is None and list(lin.state_dict()) == ["weight"]
    x = np.ones((2, 4), np.float32)
    np.testing.assert_allclose(_np(lin(_t(x, device))), x @ _np(lin.weight).T, rtol=1e-6)
    assert repr(lin) == "Linear(in_features=4, out_features=3, bias=False)"


def test_linear_gradcheck():
    lin = nn.Linear(3, 2, dtype=tg.float64)
    x = tg.randn(4, 3, dtype=tg.float64, requires_grad=True)
    assert gradcheck(lambda x, w, b: lin(x), (x, lin.weight, lin.bias))


def test_linear_default_init_is_pytorchs_uniform():
    tg.manual_seed(1)
    lin = nn.Linear(400, 300)
    _check_uniform(lin.weight, 1 / math.sqrt(400))
    _check_uniform(nn.Linear(400, 3000).bias, 1 / math.sqrt(400))
    assert lin.weight.shape == (300, 400) and lin.bias.shape == (300,)
    assert lin.weight.requires_grad and lin.weight.is_leaf


def test_linear_state_dict_repr_and_factory_kwargs():
    lin = nn.Linear(4, 3, dtype=tg.float64)
    assert list(lin.state_dict()) == ["weight", "bias"]
    assert [n for n, _ in lin.named_parameters()] == ["weight", "bias"]
    assert lin.weight.dtype == tg.float64 and lin.bias.dtype == tg.float64
    assert repr(lin) == "Linear(in_features=4, out_features=3, bias=True)"
    assert repr(nn.Sequential(lin)) == (
        "Sequential(\n  (0): Linear(in_features=4, out_features=3, bias=True)\n)")


def test_linear_shape_error_names_layer_shapes_and_fix():
    lin = nn.Linear(784, 10)
    with pytest.raises(tg.ShapeError) as info:
        lin(tg.zeros(64, 512))
    msg = str(info.value)
    assert "Linear(in_features=784, out_features=10, bias=True) expects input (..., 784); " \
           "got (64, 512)" in msg
    assert "hint:" in msg and "Linear(512, 10)" in msg
    assert isinstance(info.value, ValueError) and isinstance(info.value, RuntimeError)
    with pytest.raises(tg.ShapeError, match=r"got \(64, 1, 28, 28\)[\s\S]*flatten"):
        lin(tg.zeros(64, 1, 28, 28))
    with pytest.raises(tg.ShapeError, match=r"got \(\)"):
        lin(tg.tensor(1.0))


@pytest.mark.parametrize("layer", [nn.Linear(2, 2), nn.Conv2d(1, 1, 1), nn.MaxPool2d(2),
                                   nn.AvgPool2d(2), nn.AdaptiveAvgPool2d(1),
                                   nn.BatchNorm1d(2), nn.BatchNorm2d(1), nn.LayerNorm(2)])
@pytest.mark.parametrize("value", [[[1.0, 2.0]], np.ones((1, 2), dtype=np.float32)])
def test_layers_say_a_list_or_array_input_must_be_a_tensor(layer, value):
    name = type(layer).__name__
    with pytest.raises(TypeError, match=rf"{name}: input must be a Tensor, got "
                       rf"{type(value).__name__}\n  hint: wrap it with tg.tensor"):
        layer(value)


# ---- Bilinear -------------------------------------------------------------------------------
def test_bilinear_forward_gradcheck_init_repr(device):
    bil = nn.Bilinear(2, 3, 4, device=device)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((5, 2)), rng.standard_normal((5, 3))
    out = bil(_t(a, device, dtype=tg.float32), _t(b, device, dtype=tg.float32))
    ref = np.einsum("ni,oij,nj->no", a, _np(bil.weight), b) + _np(bil.bias)
    np.testing.assert_allclose(_np(out), ref, rtol=1e-5, atol=1e-5)
    assert repr(bil) == "Bilinear(in1_features=2, in2_features=3, out_features=4, bias=True)"
    assert list(bil.state_dict()) == ["weight", "bias"]
    with pytest.raises(tg.ShapeError, match="input2"):
        bil(tg.zeros(5, 2, device=device), tg.zeros(5, 2, device=device))

    big = nn.Bilinear(100, 5, 40)
    _check_uniform(big.weight, 0.1)
    b64 = nn.Bilinear(2, 3, 2, dtype=tg.float64)
    x1 = tg.randn(3, 2, dtype=tg.float64, requires_grad=True)
    x2 = tg.randn(3, 3, dtype=tg.float64, requires_grad=True)
    assert gradcheck(lambda x1, x2, w, b: b64(x1, x2), (x1, x2, b64.weight, b64.bias))


# ---- Embedding ------------------------------------------------------------------------------
def test_embedding_forward_and_init(device):
    emb = nn.Embedding(1000, 50, device=device)
    w = _np(emb.weight)
    assert abs(w.mean()) < 0.01 and w.std() == pytest.approx(1.0, rel=0.03)
    idx = np.array([[0, 5, 5], [999, 1, 2]])
    out = emb(_t(idx, device))
    assert out.shape == (2, 3, 50)
    np.testing.assert_array_equal(_np(out), w[idx])


def test_embedding_padding_idx_zero_row_and_no_gradient():
    emb = nn.Embedding(6, 3, padding_idx=2)
    np.testing.assert_array_equal(_np(emb.weight)[2], 0)
    assert np.all(_np(emb.weight)[[0, 1, 3]] != 0)
    emb(tg.tensor([[2, 0, 2], [0, 1, 2]])).sum().backward()
    g = _np(emb.weight.grad)
    np.testing.assert_array_equal(g[2], 0)
    np.testing.assert_array_equal(g[0], 2)
    np.testing.assert_array_equal(g[1], 1)
    assert repr(emb) == "Embedding(6, 3, padding_idx=2)"
    assert repr(nn.Embedding(6, 3)) == "Embedding(6, 3)"
    assert nn.Embedding(6, 3, padding_idx=-1).padding_idx == 5
    with pytest.raises(ValueError, match="padding_idx"):
        nn.Embedding(6, 3, padding_idx=6)


def test_embedding_gradcheck_and_from_pretrained():
    emb = nn.Embedding(5, 2, dtype=tg.float64)
    idx = tg.tensor([1, 3, 1])
    assert gradcheck(lambda w: emb(idx), (emb.weight,))
    table = tg.arange(6.0).reshape(3, 2)
    frozen = nn.Embedding.from_pretrained(table)
    assert not frozen.weight.requires_grad
    assert frozen(tg.tensor([2])).tolist() == [[4.0, 5.0]]
    assert nn.Embedding.from_pretrained(table, freeze=False).weight.requires_grad
    assert list(frozen.state_dict()) == ["weight"]


# ---- Flatten, Unflatten, Identity --------------------------------------------------------------
def test_flatten_unflatten_identity(device):
    x = np.arange(120.0, dtype=np.float32).reshape(2, 3, 4, 5)
    t = _t(x, device)
    np.testing.assert_array_equal(_np(nn.Flatten()(t)), x.reshape(2, 60))
    np.testing.assert_array_equal(_np(nn.Flatten(0, 2)(t)), x.reshape(24, 5))
    np.testing.assert_array_equal(_np(nn.Flatten(-2)(t)), x.reshape(2, 3, 20))
    back = nn.Unflatten(1, (3, 4, 5))(nn.Flatten()(t))
    np.testing.assert_array_equal(_np(back), x)
    assert nn.Identity(3, foo=1)(t) is t
    assert repr(nn.Flatten()) == "Flatten(start_dim=1, end_dim=-1)"
    assert repr(nn.Unflatten(1, [3, 4])) == "Unflatten(dim=1, unflattened_size=(3, 4))"
    assert repr(nn.Identity()) == "Identity()"
    assert list(nn.Flatten().state_dict()) == []


def test_flatten_gradient():
    x = tg.randn(2, 3, 2, dtype=tg.float64, requires_grad=True)
    assert gradcheck(lambda x: nn.Flatten()(x) * tg.arange(6.0, dtype=tg.float64), (x,))


# ---- Dropout --------------------------------------------------------------------------------
def test_dropout_train_zeroes_p_and_scales_the_rest(device):
    drop = nn.Dropout(0.3)
    x = tg.ones(200, 100, device=device, requires_grad=True)
    out = drop(x)
    y = _np(out)
    zero = y == 0
    assert zero.mean() == pytest.approx(0.3, abs=0.02)
    np.testing.assert_allclose(y[~zero], 1 / 0.7, rtol=1e-6)
    out.sum().backward()
    np.testing.assert_allclose(_np(x.grad), np.where(zero, 0, 1 / 0.7), rtol=1e-6)


def test_dropout_eval_is_identity_and_repr():
    drop = nn.Dropout(0.5).eval()
    x = tg.randn(10, 10)
    np.testing.assert_array_equal(_np(drop(x)), _np(x))
    drop.train()
    assert (_np(drop(x)) == 0).any()
    assert repr(drop) == "Dropout(p=0.5, inplace=False)"
    assert repr(nn.Dropout(0.1, inplace=True)) == "Dropout(p=0.1, inplace=True)"
    np.testing.assert_array_equal(_np(nn.Dropout(1.0)(x)), 0)
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout(1.5)


def test_dropout_inplace_writes_into_input():
    x = tg.ones(50, 50)
    out = nn.Dropout(0.5, inplace=True)(x)
    assert out is x and (_np(x) == 0).any()


# ---- GradientReversal -----------------------------------------------------------------------
@pytest.mark.parametrize("lambda_", [1.0, 0.25])
def test_gradient_reversal(device, lambda_):
    layer = nn.GradientReversal(lambda_)
    x = tg.randn(3, 4, device=device, requires_grad=True)
    out = layer(x)
    np.testing.assert_array_equal(_np(out), _np(x))
    w = tg.randn(3, 4, device=device)
    (out * w).sum().backward()
    np.testing.assert_allclose(_np(x.grad), -lambda_ * _np(w), rtol=1e-6)
    assert repr(layer) == f"GradientReversal(lambda_={lambda_})"
    assert list(layer.state_dict()) == []
