"""Pooling: max_pool2d, avg_pool2d and adaptive_avg_pool2d, with PyTorch's semantics.

max_pool2d takes the argmax of each window from a strided view (the first max on ties, as
PyTorch) and keeps its flat position in the input as the residual; its gradient is one
scatter of g to those positions (`max_pool2d_backward`, whose own VJP is a gather).
avg_pool2d sums windows by one strided slice-add per kernel offset; its gradient is the
adjoint (`avg_pool2d_backward`), and each is the other's VJP. adaptive_avg_pool2d is a
composite: a mean over reshaped blocks when the sizes divide, else two small matmuls with
constant pooling matrices (PyTorch's floor/ceil windows), so it needs no op of its own.
Forwards use only `xp`; this module imports no backend.
"""

import math

from ..dtypes import _FLOAT
from ..errors import DTypeError, ShapeError, op_error
from ._util import need_tensor, wrap_like
from .conv import col2im, out_len, pad_image, pair, windows
from .indexing import _add_at
from .registry import apply, register


def _pool_out_hw(x_shape, k, stride, pads, dilation):
    return tuple(out_len(n, kk, s, d, a, b) for n, kk, s, d, a, b in
                 zip(x_shape[2:], k, stride, dilation, pads[0::2], pads[1::2]))


def _overlapping(k, stride, dilation, out_hw):
    # Two windows can share an input element only if they overlap along both dims.
    return any(o > 1 and s < d * (kk - 1) + 1
               for kk, s, d, o in zip(k, stride, dilation, out_hw))


# ---- max_pool2d --------------------------------------------------------------------------------
def _window_argmax(xp, x, k, stride, pads, dilation):
    """(max values, index of each max within its (H, W) plane) over the windows of x.

    k*k strided passes over the windows, each as large as the output: no copy of the
    windows, and no argmax over a short last axis (slow in NumPy)."""
    n, c, h, w = x.shape
    oh, ow = _pool_out_hw(x.shape, k, stride, pads, dilation)
    win = windows(xp, pad_image(xp, x, pads, -math.inf), k, stride, dilation, (oh, ow))
    offsets = [(i, j) for i in range(k[0]) for j in range(k[1])]
    out = win[:, :, 0, 0].copy()
    for i, j in offsets[1:]:
        xp.maximum(out, win[:, :, i, j], out=out)  # propagates NaN, as PyTorch
    # The first max on ties, as PyTorch: walk the offsets backwards, earlier ones overwrite.
    # `delta` is each max's position relative to its window's corner, in the flat plane.
    i, j = offsets[-1]
    delta = xp.full(out.shape, i * dilation[0] * w + j * dilation[1], dtype=xp.int64)
    for i, j in reversed(offsets[:-1]):
        s = win[:, :, i, j]
        delta[(s == out) | (s != s)] = i * dilation[0] * w + j * dilation[1]
    rows = xp.arange(oh, dtype=xp.int64) * stride[0] - pads[0]
    delta += (rows * w)[:, None] + (xp.arange(ow, dtype=xp.int64) * stride[1] - pads[2])
    return out, delta


def _max_pool2d(xp, x, *, k, stride, pads, dilation):
    out, plane = _window_argmax(xp, x, k, stride, pads, dilation)
    n, c, h, w = x.shape
    plane += (xp.arange(n * c) * (h * w)).reshape(n, c, 1, 1)
    return out, plane  # the residual: each max's flat index into x


def _max_pool2d_vjp(ctx, g, k, stride, pads, dilation):
    overlap = _overlapping(k, stride, dilation, tuple(g.shape[2:]))
    return (apply(MAX_POOL2D_BACKWARD, (g, wrap_like(ctx, ctx.res)),
                  {"in_shape": ctx.in_meta[0][0], "overlap": overlap}),)


MAX_POOL2D = register("max_pool2d", _max_pool2d, _max_pool2d_vjp, has_res=True, smooth=False)


def _max_pool2d_backward(xp, g, index, *, in_shape, overlap):
    out = xp.zeros(math.prod(in_shape), dtype=g.dtype)
    if overlap:  # overlapping windows may pick one element twice: accumulate
        _add_at(xp, out, (index.ravel(),), g.ravel())
    else:
        out[index.ravel()] = g.ravel()
    return out.reshape(in_shape)


def _max_pool2d_backward_vjp(ctx, gx, in_shape, overlap):
    # Linear in g: its adjoint gathers gx at the same positions.
    g, index = ctx.inputs
    return gx.reshape(-1)[index], None


# Inputs: g and the flat indices (into the input) of each window's max.
MAX_POOL2D_BACKWARD = register("max_pool2d_backward", _max_pool2d_backward,
                               _max_pool2d_backward_vjp, save_inputs=True)


def _max_pool2d_indices(xp, x, *, k, stride, pads, dilation):
    return _window_argmax(xp, x, k, stride, pads, dilation)[1]


# return_indices=True: PyTorch's indices into each (H, W) plane; not differentiable.
MAX_POOL2D_INDICES = register("max_pool2d_indices", _max_pool2d_indices)


