"""Reductions: sum, mean, var/std, prod, max/min, amax/amin, argmax/argmin, logsumexp,
softmax/log_softmax, cumsum. Each takes PyTorch's `dim`/`keepdim` (and NumPy's
`axis`/`keepdims` as aliases).

A reduction's VJP re-inserts the reduced axes into the gradient (`_expand_back`) and
broadcasts it to the input's shape.
"""

from ..dtypes import _FLOAT
from ..errors import DTypeError
from ._util import alias, need_tensor, norm_dims
from .registry import apply, register


def _dims(input, dim, axis, keepdim, keepdims, op):
    need_tensor(input, op)
    dim = alias(dim, axis, "dim", "axis", op)
    keepdim = bool(alias(keepdim, keepdims, "keepdim", "keepdims", op, default=False))
    return norm_dims(dim, input.ndim, op), keepdim


def _expand_back(g, in_shape, dims, keepdim):
    """Broadcast a reduced gradient back over the reduced `dims` of `in_shape`."""
    if not keepdim and dims:
        kept = list(g.shape)
        for d in dims:
            kept.insert(d, 1)
        g = g.reshape(tuple(kept))
    return g.expand(in_shape)


# ---- sum / mean ---------------------------------------------------------------------------
def _sum(xp, x, dims, keepdim):
    return xp.sum(x, axis=dims, keepdims=keepdim)


def _sum_vjp(ctx, g, dims, keepdim):
    return (_expand_back(g, ctx.in_meta[0][0], dims, keepdim),)


SUM = register("sum", _sum, _sum_vjp)


def _mean(xp, x, dims, keepdim):
    return xp.mean(x, axis=dims, keepdims=keepdim)


def _mean_vjp(ctx, g, dims, keepdim):
    shape = ctx.in_meta[0][0]
    n = 1
    for d in dims:
        n *= shape[d]
    return (_expand_back(g / n, shape, dims, keepdim),)


MEAN = register("mean", _mean, _mean_vjp)


def sum(input, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=None):
    """Sum over `dim` (all dimensions when None). Integer and bool inputs sum to int64."""
    dims, keepdim = _dims(input, dim, axis, keepdim, keepdims, "sum")
    if dtype is not None:
        input = input.to(dtype)
    elif input.dtype.category != _FLOAT and input.dtype.name != "int64":
        input = input.to("int64")
    return apply(SUM, (input,), {"dims": dims, "keepdim": keepdim})


def mean(input, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=None):
    dims, keepdim = _dims(input, dim, axis, keepdim, keepdims, "mean")
    if dtype is not None:
        input = input.to(dtype)
    if input.dtype.category != _FLOAT:
        raise DTypeError(f"mean: could not infer output dtype; the input is {input.dtype}, and "
                         "mean needs a floating-point input\n  hint: x.float().mean() or "
                         "x.mean(dtype=tg.float32)")
    return apply(MEAN, (input,), {"dims": dims, "keepdim": keepdim})


METHODS = {"sum": sum, "mean": mean}
__all__ = ["sum", "mean"]
