"""Convolution and pooling through the op harness (tensorgrad/ops/conv.py and pool.py).

Every forward is compared with a NumPy reference written here with explicit loops over output
positions; the gradient helper ops (conv2d_input_grad, conv2d_weight_grad, avg_pool2d_backward)
against the transpose of the reference's Jacobian, built column by column. Then: tie routing
in max_pool2d, return_indices, the errors that must teach, and an optional cross-check of
values and gradients against torch.nn.functional.
"""

import itertools

import numpy as np
import pytest
from harness import OpCase, check_op

import tensorgrad as tg
from tensorgrad.errors import DTypeError, ShapeError
from tensorgrad.ops.registry import OPS, apply

F32 = {"float32": dict(rtol=1e-4, atol=1e-5)}  # sums of up to ~50 products


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


# ---- NumPy references (explicit loops; tiny sizes only) ------------------------------------------
def _conv_pads(padding, k, dilation):
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        th, tw = dilation[0] * (k[0] - 1), dilation[1] * (k[1] - 1)
        return (th // 2, th - th // 2, tw // 2, tw - tw // 2)
    ph, pw = _pair(padding)
    return (ph, ph, pw, pw)


def conv_ref(stride=1, padding=0, dilation=1, groups=1):
    sh, sw = _pair(stride)
    dh, dw = _pair(dilation)

    def ref(x, w, b=None):
        unbatched = x.ndim == 3
        x = x[None] if unbatched else x
        o_all, cg, kh, kw = w.shape
        t, bo, le, ri = _conv_pads(padding, (kh, kw), (dh, dw))
        xp = np.pad(x, ((0, 0), (0, 0), (t, bo), (le, ri)))
        oh = (xp.shape[2] - dh * (kh - 1) - 1) // sh + 1
        ow = (xp.shape[3] - dw * (kw - 1) - 1) // sw + 1
        out = np.zeros((x.shape[0], o_all, oh, ow))
        og = o_all // groups
        for n, o, r, c in itertools.product(range(x.shape[0]), range(o_all), range(oh), range(ow)):
            g0 = (o // og) * cg
            patch = xp[n, g0:g0 + cg, r * sh:r * sh + dh * (kh - 1) + 1:dh,
                       c * sw:c * sw + dw * (kw - 1) + 1:dw]
            out[n, o, r, c] = (patch * w[o]).sum() + (0 if b is None else b[o])
        return out[0] if unbatched else out
    return ref


def _ceil_out(n, k, s, d, p):
    o = -(-(n + 2 * p - d * (k - 1) - 1) // s) + 1
    return o - 1 if (o - 1) * s >= n + p else o


def _pool_out(n, k, s, d, p, ceil_mode):
    if ceil_mode:
        return _ceil_out(n, k, s, d, p)
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def maxpool_ref(kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, indices=False):
    k = _pair(kernel_size)
    s = k if stride is None else _pair(stride)
    p, d = _pair(padding), _pair(dilation)

    def ref(x):
        unbatched = x.ndim == 3
        x = x[None] if unbatched else x
        n, c, h, w = x.shape
        oh, ow = (_pool_out(h, k[0], s[0], d[0], p[0], ceil_mode),
                  _pool_out(w, k[1], s[1], d[1], p[1], ceil_mode))
        out = np.zeros((n, c, oh, ow), dtype=np.int64 if indices else x.dtype)
        for b, ch, r, q in itertools.product(range(n), range(c), range(oh), range(ow)):
            best, at = -np.inf, None
            for i, j in itertools.product(range(k[0]), range(k[1])):  # row-major: first max
                y, z = r * s[0] - p[0] + i * d[0], q * s[1] - p[1] + j * d[1]
                if 0 <= y < h and 0 <= z < w and (at is None or x[b, ch, y, z] > best):
                    best, at = x[b, ch, y, z], y * w + z
            out[b, ch, r, q] = at if indices else best
        return out[0] if unbatched else out
    return ref


def avgpool_ref(kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                divisor_override=None):
    k = _pair(kernel_size)
    s = k if stride is None else _pair(stride)
    p = _pair(padding)

    def ref(x):
        unbatched = x.ndim == 3
        x = x[None] if unbatched else x
        n, c, h, w = x.shape
        oh, ow = (_pool_out(h, k[0], s[0], 1, p[0], ceil_mode),
                  _pool_out(w, k[1], s[1], 1, p[1], ceil_mode))
        out = np.zeros((n, c, oh, ow))
        for r, q in itertools.product(range(oh), range(ow)):
            h0, w0 = r * s[0] - p[0], q * s[1] - p[1]
            h1, w1 = min(h0 + k[0], h + p[0]), min(w0 + k[1], w + p[1])
            size = (h1 - h0) * (w1 - w0)
            h0, w0, h1, w1 = max(h0, 0), max(w0, 0), min(h1, h), min(w1, w)
            div = divisor_override or (size if count_include_pad else (h1 - h0) * (w1 - w0))
            out[:, :, r, q] = x[:, :, h0:h1, w0:w1].sum(axis=(2, 3)) / div
        return out[0] if unbatched else out
    return ref


def adaptive_ref(output_size):
    def ref(x):
        h, w = x.shape[-2:]
        sizes = (output_size, output_size) if isinstance(output_size, int) else output_size
        oh, ow = (n if o is None else o for n, o in zip((h, w), sizes))
        out = np.zeros(x.shape[:-2] + (oh, ow))
        for i, j in itertools.product(range(oh), range(ow)):
            r0, r1 = (i * h) // oh, -(-((i + 1) * h) // oh)
            c0, c1 = (j * w) // ow, -(-((j + 1) * w) // ow)
            out[..., i, j] = x[..., r0:r1, c0:c1].mean(axis=(-2, -1))
        return out
    return ref


def transpose_ref(linear, in_shape):
    """g -> J^T g for a linear reference map `linear` on inputs of `in_shape`."""
    def ref(g):
        size = int(np.prod(in_shape))
        cols = [linear(np.eye(size)[i].reshape(in_shape)).ravel() for i in range(size)]
        return (np.stack(cols) @ g.ravel()).reshape(in_shape)
    return ref


def scatter_ref(in_shape):
    def ref(g, index):
        out = np.zeros(int(np.prod(in_shape)))
        for i, v in zip(index.ravel(), g.ravel()):
            out[i] += v
        return out.reshape(in_shape)
    return ref


# ---- inputs --------------------------------------------------------------------------------
def distinct(*shape, gap=0.05):
    """Values at least `gap` apart, so no window has a tie (max-pool gradchecks)."""
    def make(rng):
        n = int(np.prod(shape))
        return [(gap * rng.permutation(n) - gap * n / 2).reshape(shape)]
    return make


def conv_case(name, x, w, bias=True, **kw):
    shapes = (x, w, (w[0],)) if bias else (x, w)
    return OpCase(("conv2d",), lambda *a: tg.conv2d(*a, **kw), conv_ref(**kw), shapes, tol=F32,
                  name=f"conv2d-{name}")


def _geo(stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1), groups=1):
    return {"stride": stride, "pads": pads, "dilation": dilation, "groups": groups}


def input_grad_case(name, x_shape, w_shape, g_shape, **geo):
    attrs = dict(_geo(**geo), in_hw=x_shape[2:])

    def ref(g, w):
        conv = conv_ref(geo.get("stride", 1), _unpad(geo), geo.get("dilation", 1),
                        geo.get("groups", 1))
        return transpose_ref(lambda x: conv(x, w), x_shape)(g)
    return OpCase(("conv2d_input_grad",),
                  lambda g, w: apply(OPS["conv2d_input_grad"], (g, w), attrs), ref,
                  (g_shape, w_shape), tol=F32, name=f"conv2d_input_grad-{name}")


def weight_grad_case(name, x_shape, w_shape, g_shape, **geo):
    attrs = dict(_geo(**geo), k=w_shape[2:])

    def ref(x, g):
        conv = conv_ref(geo.get("stride", 1), _unpad(geo), geo.get("dilation", 1),
                        geo.get("groups", 1))
        return transpose_ref(lambda w: conv(x, w), w_shape)(g)
    return OpCase(("conv2d_weight_grad",),
                  lambda x, g: apply(OPS["conv2d_weight_grad"], (x, g), attrs), ref,
                  (x_shape, g_shape), tol=F32, name=f"conv2d_weight_grad-{name}")


def _unpad(geo):
    t, b, le, r = geo.get("pads", (0, 0, 0, 0))
    assert t == b and le == r, "the conv reference takes symmetric padding"
    return (t, le)


def maxpool_case(name, shape, **kw):
    return OpCase(("max_pool2d", "max_pool2d_backward"), lambda x: tg.max_pool2d(x, **kw),
                  maxpool_ref(**kw), make=distinct(*shape), name=f"max_pool2d-{name}")


def avgpool_case(name, shape, **kw):
    return OpCase(("avg_pool2d", "avg_pool2d_backward"), lambda x: tg.avg_pool2d(x, **kw),
                  avgpool_ref(**kw), (shape,), name=f"avg_pool2d-{name}")


def adaptive_case(name, shape, size, ops=("mean", "reshape")):
    return OpCase(ops, lambda x: tg.adaptive_avg_pool2d(x, size), adaptive_ref(size), (shape,),
                  name=f"adaptive_avg_pool2d-{name}")


def scatter_case(name, in_shape, overlap, make):
    attrs = {"in_shape": in_shape, "overlap": overlap}
    return OpCase(("max_pool2d_backward",),
                  lambda g, i: apply(OPS["max_pool2d_backward"], (g, i), attrs),
                  scatter_ref(in_shape), make=make, name=f"max_pool2d_backward-{name}")


def _avg_backward_case():
    attrs = {"in_hw": (5, 6), "k": (3, 2), "stride": (2, 2), "pads": (1, 2, 1, 1),
             "pad": (1, 1), "include_pad": False, "override": None, "constant": False}
    fwd = avgpool_ref((3, 2), 2, 1, ceil_mode=True, count_include_pad=False)
    return OpCase(("avg_pool2d_backward",),
                  lambda g: apply(OPS["avg_pool2d_backward"], (g,), attrs),
                  transpose_ref(fwd, (2, 2, 5, 6)), ((2, 2, 3, 4),),
                  name="avg_pool2d_backward-ceil-exclude-pad")


CASES = [
    # conv2d: every argument, forward against the loop reference, first and second order.
    conv_case("bias", (2, 3, 5, 5), (4, 3, 3, 3)),
    conv_case("no-bias-stride2", (2, 2, 6, 5), (3, 2, 3, 2), bias=False, stride=2),
    conv_case("padding-int-stride-pair", (2, 2, 5, 5), (3, 2, 3, 3), padding=1, stride=(2, 1)),
    conv_case("padding-pair", (1, 2, 4, 5), (2, 2, 3, 3), padding=(1, 2)),
    conv_case("same-odd", (2, 2, 5, 4), (3, 2, 3, 3), padding="same"),
    conv_case("same-even-asymmetric", (1, 2, 5, 5), (2, 2, 2, 4), padding="same"),
    conv_case("same-dilated", (1, 2, 6, 6), (2, 2, 3, 2), padding="same", dilation=(2, 1)),
    conv_case("valid", (2, 2, 5, 5), (2, 2, 3, 3), padding="valid"),
    conv_case("dilation", (1, 2, 7, 6), (2, 2, 3, 2), dilation=2, padding=1),
    conv_case("groups", (2, 4, 5, 5), (6, 2, 3, 3), groups=2),
    conv_case("depthwise", (2, 3, 5, 5), (6, 1, 3, 3), groups=3, padding=1),
    conv_case("unbatched", (3, 5, 5), (2, 3, 3, 3)),
    conv_case("1x1", (2, 3, 4, 4), (2, 3, 1, 1)),
    conv_case("kernel-fills-input", (2, 2, 3, 3), (2, 2, 3, 3)),
    conv_case("stride-skips-rows", (1, 2, 7, 7), (2, 2, 2, 2), stride=3),
    # the gradient ops on their own, against J^T of the reference
    input_grad_case("basic", (2, 3, 5, 5), (4, 3, 3, 3), (2, 4, 3, 3)),
    input_grad_case("strided-padded-dilated-groups", (1, 4, 6, 5), (4, 2, 2, 3), (1, 4, 3, 2),
                    stride=(2, 2), pads=(1, 1, 0, 0), dilation=(2, 1), groups=2),
    weight_grad_case("basic", (2, 3, 5, 5), (4, 3, 3, 3), (2, 4, 3, 3)),
    weight_grad_case("strided-padded-dilated-groups", (1, 4, 6, 5), (4, 2, 2, 3), (1, 4, 3, 2),
                     stride=(2, 2), pads=(1, 1, 0, 0), dilation=(2, 1), groups=2),
    # max_pool2d (no ties: gradcheck needs a unique max per window)
    maxpool_case("k2", (2, 2, 4, 6), kernel_size=2),
    maxpool_case("k3-s2-p1", (2, 2, 5, 5), kernel_size=3, stride=2, padding=1),
    maxpool_case("overlapping", (1, 2, 4, 5), kernel_size=3, stride=1),
    maxpool_case("ceil", (1, 2, 5, 6), kernel_size=2, ceil_mode=True),
    maxpool_case("ceil-padded", (1, 2, 6, 5), kernel_size=3, stride=2, padding=1, ceil_mode=True),
    maxpool_case("ceil-drops-window-in-pad", (1, 2, 5, 5), kernel_size=2, stride=2, padding=1,
                 ceil_mode=True),
    maxpool_case("dilation", (1, 2, 6, 6), kernel_size=(2, 3), stride=(1, 2), dilation=(2, 1)),
    maxpool_case("unbatched", (2, 4, 4), kernel_size=2),
    OpCase(("max_pool2d_indices",),
           lambda x: tg.max_pool2d(x, 3, 2, 1, ceil_mode=True, return_indices=True)[1],
           maxpool_ref(3, 2, 1, ceil_mode=True, indices=True), make=distinct(2, 2, 6, 5),
           differentiable=False, name="max_pool2d-indices"),
    scatter_case("repeats-accumulate", (2, 3, 4), True,
                 lambda rng: [rng.uniform(-2, 2, (2, 2, 3)), rng.integers(0, 24, (2, 2, 3))]),
    scatter_case("unique", (2, 3, 4), False,
                 lambda rng: [rng.uniform(-2, 2, (2, 5)), rng.permutation(24)[:10].reshape(2, 5)]),
    # avg_pool2d
    avgpool_case("k2", (2, 2, 4, 6), kernel_size=2),
    avgpool_case("k3-s2-p1-include-pad", (2, 2, 5, 5), kernel_size=3, stride=2, padding=1),
    avgpool_case("k3-s2-p1-exclude-pad", (2, 2, 5, 5), kernel_size=3, stride=2, padding=1,
                 count_include_pad=False),
    avgpool_case("ceil-include-pad", (1, 2, 6, 5), kernel_size=3, stride=2, padding=1,
                 ceil_mode=True),
    avgpool_case("ceil-exclude-pad", (1, 2, 6, 5), kernel_size=3, stride=2, padding=1,
                 ceil_mode=True, count_include_pad=False),
    avgpool_case("ceil-drops-window-in-pad", (1, 2, 5, 5), kernel_size=2, stride=2, padding=1,
                 ceil_mode=True),
    avgpool_case("ceil-no-pad", (1, 2, 5, 5), kernel_size=2, ceil_mode=True),
    avgpool_case("divisor-override", (1, 2, 5, 4), kernel_size=(3, 2), stride=1, padding=1,
                 divisor_override=4),
    avgpool_case("overlapping-unbatched", (2, 4, 5), kernel_size=(2, 3), stride=1),
    _avg_backward_case(),
    # adaptive_avg_pool2d: block means when sizes divide, pooling matrices otherwise
    adaptive_case("divisible", (2, 2, 6, 4), (3, 2)),
    adaptive_case("global", (2, 3, 5, 4), 1),
    adaptive_case("non-divisible", (2, 2, 7, 5), (3, 2), ops=("matmul",)),
    adaptive_case("upsampling", (1, 2, 3, 2), (5, 3), ops=("matmul",)),
    adaptive_case("none-keeps-size", (1, 2, 5, 4), (None, 3), ops=("matmul",)),
    adaptive_case("unbatched", (2, 6, 6), 4, ops=("matmul",)),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_op(case, device):
    check_op(case, device)


# ---- max_pool2d: ties, indices, accumulation --------------------------------------------------
def test_max_pool_ties_route_to_the_first_max(device):
    x = tg.tensor([[[[1.0, 3.0, 3.0, 0.0],
                     [3.0, 2.0, 0.0, 3.0],
                     [5.0, 5.0, 1.0, 1.0],
                     [5.0, 5.0, 1.0, 1.0]]]], device=device, requires_grad=True)
    out, idx = tg.max_pool2d(x, 2, return_indices=True)
    assert out.tolist() == [[[[3.0, 3.0], [5.0, 1.0]]]]
    assert idx.tolist() == [[[[1, 2], [8, 10]]]]
    assert idx.dtype == tg.int64
    out.sum().backward()
    assert x.grad.tolist() == [[[[0, 1, 1, 0], [0, 0, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]]]


def test_max_pool_overlapping_windows_accumulate(device):
    # Every 2x2 window of a 3x3 image with stride 1 has its max at the centre.
    x = tg.tensor([[[[0.0, 1.0, 0.0], [1.0, 9.0, 1.0], [0.0, 1.0, 0.0]]]], device=device,
                  requires_grad=True)
    tg.max_pool2d(x, 2, stride=1).sum().backward()
    assert x.grad.tolist() == [[[[0, 0, 0], [0, 4, 0], [0, 0, 0]]]]


def test_max_pool_padding_is_minus_infinity(device):
    x = -tg.ones(1, 1, 2, 2, device=device)
    assert tg.max_pool2d(x, 2, padding=1).tolist() == [[[[-1.0] * 2] * 2]]


def test_max_pool_propagates_nan(device):
    x = tg.tensor([[[[1.0, float("nan")], [3.0, 2.0]]]], device=device)
    out, idx = tg.max_pool2d(x, 2, return_indices=True)
    assert np.isnan(out.item()) and idx.item() == 1


def test_pooling_keeps_dtype_and_device(device):
    x = tg.randn(1, 2, 4, 4, device=device)
    for out in (tg.max_pool2d(x, 2), tg.avg_pool2d(x, 2), tg.adaptive_avg_pool2d(x, 3),
                tg.conv2d(x, tg.randn(3, 2, 3, 3, device=device))):
        assert out.dtype == tg.float32 and str(out.device) == str(x.device)


def test_conv_second_order_through_the_weight(device):
    # d/dw of |d loss/dx|^2 mixes conv2d_input_grad and conv2d_weight_grad; gradgradcheck in
    # the harness covers it for the conv2d cases, this checks create_graph end to end.
    x = tg.randn(1, 2, 4, 4, dtype=tg.float64, device=device, requires_grad=True)
    w = tg.randn(2, 2, 3, 3, dtype=tg.float64, device=device, requires_grad=True)

    def f(w):
        (gx,) = tg.autograd.grad(tg.conv2d(x, w, padding=1).pow(2).sum(), x, create_graph=True)
        return (gx * gx).sum()
    assert tg.autograd.gradcheck(f, (w,), eps=1e-6, atol=1e-6, rtol=1e-4)


# ---- errors that teach ------------------------------------------------------------------------
def _conv_error(x_shape, w_shape, **kw):
    with pytest.raises(ShapeError) as e:
        tg.conv2d(tg.zeros(*x_shape), tg.zeros(*w_shape), **kw)
    return str(e.value)


def test_channel_mismatch_names_shapes_counts_and_hint():
    msg = _conv_error((8, 1, 28, 28), (6, 3, 5, 5))
    assert msg.startswith("conv2d:")
    assert "(8, 1, 28, 28)" in msg and "(6, 3, 5, 5)" in msg
    assert "expects 3 input channels (C_in/groups=3 × groups=1)" in msg
    assert "has 1 channel at dim 1" in msg
    assert "hint: a weight of shape (6, 1, 5, 5) fits" in msg


def test_channels_last_input_gets_a_permute_hint():
    msg = _conv_error((2, 28, 28, 3), (6, 3, 5, 5))
    assert "has 28 channels" in msg and "permute(0, 3, 1, 2)" in msg


def test_groups_must_divide_channels():
    msg = _conv_error((1, 5, 6, 6), (4, 2, 3, 3), groups=2)
    assert "groups=2" in msg and "5 channels" in msg and "hint:" in msg
    msg = _conv_error((1, 4, 6, 6), (3, 2, 3, 3), groups=2)
    assert "groups=2 must divide the 3 output channels" in msg
    with pytest.raises(ValueError, match="groups must be a positive int"):
        tg.conv2d(tg.zeros(1, 4, 6, 6), tg.zeros(4, 4, 3, 3), groups=0)


def test_wrong_ranks():
    msg = _conv_error((28, 28), (6, 1, 5, 5))
    assert "3-D (C, H, W) or 4-D (N, C, H, W)" in msg and "(28, 28)" in msg and "hint:" in msg
    msg = _conv_error((1, 1, 8, 8), (6, 1, 5))
    assert "4-D weight" in msg and "(6, 1, 5)" in msg
    with pytest.raises(ShapeError, match="max_pool2d: expected a 3-D"):
        tg.max_pool2d(tg.zeros(4, 4), 2)


def test_kernel_larger_than_padded_input():
    msg = _conv_error((1, 1, 4, 4), (2, 1, 5, 5))
    assert "kernel (5, 5) is larger than the padded input (4, 4)" in msg and "hint:" in msg
    msg = _conv_error((1, 1, 4, 4), (2, 1, 3, 3), dilation=2)
    assert "spans (5, 5)" in msg
    assert tg.conv2d(tg.zeros(1, 1, 4, 4), tg.zeros(2, 1, 5, 5), padding=1).shape == (1, 2, 2, 2)
    with pytest.raises(ShapeError, match="output size .* is too small"):
        tg.max_pool2d(tg.zeros(1, 1, 1, 1), 3)


def test_other_argument_errors():
    x, w = tg.zeros(1, 2, 5, 5), tg.zeros(3, 2, 3, 3)
    with pytest.raises(ValueError, match="not supported for strided"):
        tg.conv2d(x, w, stride=2, padding="same")
    with pytest.raises(ValueError, match="invalid padding string"):
        tg.conv2d(x, w, padding="full")
    with pytest.raises(ShapeError, match=r"bias must have shape \(3,\)"):
        tg.conv2d(x, w, tg.zeros(2))
    with pytest.raises(DTypeError, match="share a dtype"):
        tg.conv2d(x, w.double())
    with pytest.raises(DTypeError, match="not implemented for int64"):
        tg.conv2d(x.long(), w.long())
    with pytest.raises(ValueError, match="pad should be at most half"):
        tg.max_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError, match="pad should be at most half"):
        tg.avg_pool2d(x, 3, padding=2)
    with pytest.raises(ValueError, match="output_size"):
        tg.adaptive_avg_pool2d(x, 0)


# ---- optional cross-check against PyTorch --------------------------------------------------
def _vs_torch(torch, ours, theirs, shapes, seed=0):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s) for s in shapes]
    tt = [torch.tensor(a, requires_grad=True) for a in arrays]
    gg = [tg.tensor(a, requires_grad=True) for a in arrays]
    t_out, g_out = theirs(*tt), ours(*gg)
    np.testing.assert_allclose(g_out.detach().numpy(), t_out.detach().numpy(), rtol=1e-10,
                               atol=1e-12)
    cot = rng.standard_normal(tuple(t_out.shape))
    (t_out * torch.tensor(cot)).sum().backward()
    (g_out * tg.tensor(cot)).sum().backward()
    for a, b in zip(tt, gg):
        np.testing.assert_allclose(b.grad.numpy(), a.grad.numpy(), rtol=1e-10, atol=1e-12)


CONV_CONFIGS = [dict(), dict(stride=2), dict(padding=(1, 2)), dict(padding="same"),
                dict(dilation=2, padding=1), dict(stride=(2, 1), dilation=(1, 2), padding=(2, 1))]
POOL_CONFIGS = [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
                dict(kernel_size=3, stride=2, ceil_mode=True), dict(kernel_size=2, stride=1),
                dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 1), ceil_mode=True),
                dict(kernel_size=2, stride=2, padding=1, ceil_mode=True)]