# ---- avg_pool2d --------------------------------------------------------------------------------
def _divisor(xp, in_hw, k, stride, pad, out_hw, include_pad, override, dtype):
    """What each window's sum is divided by: a number, or an (OH, OW) array where it varies
    (PyTorch clips windows to the padded input, and to the input without count_include_pad)."""
    if override:
        return override
    sizes = []
    for n, kk, s, p, o in zip(in_hw, k, stride, pad, out_hw):
        start = xp.arange(o) * s - p
        end = xp.minimum(start + kk, n + p)
        sizes.append(end - start if include_pad else
                     xp.minimum(end, n) - xp.maximum(start, 0))
    return (sizes[0][:, None] * sizes[1]).astype(dtype)


def _avg_pool2d(xp, x, *, k, stride, pads, pad, include_pad, override, constant):
    out_hw = _pool_out_hw(x.shape, k, stride, pads, (1, 1))
    win = windows(xp, pad_image(xp, x, pads), k, stride, (1, 1), out_hw)
    out = win[:, :, 0, 0].copy()
    for i in range(k[0]):  # one strided add per kernel offset: no copy of the windows
        for j in range(k[1]):
            if i or j:
                out += win[:, :, i, j]
    if constant:
        return out / (override or k[0] * k[1])
    return out / _divisor(xp, x.shape[2:], k, stride, pad, out_hw, include_pad, override,
                          x.dtype)


def _avg_pool2d_vjp(ctx, g, **attrs):
    in_hw = tuple(ctx.in_meta[0][0][2:])
    return (apply(AVG_POOL2D_BACKWARD, (g,), dict(attrs, in_hw=in_hw)),)


AVG_POOL2D = register("avg_pool2d", _avg_pool2d, _avg_pool2d_vjp)


def _avg_pool2d_backward(xp, g, *, in_hw, k, stride, pads, pad, include_pad, override,
                         constant):
    n, c, oh, ow = g.shape
    if constant:
        g = g / (override or k[0] * k[1])
    else:
        g = g / _divisor(xp, in_hw, k, stride, pad, (oh, ow), include_pad, override, g.dtype)
    cols = xp.broadcast_to(g[:, :, None, None], (n, c) + tuple(k) + (oh, ow))
    return col2im(xp, cols, in_hw, stride, (1, 1), pads)


def _avg_pool2d_backward_vjp(ctx, gx, in_hw, **attrs):
    return (apply(AVG_POOL2D, (gx,), attrs),)  # linear: its adjoint is avg_pool2d itself


AVG_POOL2D_BACKWARD = register("avg_pool2d_backward", _avg_pool2d_backward,
                               _avg_pool2d_backward_vjp)


# ---- argument handling ---------------------------------------------------------------------------
def _batched(input, op):
    """input as (N, C, H, W) (an unbatched (C, H, W) gets N = 1), checked."""
    need_tensor(input, op)
    if input.ndim not in (3, 4):
        raise op_error(ShapeError, op, f"expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, "
                       f"but got a {input.ndim}-D input of shape {tuple(input.shape)}",
                       (input,), "for a batch of one-channel images (N, H, W) use "
                       "x.unsqueeze(1)")
    if input.dtype.category != _FLOAT:
        raise op_error(DTypeError, op, f"not implemented for {input.dtype.name} inputs",
                       (input,), "convert the input with .float()")
    return input if input.ndim == 4 else input.reshape((1,) + tuple(input.shape))


def _unbatched(out, input):
    return out if input.ndim == 4 else out.reshape(tuple(out.shape[1:]))


