"""Normalization ops: layer_norm as one op, forward and closed-form backward.

Composed from generic ops, layer norm records about nine nodes and as many full-size
temporaries, forward and backward alike. Here the forward computes the statistics once, in
the input's dtype, and writes its output into a buffer it already has; the VJP is the
closed form, with x̂ = (x - mean) * rstd over the normalized dims:

    dx = rstd * (ĝ - mean(ĝ) - x̂ * mean(ĝ * x̂)),   ĝ = g * weight (or g)
    dweight = sum(g * x̂),  dbias = sum(g),          the sums over the leading dims

It is written in tensorgrad ops, so it is differentiable again. The forward's residuals
(x̂, rstd) are bare arrays with no graph behind them: under create_graph the VJP recomputes
them from the saved input with tensorgrad ops, so that second order sees their dependence
on x. Forwards use only `xp`; this module imports no array library.
"""

import math

from ..autograd import graph
from ..dtypes import _FLOAT, result_type
from ..errors import DTypeError, ShapeError, describe, op_error
from ._util import need_tensor, wrap_like
from .elementwise import rsqrt
from .registry import apply, register


# ---- layer_norm -----------------------------------------------------------------------------
def _layer_norm(xp, x, w=None, b=None, *, dims, eps):
    """y = x̂ * w + b over `dims` (the trailing ones); returns (y, (x̂, rstd))."""
    kept = _kept(x.shape, dims)
    n = math.prod(x.shape[d] for d in dims)
    rows = x.reshape(math.prod(kept), n)  # one row per normalized slice; a view when contiguous
    ones = xp.ones(n, dtype=x.dtype)
    # Row means as products with ones: NumPy's mean over rows of 64 runs 5x slower than this
    # BLAS matrix-vector product, which sums in the input's dtype too.
    mean = xp.matmul(rows, ones) / n
    xhat = xp.subtract(rows, mean[:, None])
    out = xp.multiply(xhat, xhat)  # the squares; their buffer is reused for the output
    rstd = 1 / xp.sqrt(xp.matmul(out, ones) / n + eps)
    xhat *= rstd[:, None]
    xhat = xhat.reshape(x.shape)
    out = out.reshape(x.shape)
    if w is not None:
        xp.multiply(xhat, w, out=out)
    else:
        out[...] = xhat  # a copy: the output may be changed in place, the residual must not
    if b is not None:
        out += b
    return out, (xhat, rstd.reshape(kept))


def _layer_norm_vjp(ctx, g, dims, eps):
    x = ctx.inputs[0]
    w = ctx.inputs[1] if len(ctx.inputs) > 1 else None
    need = ctx.needs_input_grad
    if graph._mode.enabled:  # create_graph: graph-connected statistics, for second order
        xhat, rstd = _normalized(x, dims, eps)
    else:
        xhat, rstd = (wrap_like(ctx, r) for r in ctx.res)
    lead = tuple(range(g.ndim - len(dims)))
    gxh = g * xhat if need[0] or need[1] else None
    gx = gw = gb = None
    if need[0]:
        if w is None:
            gh, m1, m2 = g, g.mean(dims, keepdim=True), gxh.mean(dims, keepdim=True)
        else:  # mean(g w) and mean(g x̂ w) as products with w: no (g w x̂) temporary, and fast
            gh, m1, m2 = g * w, _row_mean(g, w, rstd.shape), _row_mean(gxh, w, rstd.shape)
        gx = rstd * (gh - m1 - xhat * m2)
    if len(need) > 1 and need[1]:
        gw = _sum_over(gxh, lead)
    if len(need) > 2 and need[2]:
        gb = _sum_over(g, lead)
    return (gx, gw, gb)[:len(need)]


def _row_mean(t, w, kept):
    """mean(t * w) over the normalized dims (w's), shaped `kept`."""
    n = w.numel()
    return (t.reshape((math.prod(kept), n)) @ w.reshape((n,)) / n).reshape(kept)


def _normalized(x, dims, eps):
    """(x̂, rstd) as tensorgrad ops, the forward's statistics with a graph behind them."""
    xc = x - x.mean(dims, keepdim=True)
    rstd = rsqrt((xc * xc).mean(dims, keepdim=True) + eps)
    return xc * rstd, rstd


def _kept(shape, dims):
    return tuple(1 if d in dims else s for d, s in enumerate(shape))


def _sum_over(t, lead):
    # With no leading dims there is nothing to sum (and sum(()) would sum everything).
    return t.sum(lead) if lead else t


LAYER_NORM = register("layer_norm", _layer_norm, _layer_norm_vjp, save_inputs=True,
                      has_res=True)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalize over the trailing `normalized_shape` dimensions, then scale and shift.

    One op: one graph node, and a closed-form backward (see the module docstring).

    >>> import tensorgrad as tg
    >>> import tensorgrad.nn.functional as F
    >>> [round(v, 4) for v in F.layer_norm(tg.tensor([[1.0, 3.0]]), (2,))[0].tolist()]
    [-1.0, 1.0]
    """
    need_tensor(input, "layer_norm")
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(shape)
    if k == 0:
        raise ShapeError("layer_norm: expected normalized_shape to be at least 1-dimensional, "
                         "but got normalized_shape = ()\n  hint: name the dimensions to "
                         f"normalize over, e.g. {tuple(input.shape[-1:])}")
    if input.ndim < k or tuple(input.shape[input.ndim - k:]) != shape:
        raise ShapeError(f"layer_norm: normalized_shape {shape} does not match the trailing "
                         f"dimensions of input {describe(input)}\n  hint: normalized_shape "
                         f"must be the input's last dimensions, e.g. {tuple(input.shape[-1:])}")
    operands = _affine_operands(input, weight, bias, shape)
    dims = tuple(range(input.ndim - k, input.ndim))
    return apply(LAYER_NORM, operands, {"dims": dims, "eps": float(eps)})


def _affine_operands(input, weight, bias, shape):
    """(input, weight, bias) in one floating dtype, weight and bias in `shape`, trailing Nones
    dropped (so the node has no edge for them)."""
    dtype = result_type(*(t for t in (input, weight, bias) if t is not None))
    if dtype.category != _FLOAT:
        raise op_error(DTypeError, "layer_norm", f"expected a floating-point input, got "
                       f"{input.dtype.name}", (input,), "convert it first, e.g. x.float()")
    operands = [input if input.dtype is dtype else input.to(dtype)]
    for t in (weight, bias):
        if t is not None:
            t = t if t.dtype is dtype else t.to(dtype)
            t = t if tuple(t.shape) == shape else t.reshape(shape)
        operands.append(t)
    while operands[-1] is None:
        operands.pop()
    return tuple(operands)


METHODS = {}
__all__ = []
