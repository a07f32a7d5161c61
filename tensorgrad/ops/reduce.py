"""Reductions: sum, mean, var/std, prod, max/min, amax/amin, argmax/argmin, any/all (the
softmax family and cumsum live in softmax.py). Each takes PyTorch's `dim`/`keepdim` (and
NumPy's `axis`/`keepdims` as aliases).

A reduction's VJP re-inserts the reduced axes into the gradient (`_keepdim`) and lets it
broadcast back over the input's shape. Forwards wrap their results in `xp.asarray`, because
NumPy returns a scalar (not a writable 0-d array) for a full reduction.
"""

import builtins
import math
from collections import namedtuple

from ..creation import arange, eye
from ..dtypes import _FLOAT, int64
from ..errors import DTypeError, ShapeError
from ..tensor import Tensor
from ._util import alias, need_tensor, norm_dim, norm_dims, wrap_like
from .binary import maximum, minimum, where
from .registry import apply, register
from .shape import BROADCAST_TO


# ---- argument handling ----------------------------------------------------------------------
def _dims(input, dim, axis, keepdim, keepdims, op):
    """(sorted axes, keepdim) from PyTorch's or NumPy's keywords; a 0-d input reduces nothing."""
    if dim is None and axis is None and keepdims is None and isinstance(input, Tensor):
        n = input._array.ndim  # the common full reduction
        return (_ALL_DIMS[n] if n < len(_ALL_DIMS) else tuple(range(n))), bool(keepdim)
    need_tensor(input, op)
    dim = alias(dim, axis, "dim", "axis", op)
    keepdim = bool(alias(keepdim, keepdims, "keepdim", "keepdims", op, default=False))
    dims = _checked(norm_dims, dim, input, op)
    return (() if input.ndim == 0 else dims), keepdim


_ALL_DIMS = tuple(tuple(range(n)) for n in range(9))  # made once, not per full reduction


def _one_dim(input, dim, axis, op):
    """A single dimension (softmax, cumsum, max over dim): an int, negative allowed."""
    need_tensor(input, op)
    dim = alias(dim, axis, "dim", "axis", op)
    if not isinstance(dim, int):
        raise TypeError(f"{op}(): argument 'dim' must be an int, not {type(dim).__name__}\n"
                        f"  hint: {op} works along one dimension (amax/amin/sum take a tuple)")
    return _checked(norm_dim, dim, input, op)


def _checked(norm, dim, input, op):
    try:
        return norm(dim, input.ndim, op)
    except ShapeError as e:
        n = builtins.max(input.ndim, 1)
        raise ShapeError(f"{e.message}; input shape {tuple(input.shape)}\n  hint: a tensor with "
                         f"{input.ndim} dimension(s) takes dim in [{-n}, {n - 1}]") from None


def _need_float(input, op, what):
    if input.dtype.category != _FLOAT:
        raise DTypeError(f"{op}: {what} needs a floating-point input, got {input.dtype} of "
                         f"shape {tuple(input.shape)}\n  hint: x.float().{op}(...)")
    return input


def _accumulating(input, dtype):
    """The input cast for sum/prod/cumsum: `dtype` if given, else integers widen to int64."""
    if dtype is not None:
        return input.to(dtype)
    if input._array.dtype.kind == "f":
        return input  # floating inputs sum in their own dtype: no dtype lookup needed
    if input.dtype.category != _FLOAT and input.dtype.name != "int64":
        return input.to(int64)
    return input


def _numel(shape, dims):
    return math.prod(shape[d] for d in dims)


def _keepdim(g, dims, keepdim):
    """`g` with the reduced `dims` put back as size-1 axes, so it broadcasts over the input."""
    if keepdim or not dims or dims[-1] == len(dims) - 1:
        return g  # reduced leading dims (a full reduction too) come back by broadcasting
    kept = list(g.shape)
    for d in dims:
        kept.insert(d, 1)
    return g.reshape(tuple(kept))


def _expand_back(g, in_shape, dims, keepdim):
    """Broadcast a reduced gradient back over the reduced `dims` of `in_shape`."""
    return apply(BROADCAST_TO, (_keepdim(g, dims, keepdim),), {"shape": in_shape})


