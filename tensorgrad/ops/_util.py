"""Small helpers shared by the op families: argument checks and dtype casts."""

from ..dtypes import _FLOAT, get_default_dtype
from ..errors import ShapeError
from ..tensor import Tensor


def need_tensor(x, op, arg="input"):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}(): argument '{arg}' must be a Tensor, not {type(x).__name__}\n"
                        f"  hint: wrap it with tg.tensor(...)")
    return x


def as_float(x, op):
    """`x` itself if floating, else cast to the default dtype (as PyTorch's exp(int) does)."""
    need_tensor(x, op)
    if x.dtype.category == _FLOAT:
        return x
    from .shape import to_dtype
    return to_dtype(x, get_default_dtype())


def norm_dim(dim, ndim, op):
    """One dimension index, negative allowed, checked against `ndim`."""
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise ShapeError(f"{op}: dimension out of range (expected to be in range of "
                         f"[{-n}, {n - 1}], but got {dim})")
    return dim % n


def norm_dims(dim, ndim, op):
    """`dim` (None, an int, or a sequence) as a sorted tuple of non-negative axes."""
    if dim is None:
        return tuple(range(ndim))
    if isinstance(dim, int):
        return (norm_dim(dim, ndim, op),)
    axes = tuple(sorted(norm_dim(d, ndim, op) for d in dim))
    if len(set(axes)) != len(axes):
        raise ShapeError(f"{op}: dimension listed twice in dim={tuple(dim)}")
    return axes


def alias(value, alias_value, name, alias_name, op, default=None):
    """Accept NumPy's keyword (`axis`, `keepdims`) as an alias of PyTorch's (`dim`, `keepdim`)."""
    if alias_value is not None:
        if value is not None and value != default:
            raise TypeError(f"{op}(): got both '{name}' and its alias '{alias_name}'")
        return alias_value
    return default if value is None else value


def wrap_like(ctx, array):
    """A constant Tensor on the node's device holding a residual array (a mask, indices)."""
    return Tensor._wrap(array, ctx.out_meta[2])
