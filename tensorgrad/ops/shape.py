"""Shape and layout ops: casts and transfers, reshape/view, expand/broadcast_to, transpose,
permute, movedim, squeeze/unsqueeze, flatten/unflatten, flip/roll, tril/triu. Ops that cut
or join tensors (narrow, split, cat, stack, pad, repeat/tile) live in join.py.

Views (reshape, transpose, permute, expand) share storage where NumPy would, and then share
their base's version counter, so an in-place write through either is seen by saved-tensor
checks. A view that changes nothing (reshape to the same shape, an identity permute, squeeze
without size-1 dims) is still a new tensor, recorded as its op, as in PyTorch: returning the
input itself would make `v.requires_grad_(False)` or an in-place write through `v` act on the
base as a leaf. Only `flatten` over a single dimension and a cast to the dtype it already has
return their input, as PyTorch's do.
"""

import math

from .. import backend_api
from ..dtypes import as_dtype
from ..errors import ShapeError
from ..tensor import Tensor
from ._util import need_tensor, norm_dim, norm_dims
from .broadcast import unbroadcast
from .registry import apply, register


# ---- dtype casts and device transfers -------------------------------------------------------
def _to_dtype(xp, x, dtype):
    return x.astype(dtype)


def _to_dtype_vjp(ctx, g, dtype):
    return (to_dtype(g, ctx.in_meta[0][1]),)


TO_DTYPE = register("to_dtype", _to_dtype, _to_dtype_vjp)


def to_dtype(x, dtype):
    """`x` cast to `dtype` (x itself when it already has it); differentiable between floats."""
    d = as_dtype(dtype)
    if x._array.dtype == d.np:
        return x
    out = apply(TO_DTYPE, (x,), {"dtype": d.np})
    if not d.is_floating_point and out._rg:
        out = out.detach()  # gradients do not flow into integer tensors
    return out


def _transfer(array, source, target):
    # Through host memory: correct for any pair of backends.
    host = backend_api.get_backend(source.type).to_numpy(array)
    dst = backend_api.usable_backend(target.type)
    return dst.asarray(host, None, target.index)


def _to_device_vjp(ctx, g, target, source):
    return (_to_device(g, source),)


def _to_device_fwd(xp, x, target, source):
    return _transfer(x, source, target)


# Dispatch runs an op on its inputs' device, so `_to_device` records this op by hand.
TO_DEVICE = register("to_device", _to_device_fwd, _to_device_vjp)


def _to_device(x, target):
    """Copy `x` to device `target`, recorded so the gradient flows back to x's device."""
    from ..autograd import graph
    from .registry import _record
    source = x._device
    out = _to_device_fwd(None, x._array, target, source)
    if not (x._rg and graph._mode.enabled):
        return Tensor._wrap(out, target)
    return _record(TO_DEVICE, (x,), {"target": target, "source": source}, out, None, target,
                   None)


# ---- reshape / view / flatten -------------------------------------------------------------
def _reshape(xp, x, shape):
    return x.reshape(shape)  # the method: NumPy's function wrapper costs as much again


def _reshape_vjp(ctx, g, shape):
    return (g.reshape(ctx.in_meta[0][0]),)


RESHAPE = register("reshape", _reshape, _reshape_vjp, view=True)


def _shape_arg(shape, op):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    try:
        return tuple(int(s) for s in shape)
    except TypeError:
        raise TypeError(f"{op}(): shape must be ints, got {shape!r}") from None


