"""Conv2d and the pooling modules: forward against NumPy, gradients by gradcheck, default
init, state_dict keys, reprs (as PyTorch prints them) and ShapeErrors naming the layer."""

import math

import numpy as np
import pytest

import tensorgrad as tg
from tensorgrad import nn
from tensorgrad.autograd import gradcheck


def _np(t):
    return t.detach().cpu().numpy()


def _t(a, device="cpu"):
    return tg.tensor(np.asarray(a), device=device)


def conv2d_ref(x, w, b=None, stride=(1, 1), dilation=(1, 1), groups=1):
    """Direct loops over the output: x already padded, (N, C, H, W); w (O, C/g, kH, kW)."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    oh = (h - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((n, o, oh, ow))
    per_group = o // groups
    for oc in range(o):
        g = oc // per_group
        xs = x[:, g * cg:(g + 1) * cg]
        for i in range(oh):
            for j in range(ow):
                rows = i * stride[0] + dilation[0] * np.arange(kh)
                cols = j * stride[1] + dilation[1] * np.arange(kw)
                patch = xs[:, :, rows][:, :, :, cols]
                out[:, oc, i, j] = (patch * w[oc]).sum(axis=(1, 2, 3))
    return out if b is None else out + b.reshape(1, -1, 1, 1)


def _pad(x, top, bottom, left, right, mode="constant"):
    return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), mode=mode)


CONFIGS = [
    dict(),
    dict(stride=2, padding=1),
    dict(padding=(2, 1), dilation=(2, 1)),
    dict(groups=2, bias=False),
    dict(kernel_size=(2, 3), stride=(1, 2), padding=(1, 0)),
]


@pytest.mark.parametrize("cfg", CONFIGS)
def test_conv2d_forward_matches_numpy(device, cfg):
    cfg = dict(cfg)
    k = cfg.pop("kernel_size", 3)
    conv = nn.Conv2d(4, 6, k, device=device, **cfg)
    x = np.random.default_rng(0).standard_normal((2, 4, 7, 8)).astype(np.float32)
    ph, pw = conv.padding
    ref = conv2d_ref(_pad(x, ph, ph, pw, pw), _np(conv.weight),
                     None if conv.bias is None else _np(conv.bias), conv.stride,
                     conv.dilation, conv.groups)
    out = conv(_t(x, device))
    assert out.shape == ref.shape and out.device == tg.device(device)
    np.testing.assert_allclose(_np(out), ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode,np_mode", [("reflect", "reflect"), ("replicate", "edge"),
                                          ("circular", "wrap")])
def test_conv2d_padding_modes(mode, np_mode):
    conv = nn.Conv2d(2, 3, 3, padding=(1, 2), padding_mode=mode)
    x = np.random.default_rng(1).standard_normal((2, 2, 5, 6)).astype(np.float32)
    ref = conv2d_ref(_pad(x, 1, 1, 2, 2, np_mode), _np(conv.weight), _np(conv.bias))
    np.testing.assert_allclose(_np(conv(_t(x))), ref, rtol=1e-4, atol=1e-5)
    assert repr(conv).endswith(f"padding=(1, 2), padding_mode={mode})")


def test_conv2d_same_and_valid_padding():
    x = np.random.default_rng(2).standard_normal((1, 2, 5, 6)).astype(np.float32)
    # An even kernel pads asymmetrically: PyTorch puts the extra row/column after.
    same = nn.Conv2d(2, 3, (2, 4), padding="same")
    ref = conv2d_ref(_pad(x, 0, 1, 1, 2), _np(same.weight), _np(same.bias))
    out = same(_t(x))
    assert out.shape == (1, 3, 5, 6)
    np.testing.assert_allclose(_np(out), ref, rtol=1e-4, atol=1e-5)
    reflect = nn.Conv2d(2, 3, (2, 4), padding="same", padding_mode="reflect")
    ref = conv2d_ref(_pad(x, 0, 1, 1, 2, "reflect"), _np(reflect.weight), _np(reflect.bias))
    np.testing.assert_allclose(_np(reflect(_t(x))), ref, rtol=1e-4, atol=1e-5)
    valid = nn.Conv2d(2, 3, 3, padding="valid")
    assert valid(_t(x)).shape == (1, 3, 3, 4)
    assert repr(same) == "Conv2d(2, 3, kernel_size=(2, 4), stride=(1, 1), padding=same)"


def test_conv2d_unbatched_input():
    conv = nn.Conv2d(2, 3, 3, padding=1)
    x = tg.randn(2, 5, 5)
    out = conv(x)
    assert out.shape == (3, 5, 5)
    np.testing.assert_allclose(_np(out), _np(conv(x.unsqueeze(0)))[0], rtol=1e-6)


@pytest.mark.parametrize("cfg", [dict(padding=1, stride=2), dict(groups=2, dilation=2),
                                 dict(padding=1, padding_mode="reflect")])
def test_conv2d_gradcheck(cfg):
    conv = nn.Conv2d(2, 4, 2, dtype=tg.float64, **cfg)
    x = tg.randn(2, 2, 5, 4, dtype=tg.float64, requires_grad=True)
    assert gradcheck(lambda x, w, b: conv(x), (x, conv.weight, conv.bias))


def test_conv2d_default_init_and_state_dict():
    tg.manual_seed(3)
    conv = nn.Conv2d(16, 32, 3)
    bound = 1 / math.sqrt(16 * 9)
    w = _np(conv.weight).ravel()
    assert np.all(np.abs(w) <= bound) and np.abs(w).max() > 0.95 * bound
    assert w.var() == pytest.approx(bound ** 2 / 3, rel=0.08)
    b = _np(nn.Conv2d(16, 3000, 3).bias)
    assert np.all(np.abs(b) <= bound) and b.var() == pytest.approx(bound ** 2 / 3, rel=0.1)
    assert list(conv.state_dict()) == ["weight", "bias"]
    assert conv.weight.shape == (32, 16, 3, 3)
    grouped = nn.Conv2d(4, 6, (3, 5), groups=2, bias=False)
    assert grouped.weight.shape == (6, 2, 3, 5) and list(grouped.state_dict()) == ["weight"]
    assert nn.Conv2d(2, 3, 3, dtype=tg.float64).weight.dtype == tg.float64


def test_conv2d_reprs_match_pytorch():
    assert repr(nn.Conv2d(1, 8, 3)) == "Conv2d(1, 8, kernel_size=(3, 3), stride=(1, 1))"
    assert repr(nn.Conv2d(1, 8, 3, stride=2, padding=1, dilation=2, groups=1, bias=False)) == (
        "Conv2d(1, 8, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), dilation=(2, 2), "
        "bias=False)")
    assert repr(nn.Conv2d(4, 8, (1, 3), groups=4)) == (
        "Conv2d(4, 8, kernel_size=(1, 3), stride=(1, 1), groups=4)")


def test_conv2d_shape_errors_name_the_layer():
    conv = nn.Conv2d(3, 8, 3)
    name = "Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1))"
    with pytest.raises(tg.ShapeError) as info:
        conv(tg.zeros(2, 4, 9, 9))
    msg = str(info.value)
    assert f"{name} expects input (N, 3, H, W) or (3, H, W); got (2, 4, 9, 9)" in msg
    assert "hint:" in msg and "Conv2d(4, 8" in msg
    with pytest.raises(tg.ShapeError, match=r"got \(2, 9, 9, 3\)[\s\S]*permute"):
        conv(tg.zeros(2, 9, 9, 3))
    with pytest.raises(tg.ShapeError, match=r"got \(9, 9\)"):
        conv(tg.zeros(9, 9))
    with pytest.raises(tg.ShapeError, match=r"got \(1, 3, 2, 5\)[\s\S]*height 2"):
        conv(tg.zeros(1, 3, 2, 5))
    with pytest.raises(tg.ShapeError, match="unsqueeze"):
        nn.Conv2d(1, 2, 3)(tg.zeros(4, 9, 9))


def test_conv2d_bad_arguments():
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.Conv2d(3, 6, 3, groups=2)
    with pytest.raises(ValueError, match="padding_mode"):
        nn.Conv2d(3, 6, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match="strided"):
        nn.Conv2d(3, 6, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="padding string"):
        nn.Conv2d(3, 6, 3, padding="full")


# ---- pooling --------------------------------------------------------------------------------
def _pool_ref(x, k, s, reduce):
    n, c, h, w = x.shape
    oh, ow = (h - k) // s + 1, (w - k) // s + 1
    out = np.empty((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = reduce(x[:, :, i * s:i * s + k, j * s:j * s + k], axis=(2, 3))
    return out


@pytest.mark.parametrize("k,s", [(2, None), (3, 1), (3, 2)])
def test_max_and_avg_pool_match_numpy(device, k, s):
    x = np.random.default_rng(4).standard_normal((2, 3, 7, 6)).astype(np.float32)
    stride = k if s is None else s
    mx = nn.MaxPool2d(k, s)(_t(x, device))
    np.testing.assert_allclose(_np(mx), _pool_ref(x, k, stride, np.max), rtol=1e-6)
    av = nn.AvgPool2d(k, s)(_t(x, device))
    np.testing.assert_allclose(_np(av), _pool_ref(x, k, stride, np.mean), rtol=1e-5,
                               atol=1e-6)


def test_pool_options_are_passed_through():
    x = tg.arange(16.0).reshape(1, 1, 4, 4)
    out, idx = nn.MaxPool2d(2, return_indices=True)(x)
    assert out.tolist() == [[[[5.0, 7.0], [13.0, 15.0]]]]
    assert idx.tolist() == [[[[5, 7], [13, 15]]]]
    assert nn.MaxPool2d(3, 2, ceil_mode=True)(x).shape == (1, 1, 2, 2)
    assert nn.MaxPool2d(2, padding=1)(x).shape == (1, 1, 3, 3)
    ones = tg.ones(1, 1, 2, 2)
    # Zero padding counts in the mean unless count_include_pad=False.
    assert nn.AvgPool2d(2, 1, padding=1)(ones)[0, 0, 0, 0].item() == 0.25
    assert nn.AvgPool2d(2, 1, padding=1, count_include_pad=False)(ones)[0, 0, 0, 0].item() == 1
    assert nn.AvgPool2d(2, divisor_override=1)(ones).item() == 4.0
    assert nn.MaxPool2d(2)(tg.ones(3, 4, 4)).shape == (3, 2, 2)


def test_adaptive_avg_pool(device):
    x = np.random.default_rng(5).standard_normal((2, 3, 6, 4)).astype(np.float32)
    out = nn.AdaptiveAvgPool2d(1)(_t(x, device))
    np.testing.assert_allclose(_np(out), x.mean(axis=(2, 3), keepdims=True), rtol=1e-5)
    out = nn.AdaptiveAvgPool2d((3, 2))(_t(x, device))
    ref = x.reshape(2, 3, 3, 2, 2, 2).mean(axis=(3, 5))
    np.testing.assert_allclose(_np(out), ref, rtol=1e-5, atol=1e-6)


def test_pool_gradcheck():
    x = tg.randn(1, 2, 5, 5, dtype=tg.float64, requires_grad=True)
    assert gradcheck(nn.MaxPool2d(2, 1), (x,))
    assert gradcheck(nn.AvgPool2d(3, 2, padding=1), (x,))
    assert gradcheck(nn.AdaptiveAvgPool2d((2, 3)), (x,))


def test_pool_reprs_state_and_errors():
    assert repr(nn.MaxPool2d(2)) == (
        "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)")
    assert repr(nn.MaxPool2d((3, 3), 1, 1)) == (
        "MaxPool2d(kernel_size=(3, 3), stride=1, padding=1, dilation=1, ceil_mode=False)")
    assert repr(nn.AvgPool2d(2)) == "AvgPool2d(kernel_size=2, stride=2, padding=0)"
    assert repr(nn.AdaptiveAvgPool2d((1, 1))) == "AdaptiveAvgPool2d(output_size=(1, 1))"
    for pool in (nn.MaxPool2d(2), nn.AvgPool2d(2), nn.AdaptiveAvgPool2d(1)):
        assert list(pool.state_dict()) == []
        with pytest.raises(tg.ShapeError, match=type(pool).__name__ + r"[\s\S]*got \(4, 4\)"):
            pool(tg.zeros(4, 4))
