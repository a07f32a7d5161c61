"""Indexing: `x[key]`, `index_put`, gather/scatter_add, index_select, masked ops, nonzero.

`normalize_index` turns a user's index (ints, slices, None, Ellipsis, lists, bool/int tensors,
NumPy arrays) into a key that indexes backend arrays directly, checked against the tensor's
shape. Basic indexing gives a view, advanced indexing a copy, as in NumPy and PyTorch.
Gradients scatter-ADD back, so repeated indices accumulate; the scatter ops' VJPs are the
gathers and the other way round, so second order works.

Knows backend arrays only through `xp` and the tensor's backend; imports no backend module.
"""

from ..errors import DeviceError, DTypeError, ShapeError
from ..tensor import Tensor
from ._util import need_tensor, norm_dim, wrap_like
from .binary import where
from .broadcast import broadcast_shapes, unbroadcast
from .registry import apply, register
from .shape import broadcast_to, to_dtype


class IndexOutOfRange(ShapeError, IndexError):
    """An index past the end of its dimension: a ShapeError, and the IndexError PyTorch raises."""


# ---- normalizing a user's index ------------------------------------------------------------
def normalize_index(index, tensor, op="index"):
    """`index` as a tuple key for `tensor`'s backend arrays, checked against its shape.

    >>> import tensorgrad as tg
    >>> normalize_index((0, slice(None, None, -1)), tg.zeros(2, 3))
    (0, slice(None, None, -1), Ellipsis)
    """
    items = index if isinstance(index, tuple) else (index,)
    key = tuple(_key_item(k, tensor, op) for k in items)
    _check_key(key, tuple(tensor.shape), op)
    key = _torch_layout(key, tuple(tensor.shape), tensor, op)
    if not any(k is Ellipsis for k in key):
        key += (Ellipsis,)  # same meaning, and an all-int key then gives a 0-d view, not a scalar
    return key


def _key_item(k, tensor, op):
    if k is None or k is Ellipsis or isinstance(k, bool):
        return k
    if isinstance(k, Tensor):
        return _tensor_item(k, tensor, op)
    if isinstance(k, slice):
        return slice(*(None if s is None else s.__index__() for s in (k.start, k.stop, k.step)))
    if isinstance(k, (list, tuple)) or hasattr(k, "dtype"):
        return _array_item(k, tensor, op)
    if hasattr(k, "__index__"):
        return k.__index__()
    raise TypeError(f"{op}: unsupported index of type {type(k).__name__}\n  hint: index with "
                    "ints, slices, None, ..., lists, or integer/bool tensors")


def _tensor_item(k, tensor, op):
    if k.dtype.is_floating_point:
        raise IndexError(f"{op}: tensors used as indices must be long, int, byte or bool "
                         f"tensors, got {k.dtype}\n  hint: convert it, e.g. idx.long()")
    if k.ndim == 0 and k.dtype.name != "bool":
        return int(k.item())  # 0-d int tensors act as ints, from any device
    if k.device != tensor.device:
        raise DeviceError(f"{op}: indices are on {k.device} but the indexed tensor "
                          f"{tuple(tensor.shape)} is on {tensor.device}\n  hint: move the "
                          f"indices first, e.g. idx.to('{tensor.device}')")
    a = k._array
    return a.astype(bool) if k.dtype.name == "uint8" else a  # byte tensors are masks


def _array_item(k, tensor, op):
    a = tensor._backend.asarray(k, None, tensor.device.index)
    if a.size == 0 and a.dtype.kind == "f":
        a = a.astype("int64")  # x[[]] selects nothing
    if a.dtype.kind not in "biu":
        raise IndexError(f"{op}: arrays used as indices must be of integer or bool type, got "
                         f"{a.dtype}\n  hint: convert them, e.g. idx.astype(int)")
    if a.ndim == 0 and a.dtype.kind != "b":
        return int(a)
    return a


def _dims_used(k):
    if k is None or k is Ellipsis or isinstance(k, bool):
        return 0
    if hasattr(k, "dtype") and k.dtype.kind == "b":
        return k.ndim
    return 1


def _check_key(key, shape, op):
    used = sum(_dims_used(k) for k in key)
    if sum(k is Ellipsis for k in key) > 1:
        raise IndexError(f"{op}: an index can only have a single ellipsis ('...')")
    if used > len(shape):
        raise IndexOutOfRange(f"{op}: too many indices for a tensor of shape {shape}: {used} "
                              f"dimensions indexed\n  hint: index at most {len(shape)}")
    axis = 0
    for k in key:
        if k is Ellipsis:
            axis += len(shape) - used
        elif isinstance(k, int) and not isinstance(k, bool):
            _check_range(k, k, axis, shape, op)
            axis += 1
        elif hasattr(k, "dtype"):
            axis = _check_array(k, axis, shape, op)
        elif isinstance(k, slice):
            axis += 1


