"""BatchNorm1d/2d and LayerNorm: forward against NumPy in train and eval mode, PyTorch's
running-stat update rule (unbiased variance, momentum, cumulative average), gradients by
gradcheck, state_dict keys, reprs and ShapeErrors naming the layer."""

import numpy as np
import pytest

import tensorgrad as tg
from tensorgrad import nn
from tensorgrad.autograd import gradcheck


def _np(t):
    return t.detach().cpu().numpy()


def _t(a, device="cpu", dtype=tg.float32):
    return tg.tensor(np.asarray(a), device=device, dtype=dtype)


def _bn_ref(x, mean, var, weight, bias, eps):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    y = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    return y * weight.reshape(shape) + bias.reshape(shape)


def _batch_stats(x):
    dims = (0,) + tuple(range(2, x.ndim))
    n = x.size // x.shape[1]
    return x.mean(axis=dims), x.var(axis=dims), x.var(axis=dims) * n / (n - 1)


def _randomize_affine(bn, rng):
    with tg.no_grad():
        bn.weight.copy_(_t(rng.uniform(0.5, 2, bn.num_features), bn.weight.device))
        bn.bias.copy_(_t(rng.standard_normal(bn.num_features), bn.weight.device))


@pytest.mark.parametrize("cls,shape", [(nn.BatchNorm1d, (8, 3)), (nn.BatchNorm1d, (4, 3, 5)),
                                       (nn.BatchNorm2d, (4, 3, 5, 2))])