def _lifted(fn, input, *args):
    # PyTorch treats a 0-d tensor as having one dimension of size 1 for dim-wise ops.
    if input.ndim:
        return fn(input, *args)
    return fn(input.reshape(1), *args).reshape(())


# ---- sum / mean ---------------------------------------------------------------------------
def _sum(xp, x, dims, keepdim):
    # The method, not xp.sum: NumPy's function wrapper costs 1 us on small arrays.
    return xp.asarray(x.sum(axis=dims, keepdims=keepdim))


def _sum_vjp(ctx, g, dims, keepdim):
    return (_expand_back(g, ctx.in_meta[0][0], dims, keepdim),)


SUM = register("sum", _sum, _sum_vjp)


def _mean(xp, x, dims, keepdim):
    return xp.asarray(x.mean(axis=dims, keepdims=keepdim))


def _mean_vjp(ctx, g, dims, keepdim):
    shape = ctx.in_meta[0][0]
    return (_expand_back(g / _numel(shape, dims), shape, dims, keepdim),)


MEAN = register("mean", _mean, _mean_vjp)


def sum(input, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=None):
    """Sum over `dim` (all dimensions when None). Integer and bool inputs sum to int64.

    >>> import tensorgrad as tg
    >>> tg.tensor([[1, 2], [3, 4]]).sum(dim=0).tolist()
    [4, 6]
    """
    dims, keepdim = _dims(input, dim, axis, keepdim, keepdims, "sum")
    input = _accumulating(input, dtype)
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


# ---- var / std ------------------------------------------------------------------------------
def _dof(shape, dims, correction):
    # PyTorch clamps the degrees of freedom at 0; dividing by 0 then gives inf/nan, with no error.
    dof = _numel(shape, dims) - correction
    return dof if dof > 0 else 0.0


def _inv(v):
    return 1 / v if v else math.inf


def _var(xp, x, dims, keepdim, correction):
    return xp.asarray(xp.var(x, axis=dims, ddof=correction, keepdims=keepdim))


def _var_vjp(ctx, g, dims, keepdim, correction):
    x = ctx.inputs[0]
    scale = 2 * _inv(_dof(x.shape, dims, correction))
    return (_keepdim(g, dims, keepdim) * scale * (x - x.mean(dims, keepdim=True)),)


VAR = register("var", _var, _var_vjp, save_inputs=True)


def _std(xp, x, dims, keepdim, correction):
    return xp.asarray(xp.std(x, axis=dims, ddof=correction, keepdims=keepdim))


def _std_vjp(ctx, g, dims, keepdim, correction):
    x = ctx.inputs[0]
    out = _keepdim(ctx.out, dims, keepdim)
    out = where(out == 0, 1, out)  # a constant slice: x - mean is 0 there, so is the gradient
    scale = _inv(_dof(x.shape, dims, correction))
    return (_keepdim(g, dims, keepdim) * scale * (x - x.mean(dims, keepdim=True)) / out,)


STD = register("std", _std, _std_vjp, save_inputs=True, save_out=True)


def _correction(unbiased, correction, ddof, op):
    if ddof is not None:
        if correction is not None:
            raise TypeError(f"{op}(): got both 'correction' and its alias 'ddof'")
        correction = ddof
    if unbiased is not None and correction is not None:
        raise TypeError(f"{op}(): cannot pass both 'correction' and 'unbiased'\n"
                        "  hint: unbiased=False is correction=0")
    if correction is None:
        correction = 1 if unbiased is None else int(bool(unbiased))
    return correction


def _var_like(op, name, input, dim, unbiased, keepdim, correction, axis, keepdims, ddof):
    if isinstance(dim, bool):  # the legacy overload var(input, unbiased)
        dim, unbiased = None, dim
    dims, keepdim = _dims(input, dim, axis, keepdim, keepdims, name)
    _need_float(input, name, "a variance")
    attrs = {"dims": dims, "keepdim": keepdim,
             "correction": _correction(unbiased, correction, ddof, name)}
    return apply(op, (input,), attrs)