@pytest.mark.parametrize("kw", CONV_CONFIGS, ids=str)
def test_conv_matches_torch_if_installed(kw):
    torch = pytest.importorskip("torch")
    nnf = torch.nn.functional
    _vs_torch(torch, lambda x, w, b: tg.conv2d(x, w, b, **kw),
              lambda x, w, b: nnf.conv2d(x, w, b, **kw), [(2, 3, 7, 6), (4, 3, 2, 3), (4,)])
    _vs_torch(torch, lambda x, w: tg.conv2d(x, w, groups=2, **kw),
              lambda x, w: nnf.conv2d(x, w, groups=2, **kw), [(2, 4, 6, 6), (6, 2, 3, 2)])


@pytest.mark.parametrize("kw", POOL_CONFIGS, ids=str)
def test_pooling_matches_torch_if_installed(kw):
    torch = pytest.importorskip("torch")
    nnf = torch.nn.functional
    _vs_torch(torch, lambda x: tg.max_pool2d(x, **kw), lambda x: nnf.max_pool2d(x, **kw),
              [(2, 3, 7, 8)])
    x = np.random.default_rng(1).standard_normal((2, 3, 7, 8))
    np.testing.assert_array_equal(
        tg.max_pool2d(tg.tensor(x), return_indices=True, **kw)[1].numpy(),
        nnf.max_pool2d(torch.tensor(x), return_indices=True, **kw)[1].numpy())
    for include in (True, False):
        _vs_torch(torch, lambda x: tg.avg_pool2d(x, count_include_pad=include, **kw),  # noqa: B023
                  lambda x: nnf.avg_pool2d(x, count_include_pad=include, **kw),  # noqa: B023
                  [(2, 3, 7, 8)])


@pytest.mark.parametrize("size", [1, 3, (2, 4), (None, 3), (5, 9)], ids=str)
def test_adaptive_avg_pool_matches_torch_if_installed(size):
    torch = pytest.importorskip("torch")
    _vs_torch(torch, lambda x: tg.adaptive_avg_pool2d(x, size),
              lambda x: torch.nn.functional.adaptive_avg_pool2d(x, size), [(2, 3, 7, 8)])