def _check_array(a, axis, shape, op):
    if a.dtype.kind == "b":
        if tuple(a.shape) != shape[axis:axis + a.ndim]:
            raise IndexOutOfRange(
                f"{op}: the mask of shape {tuple(a.shape)} does not match the indexed tensor "
                f"of shape {shape} at dimensions {axis}..{axis + a.ndim - 1}\n  hint: a bool "
                f"mask needs the shape of the dimensions it selects, {shape[axis:axis + a.ndim]}")
        return axis + a.ndim
    if a.size:
        _check_range(int(a.min()), int(a.max()), axis, shape, op)
    return axis + 1


def _check_range(low, high, axis, shape, op, allow_negative=True):
    n = shape[axis]
    bad = high if high >= n else (low if low < (-n if allow_negative else 0) else None)
    if bad is not None:
        valid = f"-{n}..{n - 1}" if allow_negative else f"0..{n - 1}"
        raise IndexOutOfRange(f"{op}: index {bad} is out of bounds for dimension {axis} with "
                              f"size {n} (tensor of shape {shape})\n  hint: valid indices "
                              f"there are {valid}")


def _is_array(k):
    return hasattr(k, "dtype")


def _is_int(k):
    return isinstance(k, int) and not isinstance(k, bool)


def _torch_layout(key, shape, tensor, op):
    """Rewrite a key NumPy would lay out differently from PyTorch.

    Beside index arrays NumPy counts ints as advanced indices too, so in `x[0, :, idx]` it
    sees two advanced indices apart and moves their dimensions to the front; PyTorch drops the
    int's dimension first, leaving `idx` in place. Turning the slices between such an int and
    the arrays into broadcast `arange` indices makes the whole span advanced and adjacent, so
    NumPy keeps it in place, in PyTorch's order. Other keys are returned as they are.
    """
    arrays = [i for i, k in enumerate(key) if _is_array(k)]
    if not arrays or not any(_is_int(k) for k in key):
        return key
    if not all(_is_array(k) or _is_int(k) for k in key[arrays[0]:arrays[-1] + 1]):
        return key  # arrays apart: both libraries put their dimensions first
    adv = [i for i, k in enumerate(key) if _is_array(k) or _is_int(k)]
    if adv[-1] - adv[0] + 1 == len(adv):
        return key  # NumPy sees one adjacent block too
    key = _explicit(key, len(shape))
    return _span_to_arange(key, shape, tensor, op)


def _explicit(key, ndim):
    """`...` spelled out as slices and bool masks as their int arrays: one item per axis."""
    out = []
    for k in key:
        if k is Ellipsis:
            out += [slice(None)] * (ndim - sum(_dims_used(j) for j in key))
        elif _is_array(k) and k.dtype.kind == "b":
            out += list(k.nonzero())
        else:
            out.append(k)
    return tuple(out)


def _span_to_arange(key, shape, tensor, op):
    arrays = [i for i, k in enumerate(key) if _is_array(k)]
    adv = [i for i, k in enumerate(key) if _is_array(k) or _is_int(k)]
    lo, hi = arrays[0], arrays[-1]
    if any(key[i] is None for i in range(adv[0], adv[-1] + 1)):
        raise IndexError(f"{op}: None between an int index and index arrays is not supported"
                         "\n  hint: index in two steps, e.g. x[0][None, :, idx]")
    axis = {i: sum(_dims_used(k) for k in key[:i] if k is not None) for i in range(len(key))}
    before = [i for i in range(adv[0], lo) if isinstance(key[i], slice)]
    after = [i for i in range(hi + 1, adv[-1] + 1) if isinstance(key[i], slice)]
    block = broadcast_shapes(*(tuple(key[i].shape) for i in arrays), op=op)
    total = len(before) + len(block) + len(after)
    new = list(key)
    for j, i in enumerate(before + after):
        r = tensor._backend.asarray(range(*key[i].indices(shape[axis[i]])), "int64",
                                    tensor.device.index)
        lead = j if j < len(before) else len(before) + len(block) + j - len(before)
        new[i] = r.reshape((1,) * lead + (r.size,) + (1,) * (total - lead - 1))
    for i in arrays:
        new[i] = key[i].reshape(tuple(key[i].shape) + (1,) * len(after))
    return tuple(new)