def _ceil_len(n, k, s, d, p):
    """PyTorch's ceil-mode length: the last window must start inside the input or left pad."""
    o = -(-(n + 2 * p - d * (k - 1) - 1) // s) + 1
    return o - 1 if (o - 1) * s >= n + p else o


def _geometry(op, x, kernel_size, stride, padding, dilation, ceil_mode):
    """(k, stride, pad pair, pads (top, bottom, left, right)) with ceil mode's extra bottom /
    right padding, checked as PyTorch checks them."""
    k = pair(kernel_size, "kernel_size", op)
    s = k if stride is None or (not isinstance(stride, int) and len(stride) == 0) else \
        pair(stride, "stride", op)
    p, d = pair(padding, "padding", op), pair(dilation, "dilation", op)
    if min(k + s + d) < 1 or min(p) < 0:
        raise ValueError(f"{op}(): kernel_size, stride and dilation must be positive and "
                         f"padding >= 0, got kernel_size={k}, stride={s}, padding={p}, "
                         f"dilation={d}")
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(f"{op}(): pad should be at most half of effective kernel size, but "
                         f"got pad={p}, kernel_size={k} and dilation={d}\n  hint: use "
                         f"padding <= {(k[0] // 2, k[1] // 2)}")
    n_hw = tuple(x.shape[2:])
    if ceil_mode:
        out = tuple(_ceil_len(*a) for a in zip(n_hw, k, s, d, p))
    else:
        out = tuple(out_len(n, kk, ss, dd, pp, pp) for n, kk, ss, dd, pp in zip(n_hw, k, s, d, p))
    if min(out) < 1:
        raise op_error(ShapeError, op, f"the output size {out} is too small: the input "
                       f"{tuple(x.shape)} with padding {p} is smaller than the kernel {k}"
                       f"{f' dilated by {d}' if d != (1, 1) else ''}", (x,),
                       "use a smaller kernel_size, more padding, or a larger input")
    # ceil mode's last window may run past the padded input: pad (bottom, right) to fit it.
    extra = [max(0, (o - 1) * ss + dd * (kk - 1) + 1 - (n + 2 * pp))
             for n, kk, ss, dd, pp, o in zip(n_hw, k, s, d, p, out)]
    return k, s, p, d, (p[0], p[0] + extra[0], p[1], p[1] + extra[1])


# ---- public functions --------------------------------------------------------------------------
def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Max over each window (padding counts as -inf); the gradient goes to each window's
    first max. With return_indices, also each max's index within its (H, W) plane.

    >>> import tensorgrad as tg
    >>> tg.max_pool2d(tg.arange(16.).reshape(1, 1, 4, 4), 2).tolist()
    [[[[5.0, 7.0], [13.0, 15.0]]]]
    """
    x = _batched(input, "max_pool2d")
    k, s, _, d, pads = _geometry("max_pool2d", x, kernel_size, stride, padding, dilation,
                                 ceil_mode)
    attrs = {"k": k, "stride": s, "pads": pads, "dilation": d}
    out = _unbatched(apply(MAX_POOL2D, (x,), attrs), input)
    if not return_indices:
        return out
    return out, _unbatched(apply(MAX_POOL2D_INDICES, (x,), attrs), input)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """Mean over each window (zero padding counted unless count_include_pad=False; windows
    are clipped to the padded input in ceil mode, as in PyTorch).

    >>> import tensorgrad as tg
    >>> tg.avg_pool2d(tg.arange(16.).reshape(1, 1, 4, 4), 2).tolist()
    [[[[2.5, 4.5], [10.5, 12.5]]]]
    """
    x = _batched(input, "avg_pool2d")
    if divisor_override is not None and divisor_override == 0:
        raise ValueError("avg_pool2d(): divisor_override must be non-zero")
    k, s, p, _, pads = _geometry("avg_pool2d", x, kernel_size, stride, padding, 1, ceil_mode)
    clipped = pads[1] != p[0] or pads[3] != p[1]
    # Every window divides by kH*kW unless some are clipped (ceil mode, excluded padding).
    constant = bool(divisor_override) or not clipped and (count_include_pad or p == (0, 0))
    attrs = {"k": k, "stride": s, "pads": pads, "pad": p, "include_pad": bool(count_include_pad),
             "override": divisor_override, "constant": constant}
    return _unbatched(apply(AVG_POOL2D, (x,), attrs), input)


def _pooling_matrix(n, o, like):
    """(o, n): row i averages input[floor(i*n/o) : ceil((i+1)*n/o)], PyTorch's windows."""
    from ..creation import tensor
    rows = []
    for i in range(o):
        start, end = (i * n) // o, -(-((i + 1) * n) // o)
        rows.append([1.0 / (end - start) if start <= j < end else 0.0 for j in range(n)])
    return tensor(rows, dtype=like.dtype, device=like.device)


def adaptive_avg_pool2d(input, output_size):
    """Average pooling to a fixed output size (an int, or a pair whose None entries keep the
    input's size), with PyTorch's windows.

    >>> import tensorgrad as tg
    >>> tg.adaptive_avg_pool2d(tg.ones(2, 3, 7, 5), (3, None)).shape
    (2, 3, 3, 5)
    """
    x = _batched(input, "adaptive_avg_pool2d")
    sizes = (output_size, output_size) if output_size is None or isinstance(output_size, int) \
        else tuple(output_size)
    h, w = x.shape[2:]
    if len(sizes) == 2:
        oh, ow = (n if o is None else int(o) for n, o in zip((h, w), sizes))
    if len(sizes) != 2 or oh < 1 or ow < 1:
        raise ValueError(f"adaptive_avg_pool2d(): output_size must be a positive int or a pair "
                         f"of them (None keeps the input's size), got {output_size!r}")
    if (oh, ow) == (h, w):
        out = x + 0  # a copy, as PyTorch returns a new tensor
    elif h % oh == 0 and w % ow == 0:  # equal blocks: a mean over a reshaped view
        n, c = x.shape[:2]
        out = x.reshape(n, c, oh, h // oh, ow, w // ow).mean((3, 5))
    else:
        out = _pooling_matrix(h, oh, x) @ x @ _pooling_matrix(w, ow, x).T
    return _unbatched(out, input)


METHODS = {}
__all__ = ["max_pool2d", "avg_pool2d", "adaptive_avg_pool2d"]