def var(input, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None,
        keepdims=None, ddof=None):
    """Variance over `dim`, dividing by N - correction (PyTorch's default correction=1).

    >>> import tensorgrad as tg
    >>> tg.tensor([1.0, 2.0, 3.0]).var(correction=0).item()
    0.6666666865348816
    """
    return _var_like(VAR, "var", input, dim, unbiased, keepdim, correction, axis, keepdims, ddof)


def std(input, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None,
        keepdims=None, ddof=None):
    """Standard deviation over `dim`; `unbiased=False` is `correction=0`."""
    return _var_like(STD, "std", input, dim, unbiased, keepdim, correction, axis, keepdims, ddof)


# ---- prod -----------------------------------------------------------------------------------
def _prod(xp, x, dims, keepdim):
    return xp.asarray(xp.prod(x, axis=dims, keepdims=keepdim))


def _prod_vjp(ctx, g, dims, keepdim):
    x = ctx.inputs[0]
    g = _keepdim(g, dims, keepdim)
    if not bool(any(x == 0)):  # one host sync per backward, to keep the common case O(N)
        return (g * _keepdim(ctx.out, dims, keepdim) / x,)
    return (g * _product_of_others(x, dims),)


def _product_of_others(x, dims):
    """For each element, the product of the other elements of its slice, built from `prod`.

    out / x is undefined where x == 0, and where(...) patches would be wrong at second order
    (d²prod/dx_i dx_k is non-zero when x_k == 0). So, only when a zero occurs: lay each slice
    out as a row of length N, tile it N times with the diagonal set to 1, and take the
    product of each row: O(N²) memory per slice, but exact and differentiable to any order.
    """
    keep = [d for d in range(x.ndim) if d not in dims]
    kept_shape = tuple(x.shape[d] for d in keep)
    n = _numel(x.shape, dims)
    rows = x.permute(*keep, *dims).reshape(kept_shape + (1, n))
    diag = eye(n, dtype="bool", device=x.device)
    others = prod(where(diag, 1, rows), dim=-1)
    others = others.reshape(kept_shape + tuple(x.shape[d] for d in dims))
    order = keep + list(dims)
    return others.permute(*sorted(range(x.ndim), key=order.__getitem__))


PROD = register("prod", _prod, _prod_vjp, save_inputs=True, save_out=True)


def prod(input, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=None):
    """Product over `dim` (all dimensions when None); the gradient is exact with zeros."""
    dims, keepdim = _dims(input, dim, axis, keepdim, keepdims, "prod")
    input = _accumulating(input, dtype)
    return apply(PROD, (input,), {"dims": dims, "keepdim": keepdim})


# ---- amax / amin, max() / min(): ties share the gradient ---------------------------------------
def _tie_weights(xp, x, out, dims, nan_ties):
    """Each tied extremum's share of the gradient (PyTorch's rule for both amax and max()).

    A NaN in a slice makes its extremum NaN, and PyTorch then parts: max()/min() count the
    NaNs as the tied extrema (`nan_ties`); amax/amin find no element equal to a NaN result
    and give the whole slice a NaN gradient.
    """
    if out.dtype.kind != "f":
        return None  # integer results carry no gradient
    hits = x == out
    if nan_ties:
        hits |= xp.isnan(x) & xp.isnan(out)
    count = xp.sum(hits, axis=dims, keepdims=True)
    # 1 / count on the reduced shape; a count of 0 is a NaN slice of amax/amin.
    share = xp.where(count == 0, xp.nan, 1 / xp.maximum(count, 1)).astype(x.dtype)
    return hits * share


def _tied(reduce_name, nan_ties=False):
    def forward(xp, x, dims, keepdim):
        out = getattr(xp, reduce_name)(x, axis=dims, keepdims=True)
        kept = out if keepdim else xp.squeeze(out, axis=dims)
        return xp.asarray(kept), _tie_weights(xp, x, out, dims, nan_ties)
    return forward


def _tied_vjp(ctx, g, dims, keepdim):
    return (_keepdim(g, dims, keepdim) * wrap_like(ctx, ctx.res),)