def _has_int_array(key):
    return any(hasattr(k, "dtype") and k.dtype.kind in "iu" for k in key)


def _add_at(xp, out, key, values):
    """out[key] += values, accumulating over repeated indices (unbuffered)."""
    if hasattr(xp.add, "at"):  # NumPy, and CuPy from v12 (cupyx.scatter_add underneath)
        xp.add.at(out, key, values)
        return
    # Portable fallback: the flat position of each selected element, summed by bincount.
    flat = xp.arange(out.size).reshape(out.shape)[key]
    weights = xp.broadcast_to(xp.asarray(values), flat.shape).ravel()
    sums = xp.bincount(flat.ravel(), weights=weights, minlength=out.size)
    out += sums.reshape(out.shape).astype(out.dtype, copy=False)


# ---- getitem and its scatter-add gradient --------------------------------------------------
def _getitem(xp, x, key):
    return x[key]


def _getitem_vjp(ctx, g, key):
    return (apply(GETITEM_GRAD, (g,), {"key": key, "shape": ctx.in_meta[0][0]}),)


GETITEM = register("getitem", _getitem, _getitem_vjp, view=True)


def _getitem_grad(xp, g, key, shape):
    out = xp.zeros(shape, dtype=g.dtype)
    if _has_int_array(key):
        _add_at(xp, out, key, g)  # repeated indices accumulate
    else:
        out[key] = g  # basic indices and masks never repeat an element
    return out


def _getitem_grad_vjp(ctx, g, key, shape):
    return (apply(GETITEM, (g,), {"key": key}),)


# zeros of `shape` with g scattered-added at `key`: the VJP of getitem, and getitem's transpose.
GETITEM_GRAD = register("getitem_grad", _getitem_grad, _getitem_grad_vjp)


def getitem(input, index):
    """`input[index]`: a view for basic indexing, a copy for advanced (int/bool arrays)."""
    return apply(GETITEM, (input,), {"key": normalize_index(index, input)})


# ---- index_put: out-of-place x[key] = value ------------------------------------------------
def _index_put(xp, x, value, key, accumulate):
    out = x.copy()
    if accumulate and _has_int_array(key):
        _add_at(xp, out, key, value)
    elif accumulate:
        out[key] += value
    else:
        out[key] = value
    return out


def _index_put_vjp(ctx, g, key, accumulate):
    gx = gv = None
    if ctx.needs_input_grad[0]:
        gx = g if accumulate else apply(INDEX_PUT, (g, 0), {"key": key, "accumulate": False})
    if ctx.needs_input_grad[1]:
        gv = _sum_to(apply(GETITEM, (g,), {"key": key}), ctx.in_meta[1][0])
    return gx, gv


INDEX_PUT = register("index_put", _index_put, _index_put_vjp)


def _sum_to(g, shape):
    # NumPy lets a value carry extra leading 1s beyond the indexed shape: put them back first.
    if g.ndim < len(shape):
        g = g.reshape((1,) * (len(shape) - g.ndim) + tuple(g.shape))
    return unbroadcast(g, shape)


def index_put(input, indices, values, accumulate=False):
    """A copy of `input` with `values` (broadcast, cast to input's dtype) written at `indices`.

    >>> import tensorgrad as tg
    >>> tg.index_put(tg.zeros(3), (tg.tensor([0, 0, 2]),), tg.tensor(1.0), accumulate=True)
    tensor([2., 0., 1.])
    """
    need_tensor(input, "index_put")
    key = normalize_index(indices, input, "index_put")
    if isinstance(values, Tensor):
        values = to_dtype(values, input.dtype)
    elif not isinstance(values, (int, float)):
        from ..creation import tensor
        values = tensor(values, dtype=input.dtype, device=input.device)
    try:
        return apply(INDEX_PUT, (input, values), {"key": key, "accumulate": bool(accumulate)})
    except ValueError as e:
        if isinstance(e, ShapeError):
            raise
        raise ShapeError(f"index_put: values of shape {tuple(getattr(values, 'shape', ()))} do "
                         f"not fit the indexed part of the input {tuple(input.shape)}: {e}\n"
                         "  hint: values must broadcast to the shape of input[indices]") from e