def _infer_shape(shape, numel, in_shape, op):
    if shape.count(-1) > 1:
        raise ShapeError(f"{op}: only one dimension can be inferred (-1), got {shape}")
    if any(s < -1 for s in shape):
        raise ShapeError(f"{op}: invalid shape dimension {min(shape)} in {shape}\n  hint: sizes "
                         "must be >= 0, or -1 for the one dimension to infer")
    known = math.prod(s for s in shape if s != -1)
    if -1 in shape:
        if known == 0 or numel % known:
            raise _reshape_error(op, in_shape, shape, numel)
        shape = tuple(numel // known if s == -1 else s for s in shape)
    elif known != numel:
        raise _reshape_error(op, in_shape, shape, numel)
    return shape


def _reshape_error(op, in_shape, shape, numel):
    return ShapeError(f"{op}: shape {tuple(shape)} is invalid for an input of shape "
                      f"{tuple(in_shape)} ({numel} elements)\n  hint: the new shape must have "
                      f"{numel} elements; use -1 for one dimension to infer it")


def reshape(input, *shape):
    """The same elements in a new shape (a view where NumPy can make one); -1 infers a size."""
    return _reshape(input, shape, "reshape")


def view(input, *shape):
    return _reshape(input, shape, "view")


def _reshape(input, shape, op):
    need_tensor(input, op)
    shape = _shape_arg(shape, op)
    if shape != input._array.shape:  # the same shape, a no-op view, needs no checks
        shape = _infer_shape(shape, input._array.size, input.shape, op)
    return apply(RESHAPE, (input,), {"shape": shape})


def flatten(input, start_dim=0, end_dim=-1):
    need_tensor(input, "flatten")
    if input.ndim == 0:
        return reshape(input, 1)
    s = norm_dim(start_dim, input.ndim, "flatten")
    e = norm_dim(end_dim, input.ndim, "flatten")
    if s > e:
        raise ShapeError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    if s == e:
        return input  # nothing to flatten: PyTorch returns the input itself, not a view
    shape = input.shape
    return reshape(input, shape[:s] + (math.prod(shape[s:e + 1]),) + shape[e + 1:])


def view_as(input, other):
    return reshape(input, other.shape)


def reshape_as(input, other):
    return reshape(input, other.shape)


def unflatten(input, dim, sizes):
    """Split dimension `dim` into `sizes` (one of them may be -1)."""
    need_tensor(input, "unflatten")
    d = norm_dim(dim, input.ndim, "unflatten")
    sizes = _infer_shape(_shape_arg((sizes,), "unflatten"), input.shape[d], (input.shape[d],),
                         "unflatten")
    return reshape(input, input.shape[:d] + sizes + input.shape[d + 1:])


# ---- squeeze / unsqueeze: reshapes that drop or add size-1 dimensions ---------------------
def squeeze(input, dim=None):
    """Drop size-1 dimensions (all of them, or those in `dim`; others in `dim` stay, as in
    PyTorch).

    >>> import tensorgrad as tg
    >>> tg.zeros(2, 1, 3, 1).squeeze((1, 2)).shape
    (2, 3, 1)
    """
    need_tensor(input, "squeeze")
    dims = range(input.ndim) if dim is None else norm_dims(dim, input.ndim, "squeeze")
    shape = tuple(s for i, s in enumerate(input.shape) if not (s == 1 and i in dims))
    return reshape(input, shape)


def unsqueeze(input, dim):
    """Insert a size-1 dimension at `dim` (from -ndim-1 to ndim)."""
    need_tensor(input, "unsqueeze")
    d = norm_dim(dim, input.ndim + 1, "unsqueeze")
    return reshape(input, input.shape[:d] + (1,) + input.shape[d:])


# ---- expand / broadcast_to ---------------------------------------------------------------
def _broadcast_to(xp, x, shape):
    return xp.broadcast_to(x, shape)


def _broadcast_to_vjp(ctx, g, shape):
    return (unbroadcast(g, ctx.in_meta[0][0]),)


BROADCAST_TO = register("broadcast_to", _broadcast_to, _broadcast_to_vjp, view=True)


def broadcast_to(input, shape):
    """A view of `input` repeated (without copying) to `shape`; read-only where it repeats."""
    need_tensor(input, "broadcast_to")
    shape = tuple(int(s) for s in shape)
    if shape == input._array.shape:
        # Nothing is repeated, so the view may be written to, as in PyTorch: reshape's view
        # is writable, where broadcast_to's (a stride-0 view in general) is read-only.
        return apply(RESHAPE, (input,), {"shape": shape})
    lead = len(shape) - input.ndim
    ok = lead >= 0 and min(shape, default=0) >= 0 and all(
        d == s or d == 1 for d, s in zip(input.shape, shape[lead:], strict=True))
    if not ok:
        raise ShapeError(f"broadcast_to/expand: cannot expand shape {tuple(input.shape)} to "
                         f"{shape}\n  hint: only size-1 dimensions can be expanded, and new "
                         "dimensions go on the left")
    return apply(BROADCAST_TO, (input,), {"shape": shape})


def expand(input, *sizes):
    """PyTorch's expand: like broadcast_to, with -1 meaning 'keep this size'."""
    sizes = _shape_arg(sizes, "expand")
    lead = len(sizes) - input.ndim
    shape = tuple(input.shape[i - lead] if s == -1 and i >= lead else s
                  for i, s in enumerate(sizes))
    return broadcast_to(input, shape)


def expand_as(input, other):
    return broadcast_to(input, other.shape)


# ---- transpose / permute ----------------------------------------------------------------
def _permute(xp, x, dims):
    return xp.transpose(x, dims)


def _permute_vjp(ctx, g, dims):
    inverse = [0] * len(dims)
    for i, d in enumerate(dims):
        inverse[d] = i
    return (permute(g, tuple(inverse)),)


PERMUTE = register("permute", _permute, _permute_vjp, view=True)


def permute(input, *dims):
    need_tensor(input, "permute")
    dims = _shape_arg(dims, "permute")
    if len(dims) != input.ndim:
        raise ShapeError(f"permute: the number of dims ({len(dims)}) does not match the "
                         f"number of dimensions of the input {tuple(input.shape)}")
    dims = tuple(norm_dim(d, input.ndim, "permute") for d in dims)
    if sorted(dims) != list(range(input.ndim)):
        raise ShapeError(f"permute: dims {dims} is not a permutation of 0..{input.ndim - 1}")
    return apply(PERMUTE, (input,), {"dims": dims})


def transpose(input, dim0, dim1):
    """Swap two dimensions (PyTorch's transpose, not NumPy's)."""
    need_tensor(input, "transpose")
    n = input.ndim
    # A 0-d input takes dims -1 and 0, as in PyTorch, and gives a 0-d view.
    d0, d1 = norm_dim(dim0, n, "transpose"), norm_dim(dim1, n, "transpose")
    dims = list(range(n))
    if n:
        dims[d0], dims[d1] = dims[d1], dims[d0]
    return permute(input, tuple(dims))


swapaxes = swapdims = transpose


def t(input):
    if input.ndim > 2:
        raise ShapeError(f"t: expects a tensor with <= 2 dimensions, got {tuple(input.shape)}"
                         "\n  hint: use transpose(dim0, dim1) or .mT for batches")
    if input.ndim == 2:
        return transpose(input, 0, 1)
    return permute(input, tuple(range(input.ndim)))  # 0-d, 1-d: a view, as in PyTorch


def _T(self):
    return permute(self, tuple(range(self.ndim - 1, -1, -1)))


def _mT(self):
    n = self.ndim
    if n < 2:
        raise ShapeError(f"mT: expects a tensor with >= 2 dimensions, got {tuple(self.shape)}")
    # Straight to the op: every linear layer's backward takes .mT, and the checks of
    # transpose/permute have nothing to find here.
    return apply(PERMUTE, (self,), {"dims": (*range(n - 2), n - 1, n - 2)})


def _dim_tuple(dims, ndim, op):
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    return tuple(norm_dim(d, ndim, op) for d in dims)


def movedim(input, source, destination):
    """Move dimensions `source` to positions `destination`; the others keep their order."""
    need_tensor(input, "movedim")
    src = _dim_tuple(source, input.ndim, "movedim")
    dst = _dim_tuple(destination, input.ndim, "movedim")
    if len(src) != len(dst):
        raise ShapeError(f"movedim: source {source} and destination {destination} must name "
                         "the same number of dimensions")
    if len(set(src)) != len(src) or len(set(dst)) != len(dst):
        raise ShapeError(f"movedim: repeated dim in source {source} or destination "
                         f"{destination}")
    order = [d for d in range(input.ndim) if d not in src]
    for d, s in sorted(zip(dst, src, strict=True)):
        order.insert(d, s)
    return permute(input, tuple(order))


moveaxis = movedim


# ---- flip / roll / tril / triu: copies that move or mask elements -----------------------
def _flip(xp, x, dims):
    return xp.flip(x, axis=dims).copy()  # PyTorch's flip copies; NumPy's would be a view


def _flip_vjp(ctx, g, dims):
    return (apply(FLIP, (g,), {"dims": dims}),)


FLIP = register("flip", _flip, _flip_vjp)


def flip(input, *dims_args, dims=None):
    """Reverse the order of elements along `dims`: `x.flip(0)`, `tg.flip(x, (0, 1))`."""
    need_tensor(input, "flip")
    if dims is None:
        dims = dims_args[0] if len(dims_args) == 1 else dims_args
    return apply(FLIP, (input,), {"dims": _dim_tuple(dims, input.ndim, "flip")})


def _roll(xp, x, shifts, dims):
    return xp.roll(x, shifts, axis=dims)


def _roll_vjp(ctx, g, shifts, dims):
    back = -shifts if isinstance(shifts, int) else tuple(-s for s in shifts)
    return (apply(ROLL, (g,), {"shifts": back, "dims": dims}),)


ROLL = register("roll", _roll, _roll_vjp)


def roll(input, shifts, dims=None):
    """Shift elements circularly along `dims` (over the flattened tensor when None)."""
    need_tensor(input, "roll")
    if dims is None:
        if not isinstance(shifts, int):
            (shifts,) = shifts  # PyTorch allows one shift without dims
        return apply(ROLL, (input,), {"shifts": int(shifts), "dims": None})
    dims = _dim_tuple(dims, input.ndim, "roll")
    shifts = (shifts,) if isinstance(shifts, int) else tuple(int(s) for s in shifts)
    if len(shifts) != len(dims):
        raise ShapeError(f"roll: shifts {shifts} and dims {dims} must have the same length")
    return apply(ROLL, (input,), {"shifts": shifts, "dims": dims})


def _tril(xp, x, diagonal):
    return xp.tril(x, diagonal)


def _tril_vjp(ctx, g, diagonal):
    return (apply(TRIL, (g,), {"diagonal": diagonal}),)


def _triu(xp, x, diagonal):
    return xp.triu(x, diagonal)


def _triu_vjp(ctx, g, diagonal):
    return (apply(TRIU, (g,), {"diagonal": diagonal}),)


TRIL = register("tril", _tril, _tril_vjp)
TRIU = register("triu", _triu, _triu_vjp)


def _triangle(op, input, diagonal):
    need_tensor(input, op.name)
    if input.ndim < 2:
        raise ShapeError(f"{op.name}: input must have at least 2 dimensions, got shape "
                         f"{tuple(input.shape)}\n  hint: it works on the last two dimensions "
                         "(matrices, batched); reshape a vector first")
    return apply(op, (input,), {"diagonal": int(diagonal)})


def tril(input, diagonal=0):
    """The lower triangle of the last two dims (on and below `diagonal`); the rest is 0."""
    return _triangle(TRIL, input, diagonal)


def triu(input, diagonal=0):
    """The upper triangle of the last two dims (on and above `diagonal`); the rest is 0."""
    return _triangle(TRIU, input, diagonal)


# ---- copies ----------------------------------------------------------------------------
def _clone(xp, x):
    return x.copy()


def _clone_vjp(ctx, g):
    return (g,)


CLONE = register("clone", _clone, _clone_vjp)


def clone(input):
    return apply(CLONE, (need_tensor(input, "clone"),))


def _contiguous(xp, x):
    # ascontiguousarray promotes 0-d to 1-d: keep the shape.
    return x if x.flags.c_contiguous else xp.ascontiguousarray(x).reshape(x.shape)


CONTIGUOUS = register("contiguous", _contiguous, _clone_vjp, view=True)


def contiguous(input):
    return apply(CONTIGUOUS, (need_tensor(input, "contiguous"),))


def _cast_method(dtype_name):
    def cast(self):
        return to_dtype(self, dtype_name)
    cast.__name__ = dtype_name
    return cast


METHODS = {
    "reshape": reshape, "view": view, "flatten": flatten, "view_as": view_as,
    "reshape_as": reshape_as, "expand": expand, "expand_as": expand_as,
    "broadcast_to": broadcast_to, "permute": permute, "transpose": transpose,
    "swapaxes": swapaxes, "swapdims": swapdims, "t": t, "T": property(_T), "mT": property(_mT),
    "clone": clone, "contiguous": contiguous, "unflatten": unflatten, "squeeze": squeeze,
    "unsqueeze": unsqueeze, "movedim": movedim, "moveaxis": moveaxis, "flip": flip,
    "roll": roll, "tril": tril, "triu": triu,
    "float": _cast_method("float32"), "double": _cast_method("float64"),
    "half": _cast_method("float16"), "int": _cast_method("int32"),
    "long": _cast_method("int64"), "short": _cast_method("int16"), "bool": _cast_method("bool"),
    "byte": _cast_method("uint8"), "char": _cast_method("int8"),
}
__all__ = ["reshape", "flatten", "unflatten", "broadcast_to", "permute", "transpose",
           "swapaxes", "swapdims", "t", "clone", "squeeze", "unsqueeze", "movedim", "moveaxis",
           "flip", "roll", "tril", "triu"]