AMAX = register("amax", _tied("amax"), _tied_vjp, has_res=True, smooth=False)
AMIN = register("amin", _tied("amin"), _tied_vjp, has_res=True, smooth=False)
# max() and min() over every element: amax/amin's values, but NaNs share the gradient.
MAX = register("max", _tied("amax", nan_ties=True), _tied_vjp, has_res=True, smooth=False)
MIN = register("min", _tied("amin", nan_ties=True), _tied_vjp, has_res=True, smooth=False)


def _nonempty(input, dims, op):
    if builtins.any(input.shape[d] == 0 for d in dims) or (not dims and input.numel() == 0):
        raise ShapeError(f"{op}: cannot reduce over an empty dimension; input shape "
                         f"{tuple(input.shape)}, dim {dims}\n  hint: {op} has no identity; "
                         "reduce over non-empty dimensions only")


def _extremum(op, name, input, dim, keepdim, axis, keepdims):
    dims, keepdim = _dims(input, dim, axis, keepdim, keepdims, name)
    _nonempty(input, dims, name)
    return apply(op, (input,), {"dims": dims, "keepdim": keepdim})


def _all_if_empty(dim):
    # amax/amin take dim=() (their default) to mean every dimension, as in PyTorch.
    return None if isinstance(dim, (tuple, list)) and not dim else dim


def amax(input, dim=(), keepdim=False, *, axis=None, keepdims=None):
    """Maximum over `dim` (an int or a tuple; all dimensions when empty or None)."""
    return _extremum(AMAX, "amax", input, _all_if_empty(dim), keepdim, axis, keepdims)


def amin(input, dim=(), keepdim=False, *, axis=None, keepdims=None):
    """Minimum over `dim` (an int or a tuple; all dimensions when empty or None)."""
    return _extremum(AMIN, "amin", input, _all_if_empty(dim), keepdim, axis, keepdims)


# ---- max / min over one dim: values and indices, the gradient goes to the index ----------------
def _take(xp, x, idx, dim, keepdim):
    out = xp.take_along_axis(x, idx, axis=dim)
    return (out if keepdim else xp.squeeze(out, axis=dim)), idx


def _take_vjp(ctx, g, dim, keepdim):
    shape, _, device = ctx.in_meta[0]
    positions = arange(shape[dim], device=device)
    if len(shape) > 1:  # a 1-d input's positions have its shape already
        where_on_axis = [1] * len(shape)
        where_on_axis[dim] = shape[dim]
        positions = positions.reshape(tuple(where_on_axis))
    hit = positions == wrap_like(ctx, ctx.res)  # one-hot along dim, the input's shape
    return where(hit, _keepdim(g, (dim,), keepdim), 0), None


MAX_DIM = register("max_dim", _take, _take_vjp, has_res=True, smooth=False)
MIN_DIM = register("min_dim", _take, _take_vjp, has_res=True, smooth=False)

_max_result = namedtuple("max", ["values", "indices"])
_min_result = namedtuple("min", ["values", "indices"])


def _extremum_dim(kind, input, dim, keepdim):
    _, _, arg_op, op, _, result = kind
    x = input.reshape(1) if input.ndim == 0 else input  # a 0-d input acts as shape (1,)
    idx = apply(arg_op, (x,), {"dim": dim, "keepdim": True})
    values = apply(op, (x, idx), {"dim": dim, "keepdim": keepdim or input.ndim == 0})
    shape = input.shape if input.ndim == 0 else values.shape
    # Reshape only what changes shape: a same-shape reshape would record a no-op view.
    if values.shape != shape:
        values = values.reshape(shape)
    return result(values, idx if idx.shape == shape else idx.reshape(shape))