# ---- gather / scatter_add along a dimension ------------------------------------------------
def _within(shape, dim=None):
    """Slices that cut an array down to `shape` in every dimension except `dim`."""
    return tuple(slice(None) if k == dim else slice(0, n) for k, n in enumerate(shape))


def _gather(xp, x, index, dim):
    return xp.take_along_axis(x[_within(index.shape, dim)], index, axis=dim), index


def _gather_vjp(ctx, g, dim):
    from ..creation import zeros
    shape, dtype, device = ctx.in_meta[0]
    index = wrap_like(ctx, ctx.res)
    return apply(SCATTER_ADD, (zeros(shape, dtype=dtype, device=device), index, g),
                 {"dim": dim}), None


GATHER = register("gather", _gather, _gather_vjp, has_res=True)


def _scatter_add(xp, x, index, src, dim):
    out = x.copy()
    nd = index.ndim
    key = tuple(index if k == dim else xp.arange(n).reshape((1,) * k + (n,) + (1,) * (nd - k - 1))
                for k, n in enumerate(index.shape))
    _add_at(xp, out, key, src[_within(index.shape)])
    return out, index


def _scatter_add_vjp(ctx, g, dim):
    gx = g if ctx.needs_input_grad[0] else None
    gs = None
    if ctx.needs_input_grad[2]:
        gs = apply(GATHER, (g, wrap_like(ctx, ctx.res)), {"dim": dim})
        src_shape = ctx.in_meta[2][0]
        if gs.shape != src_shape:  # src entries past index's shape were not used: zero grad
            from ..creation import zeros
            z = zeros(src_shape, dtype=g.dtype, device=g.device)
            gs = apply(INDEX_PUT, (z, gs), {"key": _within(gs.shape), "accumulate": False})
    return gx, None, gs


SCATTER_ADD = register("scatter_add", _scatter_add, _scatter_add_vjp, has_res=True)


def _check_along(op, input, dim, index, src=None):
    """PyTorch's gather/scatter rules: same ndim, index no larger than input (but at dim)."""
    need_tensor(index, op, "index")
    if index.dtype.is_floating_point or index.dtype.name == "bool":
        raise DTypeError(f"{op}(): expected an integer index tensor, got {index.dtype}\n"
                         "  hint: convert it, e.g. index.long()")
    shapes = f"input {tuple(input.shape)}, index {tuple(index.shape)}" + (
        "" if src is None else f", src {tuple(src.shape)}")
    if index.ndim != input.ndim or (src is not None and src.ndim != input.ndim):
        raise ShapeError(f"{op}: index and input (and src) must have the same number of "
                         f"dimensions, got {shapes}\n  hint: unsqueeze the index to match")
    for k, n in enumerate(index.shape):
        if (k != dim and n > input.shape[k]) or (src is not None and n > src.shape[k]):
            raise ShapeError(f"{op}: index is larger than the input (or src) at dimension {k}: "
                             f"{shapes}\n  hint: index may not exceed input apart from dimension"
                             f" {dim}, nor src anywhere")
    if index.numel():
        a = index._array
        _check_range(int(a.min()), int(a.max()), dim, tuple(input.shape), op,
                     allow_negative=False)


def gather(input, dim, index, *, sparse_grad=False):
    """out[i][j] = input[index[i][j]][j] (dim=0), as torch.gather.

    >>> import tensorgrad as tg
    >>> tg.gather(tg.tensor([[1., 2.], [3., 4.]]), 1, tg.tensor([[0, 0], [1, 0]]))
    tensor([[1., 1.],
            [4., 3.]])
    """
    need_tensor(input, "gather")
    d = norm_dim(dim, input.ndim, "gather")
    _check_along("gather", input, d, index)
    return apply(GATHER, (input, index), {"dim": d})


def scatter_add(input, dim, index, src):
    """A copy of input with src[i][j] added at [index[i][j]][j] (dim=0), as torch.scatter_add."""
    need_tensor(input, "scatter_add")
    need_tensor(src, "scatter_add", "src")
    d = norm_dim(dim, input.ndim, "scatter_add")
    _check_along("scatter_add", input, d, index, src)
    if src.dtype is not input.dtype:
        raise DTypeError(f"scatter_add(): expected src ({src.dtype}) to have the dtype of input "
                         f"({input.dtype})\n  hint: cast it, e.g. src.to({input.dtype})")
    return apply(SCATTER_ADD, (input, index, src), {"dim": d})


