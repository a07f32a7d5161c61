"""Convolution: conv2d by im2col (a strided view and one copy) and one batched matmul.

conv2d, its gradient w.r.t. the input (a transposed convolution, `conv2d_input_grad`) and
w.r.t. the weight (a correlation, `conv2d_weight_grad`) are three registered ops whose VJPs
are each other, so gradients of any order are convolutions again. The window helpers here
(`pair`, `pad_image`, `windows`, `col2im`, `out_len`) are shared with pool.py.

Layout: the columns of an image are (N, G, C/G * kH * kW, OH * OW), so the forward is
weight (G, O/G, C/G * kH * kW) @ columns, which lands in NCHW without a transpose. The
columns are kept as a residual for the weight gradient, as a hand-written im2col would.
Forwards use only `xp` (NumPy or CuPy); this module imports no backend.
"""

from ..dtypes import _FLOAT
from ..errors import DTypeError, ShapeError, op_error
from ._util import need_tensor, wrap_like
from .registry import apply, register


# ---- window geometry, shared with pool.py ---------------------------------------------------
def pair(value, name, op):
    """An int or a 1- or 2-sequence of ints as an (h, w) pair, as PyTorch's _pair."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    try:
        t = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise TypeError(f"{op}(): {name} must be an int or a pair of ints, got {value!r}") \
            from None
    if len(t) == 1:
        t = t * 2
    if len(t) != 2:
        raise ValueError(f"{op}(): {name} must be an int or a pair of ints, got {value!r}")
    return t


def out_len(n, k, stride, dilation, before, after):
    """Number of windows along one dim of size n padded by (before, after): floor mode."""
    return (n + before + after - dilation * (k - 1) - 1) // stride + 1


def pad_image(xp, x, pads, value=0):
    """x (N, C, H, W) padded by pads = (top, bottom, left, right) with `value`."""
    top, bottom, left, right = pads
    if not (top or bottom or left or right):
        return x
    n, c, h, w = x.shape
    shape = (n, c, h + top + bottom, w + left + right)
    out = xp.zeros(shape, dtype=x.dtype) if value == 0 else xp.full(shape, value, x.dtype)
    out[:, :, top:top + h, left:left + w] = x
    return out


def windows(xp, x, k, stride, dilation, out_hw):
    """The (N, C, kH, kW, OH, OW) strided view of the windows of x (N, C, H, W): no copy."""
    sn, sc, sh, sw = x.strides
    shape = tuple(x.shape[:2]) + tuple(k) + tuple(out_hw)
    strides = (sn, sc, sh * dilation[0], sw * dilation[1], sh * stride[0], sw * stride[1])
    return xp.lib.stride_tricks.as_strided(x, shape, strides)


def col2im(xp, cols, in_hw, stride, dilation, pads):
    """The adjoint of `windows`: add each window entry of cols (N, C, kH, kW, OH, OW) back
    into a zero (N, C, H, W) image. One strided slice-add per kernel offset (kH*kW Python
    steps), so overlapping windows accumulate without a scatter."""
    n, c, kh, kw, oh, ow = cols.shape
    top, bottom, left, right = pads
    h, w = in_hw
    out = xp.zeros((n, c, h + top + bottom, w + left + right), dtype=cols.dtype)
    for i in range(kh):
        r = i * dilation[0]
        rows = slice(r, r + stride[0] * (oh - 1) + 1, stride[0])
        for j in range(kw):
            q = j * dilation[1]
            out[:, :, rows, q:q + stride[1] * (ow - 1) + 1:stride[1]] += cols[:, :, i, j]
    if top or bottom or left or right:
        out = out[:, :, top:top + h, left:left + w]
    return out


# ---- the three ops ----------------------------------------------------------------------------
def _im2col(xp, x, k, stride, pads, dilation, groups, out_hw):
    n, c = x.shape[:2]
    win = windows(xp, pad_image(xp, x, pads), k, stride, dilation, out_hw)
    return win.reshape(n, groups, c // groups * k[0] * k[1], out_hw[0] * out_hw[1])


def _conv2d(xp, x, w, b=None, *, stride, pads, dilation, groups):
    o, cg, kh, kw = w.shape
    n, _, h, wd = x.shape
    out_hw = (out_len(h, kh, stride[0], dilation[0], pads[0], pads[1]),
              out_len(wd, kw, stride[1], dilation[1], pads[2], pads[3]))
    cols = _im2col(xp, x, (kh, kw), stride, pads, dilation, groups, out_hw)
    out = xp.matmul(w.reshape(groups, o // groups, cg * kh * kw), cols)
    out = out.reshape((n, o) + out_hw)
    if b is not None:
        out += b.reshape(1, o, 1, 1)
    return out, cols


def _conv2d_vjp(ctx, g, **geo):
    x, w = ctx.inputs[:2]
    need = ctx.needs_input_grad
    gx = _input_grad(g, w, tuple(x.shape[2:]), geo) if need[0] else None
    gw = _weight_grad(x, g, tuple(w.shape[2:]), geo, wrap_like(ctx, ctx.res)) if need[1] else None
    if len(need) == 2:
        return gx, gw
    return gx, gw, (g.sum((0, 2, 3)) if need[2] else None)


CONV2D = register("conv2d", _conv2d, _conv2d_vjp, save_inputs=True, has_res=True)


def _conv2d_input_grad(xp, g, w, *, in_hw, stride, pads, dilation, groups):
    o, cg, kh, kw = w.shape
    n, _, oh, ow = g.shape
    wt = w.reshape(groups, o // groups, cg * kh * kw).transpose(0, 2, 1)
    cols = xp.matmul(wt, g.reshape(n, groups, o // groups, oh * ow))
    return col2im(xp, cols.reshape(n, groups * cg, kh, kw, oh, ow), in_hw, stride, dilation,
                  pads)


def _conv2d_input_grad_vjp(ctx, gx, in_hw, **geo):
    # Bilinear in (g, w): the adjoint in g is conv2d, in w the weight correlation.
    g, w = ctx.inputs
    need_g, need_w = ctx.needs_input_grad
    gg = _conv(gx, w, geo) if need_g else None
    gw = _weight_grad(gx, g, tuple(w.shape[2:]), geo) if need_w else None
    return gg, gw


CONV2D_INPUT_GRAD = register("conv2d_input_grad", _conv2d_input_grad, _conv2d_input_grad_vjp,
                             save_inputs=True)


def _conv2d_weight_grad(xp, x, g, cols=None, *, k, stride, pads, dilation, groups):
    n, c = x.shape[:2]
    o, oh, ow = g.shape[1:]
    if cols is None:
        cols = _im2col(xp, x, k, stride, pads, dilation, groups, (oh, ow))
    gm = g.reshape(n, groups, o // groups, oh * ow)
    # One GEMM per image, then a sum over the batch: no copy of the (large) columns.
    dw = xp.matmul(gm, cols.transpose(0, 1, 3, 2)).sum(axis=0)
    return dw.reshape((o, c // groups) + tuple(k))


def _conv2d_weight_grad_vjp(ctx, gw, k, **geo):
    x, g = ctx.inputs[:2]
    need = ctx.needs_input_grad
    gx = _input_grad(g, gw, tuple(x.shape[2:]), geo) if need[0] else None
    gg = _conv(x, gw, geo) if need[1] else None
    return (gx, gg) + (None,) * (len(need) - 2)


# Inputs (x, g) and optionally the columns of x that conv2d kept: a constant cache (its
# gradient goes to x through input 0).
CONV2D_WEIGHT_GRAD = register("conv2d_weight_grad", _conv2d_weight_grad,
                              _conv2d_weight_grad_vjp, save_inputs=True)


def _conv(x, w, geo):
    return apply(CONV2D, (x, w), geo)


def _input_grad(g, w, in_hw, geo):
    return apply(CONV2D_INPUT_GRAD, (g, w), dict(geo, in_hw=in_hw))


def _weight_grad(x, g, k, geo, cols=None):
    inputs = (x, g) if cols is None else (x, g, cols)
    return apply(CONV2D_WEIGHT_GRAD, inputs, dict(geo, k=k))


# ---- argument checks ----------------------------------------------------------------------
def _check_dtypes(input, weight, bias):
    operands = (input, weight) if bias is None else (input, weight, bias)
    if input.dtype.category != _FLOAT:
        raise op_error(DTypeError, "conv2d", f"not implemented for {input.dtype.name} inputs",
                       operands, "convert the input and weight with .float()")
    if any(t.dtype is not input.dtype for t in operands):
        names = ", ".join(t.dtype.name for t in operands)
        raise op_error(DTypeError, "conv2d", f"input, weight and bias must share a dtype, got "
                       f"{names}", operands, f"convert them all, e.g. weight.to(tg."
                       f"{input.dtype.name}) (or model.to(tg.{input.dtype.name}))")


def _check_ranks(input, weight):
    if weight.ndim != 4:
        raise op_error(ShapeError, "conv2d", f"expected a 4-D weight (C_out, C_in/groups, kH, "
                       f"kW), but got a {weight.ndim}-D weight of shape {tuple(weight.shape)}",
                       (input, weight), "nn.Conv2d(in_channels, out_channels, kernel_size) "
                       "makes one; conv1d-style weights need a kernel width of 1")
    if input.ndim not in (3, 4):
        raise op_error(ShapeError, "conv2d", f"expected a 3-D (C, H, W) or 4-D (N, C, H, W) "
                       f"input, but got a {input.ndim}-D input of shape {tuple(input.shape)}",
                       (input, weight), "for a batch of one-channel images (N, H, W) use "
                       "x.unsqueeze(1); flattened images need x.reshape(N, C, H, W)")


def _channel_hint(input, weight, groups):
    c, (o, cg, kh, kw) = input.shape[-3], tuple(weight.shape)
    if input.ndim == 4 and input.shape[-1] == cg * groups:
        return ("the input looks channels-last (N, H, W, C); permute it with "
                "x.permute(0, 3, 1, 2)")
    if c % groups:
        return (f"groups={groups} must divide the input's {c} channels; pick groups among "
                f"the common divisors of {c} and {o}")
    return (f"a weight of shape ({o}, {c // groups}, {kh}, {kw}) fits this input, e.g. "
            f"nn.Conv2d({c}, {o}, ...{', groups=' + str(groups) if groups > 1 else ''})")


def _check_channels(input, weight, bias, groups):
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"conv2d(): groups must be a positive int, got {groups!r}")
    o, cg = weight.shape[:2]
    if o % groups:
        raise op_error(ShapeError, "conv2d", f"groups={groups} must divide the {o} output "
                       f"channels (weight dim 0) of the weight {tuple(weight.shape)}",
                       (input, weight), f"use out_channels divisible by {groups}")
    c = input.shape[-3]
    if c != cg * groups:
        chans = "channel" if c == 1 else "channels"
        raise op_error(ShapeError, "conv2d", f"weight {tuple(weight.shape)} expects "
                       f"{cg * groups} input channels (C_in/groups={cg} × groups={groups}) but "
                       f"the input {tuple(input.shape)} has {c} {chans} at dim "
                       f"{input.ndim - 3}", (input, weight),
                       _channel_hint(input, weight, groups))
    if bias is not None and tuple(bias.shape) != (o,):
        raise op_error(ShapeError, "conv2d", f"bias must have shape ({o},), one per output "
                       f"channel, but got {tuple(bias.shape)}", (input, weight, bias),
                       "pass bias=None or a 1-D tensor of length C_out")


def _padding(padding, k, stride, dilation):
    """(top, bottom, left, right) from an int, a pair, "valid" or "same"."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding != "same":
            raise ValueError(f"conv2d(): invalid padding string {padding!r}\n  hint: use "
                             "'same', 'valid', an int or a pair of ints")
        if stride != (1, 1):
            raise ValueError("conv2d(): padding='same' is not supported for strided "
                             f"convolutions (stride={stride})\n  hint: use stride=1 or an "
                             "explicit padding")
        # PyTorch puts the odd extra on the bottom / right.
        th, tw = dilation[0] * (k[0] - 1), dilation[1] * (k[1] - 1)
        return (th // 2, th - th // 2, tw // 2, tw - tw // 2)
    ph, pw = pair(padding, "padding", "conv2d")
    if ph < 0 or pw < 0:
        raise ValueError(f"conv2d(): negative padding {padding!r} is not supported")
    return (ph, ph, pw, pw)


def _check_fits(input, weight, pads, dilation):
    kh, kw = weight.shape[2:]
    ek = (dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1)
    padded = (input.shape[-2] + pads[0] + pads[1], input.shape[-1] + pads[2] + pads[3])
    if ek[0] > padded[0] or ek[1] > padded[1]:
        span = f" spans {ek} with dilation {dilation}" if dilation != (1, 1) else ""
        raise op_error(ShapeError, "conv2d", f"the kernel ({kh}, {kw}){span} is larger than "
                       f"the padded input {padded}", (input, weight), "use a smaller kernel "
                       "or more padding (e.g. padding='same'), or check that the input is "
                       "(N, C, H, W)")


def _positive(pair_, name):
    if min(pair_) < 1:
        raise ValueError(f"conv2d(): {name} must be positive, got {pair_}")
    return pair_


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D cross-correlation with PyTorch's semantics (input (N, C_in, H, W) or unbatched
    (C_in, H, W), weight (C_out, C_in/groups, kH, kW)); padding may be "same" or "valid".

    >>> import tensorgrad as tg
    >>> tg.conv2d(tg.ones(2, 3, 5, 5), tg.ones(4, 3, 3, 3), padding=1).shape
    (2, 4, 5, 5)
    """
    need_tensor(input, "conv2d")
    need_tensor(weight, "conv2d", "weight")
    if bias is not None:
        need_tensor(bias, "conv2d", "bias")
    _check_ranks(input, weight)
    _check_channels(input, weight, bias, groups)
    _check_dtypes(input, weight, bias)
    stride = _positive(pair(stride, "stride", "conv2d"), "stride")
    dilation = _positive(pair(dilation, "dilation", "conv2d"), "dilation")
    pads = _padding(padding, tuple(weight.shape[2:]), stride, dilation)
    _check_fits(input, weight, pads, dilation)
    x = input if input.ndim == 4 else input.reshape((1,) + tuple(input.shape))
    inputs = (x, weight) if bias is None else (x, weight, bias)
    out = apply(CONV2D, inputs, {"stride": stride, "pads": pads, "dilation": dilation,
                                 "groups": groups})
    return out if input.ndim == 4 else out.reshape(tuple(out.shape[1:]))


METHODS = {}
__all__ = ["conv2d"]