def _max_or_min(kind, input, dim, keepdim, axis, keepdims, other):
    name, full_op, _, _, elementwise, _ = kind
    if other is not None or isinstance(dim, Tensor):
        # tg.max(a, b) is tg.maximum(a, b), as in PyTorch
        return elementwise(input, dim if other is None else other)
    need_tensor(input, name)
    if dim is None and axis is None:
        _nonempty(input, (), name)
        return apply(full_op, (input,), {"dims": tuple(range(input.ndim)), "keepdim": False})
    d = _one_dim(input, dim, axis, name)
    keepdim = bool(alias(keepdim, keepdims, "keepdim", "keepdims", name, default=False))
    _nonempty(input, (d,) if input.ndim else (), name)
    return _extremum_dim(kind, input, d, keepdim)


def max(input, dim=None, keepdim=False, *, other=None, axis=None, keepdims=None):
    """`max()`: the largest element (ties share the gradient); `max(dim)`: a named tuple
    `(values, indices)`, the gradient going to `indices`; `max(a, b)`: `maximum(a, b)`.

    >>> import tensorgrad as tg
    >>> tg.tensor([[1.0, 5.0], [7.0, 2.0]]).max(dim=1).indices.tolist()
    [1, 0]
    """
    kind = ("max", MAX, ARGMAX, MAX_DIM, maximum, _max_result)
    return _max_or_min(kind, input, dim, keepdim, axis, keepdims, other)


def min(input, dim=None, keepdim=False, *, other=None, axis=None, keepdims=None):
    """`min()`, `min(dim)` -> `(values, indices)`, or `min(a, b)`: as `max`."""
    kind = ("min", MIN, ARGMIN, MIN_DIM, minimum, _min_result)
    return _max_or_min(kind, input, dim, keepdim, axis, keepdims, other)


# ---- argmax / argmin (no gradient) ------------------------------------------------------------
def _arg(reduce_name):
    def forward(xp, x, dim, keepdim):
        fn = getattr(xp, reduce_name)
        if dim is None:  # over the flattened input
            out = xp.asarray(fn(x))
            return out.reshape((1,) * x.ndim) if keepdim else out
        return xp.asarray(fn(x, axis=dim, keepdims=keepdim))
    return forward


ARGMAX = register("argmax", _arg("argmax"))
ARGMIN = register("argmin", _arg("argmin"))


def _arg_public(op, name, input, dim, keepdim, axis, keepdims):
    need_tensor(input, name)
    keepdim = bool(alias(keepdim, keepdims, "keepdim", "keepdims", name, default=False))
    dim = alias(dim, axis, "dim", "axis", name)
    if dim is not None:
        dim = _one_dim(input, dim, None, name)
    if dim is not None and input.ndim == 0:
        dim = None
    _nonempty(input, () if dim is None else (dim,), name)
    return apply(op, (input,), {"dim": dim, "keepdim": keepdim})


def argmax(input, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """Index of the largest element along `dim` (of the flattened input when None); int64."""
    return _arg_public(ARGMAX, "argmax", input, dim, keepdim, axis, keepdims)


def argmin(input, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """Index of the smallest element along `dim` (of the flattened input when None); int64."""
    return _arg_public(ARGMIN, "argmin", input, dim, keepdim, axis, keepdims)


# ---- any / all (no gradient) ------------------------------------------------------------------
ANY = register("any", lambda xp, x, dims, keepdim: xp.asarray(xp.any(x, axis=dims,
                                                                       keepdims=keepdim)))
ALL = register("all", lambda xp, x, dims, keepdim: xp.asarray(xp.all(x, axis=dims,
                                                                       keepdims=keepdim)))


def any(input, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """True where any element over `dim` is non-zero (a bool tensor)."""
    dims, keepdim = _dims(input, dim, axis, keepdim, keepdims, "any")
    return apply(ANY, (input,), {"dims": dims, "keepdim": keepdim})


def all(input, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """True where every element over `dim` is non-zero (a bool tensor)."""
    dims, keepdim = _dims(input, dim, axis, keepdim, keepdims, "all")
    return apply(ALL, (input,), {"dims": dims, "keepdim": keepdim})


METHODS = {
    "sum": sum, "mean": mean, "var": var, "std": std, "prod": prod, "max": max, "min": min,
    "amax": amax, "amin": amin, "argmax": argmax, "argmin": argmin, "any": any, "all": all,
}
__all__ = list(METHODS)