def test_batchnorm_train_forward_and_running_stats(device, cls, shape):
    rng = np.random.default_rng(0)
    bn = cls(3, device=device)
    _randomize_affine(bn, rng)
    w, b = _np(bn.weight), _np(bn.bias)
    run_mean, run_var = np.zeros(3), np.ones(3)
    for step in range(3):
        x = (rng.standard_normal(shape) * 2 + 1).astype(np.float32)
        out = bn(_t(x, device))
        mean, var, unbiased = _batch_stats(x.astype(np.float64))
        np.testing.assert_allclose(_np(out), _bn_ref(x, mean, var, w, b, 1e-5),
                                   rtol=1e-4, atol=1e-5)
        # PyTorch's rule: running = (1 - momentum) * running + momentum * batch statistic,
        # with the unbiased batch variance.
        run_mean = 0.9 * run_mean + 0.1 * mean
        run_var = 0.9 * run_var + 0.1 * unbiased
        np.testing.assert_allclose(_np(bn.running_mean), run_mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(_np(bn.running_var), run_var, rtol=1e-5, atol=1e-6)
        assert bn.num_batches_tracked.item() == step + 1
    assert bn.num_batches_tracked.dtype == tg.int64


def test_batchnorm_eval_uses_running_stats_and_leaves_them(device):
    rng = np.random.default_rng(1)
    bn = nn.BatchNorm2d(2, eps=1e-3, device=device)
    _randomize_affine(bn, rng)
    bn(_t(rng.standard_normal((4, 2, 3, 3)) * 3, device))
    bn.eval()
    mean, var = _np(bn.running_mean), _np(bn.running_var)
    x = rng.standard_normal((2, 2, 3, 3)).astype(np.float32)
    out = bn(_t(x, device))
    ref = _bn_ref(x, mean, var, _np(bn.weight), _np(bn.bias), 1e-3)
    np.testing.assert_allclose(_np(out), ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(_np(bn.running_mean), mean)
    np.testing.assert_array_equal(_np(bn.running_var), var)
    assert bn.num_batches_tracked.item() == 1
    assert bn(_t(x[:1], device)).shape == (1, 2, 3, 3)  # a batch of one is fine in eval


def test_batchnorm_momentum_none_is_cumulative_average():
    rng = np.random.default_rng(2)
    bn = nn.BatchNorm1d(3, momentum=None)
    means, unbiased = [], []
    for _ in range(4):
        x = rng.standard_normal((5, 3)) * rng.uniform(0.5, 3) + rng.standard_normal()
        bn(_t(x))
        m, _, u = _batch_stats(x)
        means.append(m)
        unbiased.append(u)
    np.testing.assert_allclose(_np(bn.running_mean), np.mean(means, axis=0), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(_np(bn.running_var), np.mean(unbiased, axis=0), rtol=1e-5)
    assert repr(bn) == ("BatchNorm1d(3, eps=1e-05, momentum=None, affine=True, "
                        "track_running_stats=True)")


def test_batchnorm_without_running_stats_or_affine():
    bn = nn.BatchNorm1d(3, affine=False, track_running_stats=False)
    assert bn.running_mean is None and bn.weight is None
    assert list(bn.state_dict()) == [] and list(bn.parameters()) == []
    x = np.random.default_rng(3).standard_normal((6, 3)).astype(np.float32)
    mean, var, _ = _batch_stats(x)
    ref = _bn_ref(x, mean, var, np.ones(3), np.zeros(3), 1e-5)
    np.testing.assert_allclose(_np(bn(_t(x))), ref, rtol=1e-4, atol=1e-5)
    bn.eval()  # no running stats: eval normalizes with the batch statistics too
    np.testing.assert_allclose(_np(bn(_t(x))), ref, rtol=1e-4, atol=1e-5)


def test_batchnorm_state_dict_init_and_reload():
    bn = nn.BatchNorm2d(4)
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var",
                                     "num_batches_tracked"]
    assert [n for n, _ in bn.named_parameters()] == ["weight", "bias"]
    assert bn.weight.tolist() == [1.0] * 4 and bn.bias.tolist() == [0.0] * 4
    assert bn.running_mean.tolist() == [0.0] * 4 and bn.running_var.tolist() == [1.0] * 4
    bn(tg.randn(3, 4, 2, 2))
    other = nn.BatchNorm2d(4)
    other.load_state_dict(bn.state_dict())
    np.testing.assert_array_equal(_np(other.running_var), _np(bn.running_var))
    assert other.num_batches_tracked.item() == 1
    bn.double()
    assert bn.running_mean.dtype == tg.float64 and bn.num_batches_tracked.dtype == tg.int64
    bn.reset_running_stats()
    assert bn.num_batches_tracked.item() == 0 and bn.running_var.tolist() == [1.0] * 4


def test_batchnorm_loads_an_old_checkpoint_without_num_batches_tracked():
    # PyTorch < 0.4.1 saved no num_batches_tracked; PyTorch loads such a checkpoint in strict
    # mode and keeps the module's own count.
    source = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    source(tg.randn(4, 2))
    old = {k: v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    model[1].num_batches_tracked.fill_(7)
    assert model.load_state_dict(old) == ([], [])
    np.testing.assert_array_equal(_np(model[1].running_mean), _np(source[1].running_mean))
    assert model[1].num_batches_tracked.item() == 7
    assert "1.num_batches_tracked" not in old  # the caller's dict is left alone
    del old["1.running_mean"]
    with pytest.raises(RuntimeError, match=r"missing keys \['1.running_mean'\]"):
        model.load_state_dict(old)
    untracked = nn.BatchNorm1d(3, track_running_stats=False)
    assert untracked.load_state_dict({"weight": tg.ones(3), "bias": tg.zeros(3)}) == ([], [])


@pytest.mark.parametrize("cls,shape", [(nn.BatchNorm1d, (3, 2)), (nn.BatchNorm1d, (2, 2, 3)),
                                       (nn.BatchNorm2d, (2, 2, 2, 2))])
@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_gradcheck(cls, shape, training):
    bn = cls(2, dtype=tg.float64)
    _randomize_affine(bn, np.random.default_rng(4))
    bn(tg.randn(*shape, dtype=tg.float64))  # non-trivial running stats for eval mode
    bn.train(training)
    x = tg.randn(*shape, dtype=tg.float64, requires_grad=True)
    assert gradcheck(lambda x, w, b: bn(x), (x, bn.weight, bn.bias))


def test_batchnorm_shape_errors_name_the_layer():
    bn = nn.BatchNorm1d(64)
    name = "BatchNorm1d(64, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)"
    with pytest.raises(tg.ShapeError) as info:
        bn(tg.zeros(32, 128))
    msg = str(info.value)
    assert f"{name} expects input (N, 64) or (N, 64, L); got (32, 128)" in msg
    assert "hint:" in msg and "BatchNorm1d(128)" in msg
    with pytest.raises(tg.ShapeError, match=r"got \(2, 64, 3, 3\)[\s\S]*BatchNorm2d"):
        bn(tg.zeros(2, 64, 3, 3))
    with pytest.raises(tg.ShapeError, match=r"got \(64,\)"):
        bn(tg.zeros(64))
    with pytest.raises(tg.ShapeError, match=r"BatchNorm2d\(3, [\s\S]*\(N, 3, H, W\); got "
                                            r"\(4, 3\)[\s\S]*BatchNorm1d"):
        nn.BatchNorm2d(3)(tg.zeros(4, 3))
    assert bn.num_batches_tracked.item() == 0  # a rejected input changes no state
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn(tg.zeros(1, 64))


def test_batchnorm_cross_check_with_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    ours, theirs = nn.BatchNorm2d(3, momentum=0.3), torch.nn.BatchNorm2d(3, momentum=0.3)
    for _ in range(2):
        x = rng.standard_normal((4, 3, 2, 5)).astype(np.float32)
        np.testing.assert_allclose(_np(ours(_t(x))), theirs(torch.tensor(x)).detach().numpy(),
                                   rtol=1e-4, atol=1e-5)
    for key, value in theirs.state_dict().items():
        np.testing.assert_allclose(_np(ours.state_dict()[key]), value.numpy(), rtol=1e-5)
    assert list(ours.state_dict()) == list(theirs.state_dict())


# ---- LayerNorm ------------------------------------------------------------------------------
def _ln_ref(x, n, weight, bias, eps):
    dims = tuple(range(x.ndim - n, x.ndim))
    y = (x - x.mean(axis=dims, keepdims=True)) / np.sqrt(x.var(axis=dims, keepdims=True) + eps)
    return y * weight + bias


@pytest.mark.parametrize("normalized_shape", [4, (3, 4), [2, 3, 4]])
def test_layernorm_forward(device, normalized_shape):
    ln = nn.LayerNorm(normalized_shape, eps=1e-4, device=device)
    shape = tuple(ln.normalized_shape)
    rng = np.random.default_rng(6)
    with tg.no_grad():
        ln.weight.copy_(_t(rng.uniform(0.5, 2, shape), device))
        ln.bias.copy_(_t(rng.standard_normal(shape), device))
    x = (rng.standard_normal((2, 3, 4)) * 3 + 1).astype(np.float32)
    ref = _ln_ref(x, len(shape), _np(ln.weight), _np(ln.bias), 1e-4)
    np.testing.assert_allclose(_np(ln(_t(x, device))), ref, rtol=1e-4, atol=1e-5)


def test_layernorm_params_state_repr():
    ln = nn.LayerNorm([3, 4])
    assert ln.normalized_shape == (3, 4) and ln.weight.shape == (3, 4)
    assert ln.weight.tolist() == [[1.0] * 4] * 3 and ln.bias.tolist() == [[0.0] * 4] * 3
    assert list(ln.state_dict()) == ["weight", "bias"]
    assert repr(ln) == "LayerNorm((3, 4), eps=1e-05, elementwise_affine=True)"
    no_bias = nn.LayerNorm(4, bias=False)
    assert no_bias.bias is None and list(no_bias.state_dict()) == ["weight"]
    plain = nn.LayerNorm(4, elementwise_affine=False)
    assert list(plain.state_dict()) == []
    assert repr(plain) == "LayerNorm((4,), eps=1e-05, elementwise_affine=False)"
    x = np.random.default_rng(7).standard_normal((3, 4)).astype(np.float32)
    ref = _ln_ref(x, 1, 1.0, 0.0, 1e-5)
    np.testing.assert_allclose(_np(plain(_t(x))), ref, rtol=1e-4, atol=1e-5)


def test_layernorm_gradcheck():
    ln = nn.LayerNorm((2, 3), dtype=tg.float64)
    with tg.no_grad():
        ln.weight.copy_(tg.randn(2, 3, dtype=tg.float64))
        ln.bias.copy_(tg.randn(2, 3, dtype=tg.float64))
    x = tg.randn(2, 2, 3, dtype=tg.float64, requires_grad=True)
    assert gradcheck(lambda x, w, b: ln(x), (x, ln.weight, ln.bias))


def test_layernorm_shape_error():
    with pytest.raises(tg.ShapeError, match=r"LayerNorm\(\(3, 4\), [\s\S]*expects input "
                                            r"\(\*, 3, 4\); got \(2, 4, 3\)[\s\S]*hint"):
        nn.LayerNorm((3, 4))(tg.zeros(2, 4, 3))
    with pytest.raises(tg.ShapeError, match=r"got \(4,\)"):
        nn.LayerNorm((3, 4))(tg.zeros(4))