def take_along_dim(input, indices, dim=None):
    """As torch.take_along_dim: gather with input and indices broadcast apart from `dim`."""
    need_tensor(input, "take_along_dim")
    need_tensor(indices, "take_along_dim", "indices")
    if dim is None:
        return gather(input.reshape(-1), 0, indices.reshape(-1))
    d = norm_dim(dim, input.ndim, "take_along_dim")
    if indices.ndim != input.ndim:
        raise ShapeError(f"take_along_dim: input {tuple(input.shape)} and indices "
                         f"{tuple(indices.shape)} must have the same number of dimensions\n"
                         "  hint: unsqueeze the indices to match")
    ones = [tuple(1 if k == d else n for k, n in enumerate(t.shape)) for t in (input, indices)]
    common = list(broadcast_shapes(*ones, op="take_along_dim"))
    x_shape = tuple(common[:d] + [input.shape[d]] + common[d + 1:])
    i_shape = tuple(common[:d] + [indices.shape[d]] + common[d + 1:])
    return gather(broadcast_to(input, x_shape), d, broadcast_to(indices, i_shape))


def index_select(input, dim, index):
    """The entries of `input` at the 1-D `index` along `dim` (a copy)."""
    need_tensor(input, "index_select")
    need_tensor(index, "index_select", "index")
    if index.ndim > 1:
        raise ShapeError(f"index_select: index should have at most one dimension, got shape "
                         f"{tuple(index.shape)}\n  hint: flatten it, e.g. index.reshape(-1)")
    d = norm_dim(dim, input.ndim, "index_select")
    key = (slice(None),) * d + (index.reshape(-1) if index.ndim == 0 else index,)
    return apply(GETITEM, (input,), {"key": normalize_index(key, input, "index_select")})


# ---- masks ---------------------------------------------------------------------------------
def _need_mask(mask, op):
    if not isinstance(mask, Tensor) or mask.dtype.name != "bool":
        raise DTypeError(f"{op}: expected a bool mask tensor, got "
                         f"{getattr(mask, 'dtype', type(mask).__name__)}\n  hint: build it with "
                         "a comparison (x > 0) or convert it with .bool()")


def masked_fill(input, mask, value):
    """`input` with `value` where `mask` is True (differentiable in input and a tensor value)."""
    need_tensor(input, "masked_fill")
    _need_mask(mask, "masked_fill")
    if isinstance(value, Tensor) and value.ndim != 0:
        raise ShapeError(f"masked_fill: only supports a 0-dimensional value tensor, got shape "
                         f"{tuple(value.shape)}\n  hint: use tg.where(mask, value, input)")
    out = where(mask, value, input)
    return out if out.dtype is input.dtype else to_dtype(out, input.dtype)


def masked_select(input, mask):
    """The 1-D tensor of the entries of `input` where `mask` (broadcast with it) is True."""
    need_tensor(input, "masked_select")
    _need_mask(mask, "masked_select")
    shape = broadcast_shapes(input.shape, mask.shape, op="masked_select")
    return getitem(broadcast_to(input, shape), broadcast_to(mask, shape))


def _nonzero(xp, x):
    return xp.argwhere(x).astype("int64", copy=False)


NONZERO = register("nonzero", _nonzero)


def nonzero(input, *, as_tuple=False):
    """The indices of the non-zero entries: (n, ndim) int64, or one 1-D tensor per dim."""
    out = apply(NONZERO, (need_tensor(input, "nonzero"),))
    if not as_tuple:
        return out
    return tuple(getitem(out, (slice(None), k)) for k in range(out.shape[1]))


def argwhere(input):
    return nonzero(input)


# ---- in-place forms (rules in ops/inplace.py) ----------------------------------------------
def _inplace_form(name, fn, value_arg):
    def method(self, *args):
        from .inplace import _inplace
        return _inplace(self, name, lambda x: fn(x, *args), (args[value_arg],))
    method.__name__ = name
    return method


METHODS = {
    "__getitem__": getitem, "index_put": index_put, "gather": gather,
    "scatter_add": scatter_add, "take_along_dim": take_along_dim, "index_select": index_select,
    "masked_fill": masked_fill, "masked_select": masked_select, "nonzero": nonzero,
    "argwhere": argwhere,
    "index_put_": _inplace_form("index_put_", index_put, 1),
    "scatter_add_": _inplace_form("scatter_add_", scatter_add, 2),
    "masked_fill_": _inplace_form("masked_fill_", masked_fill, 1),
}
__all__ = ["index_put", "gather", "scatter_add", "take_along_dim",
           "index_select", "masked_fill", "masked_select", "nonzero", "argwhere"]
