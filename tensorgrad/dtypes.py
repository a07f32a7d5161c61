"""dtypes, PyTorch's type-promotion rules, and the default dtype.

A `dtype` wraps a NumPy dtype (CuPy shares NumPy's dtypes), so backends convert with
`dt.np`. Promotion follows `torch.result_type`, not NumPy: Python scalars never widen a
tensor, 0-d tensors only promote across categories (bool < integer < floating).

Imports nothing from tensorgrad but errors.
"""

import numpy as np

from .errors import DTypeError

_BOOL, _INT, _FLOAT = 0, 1, 2


class dtype:
    """A tensor element type: `tg.float32`, `tg.int64`, ... (compare with `==`)."""

    __slots__ = ("name", "np", "category", "itemsize")

    def __init__(self, name, np_dtype, category):
        self.name = name
        self.np = np.dtype(np_dtype)
        self.category = category
        self.itemsize = self.np.itemsize

    @property
    def is_floating_point(self):
        return self.category == _FLOAT

    @property
    def is_signed(self):
        return self.name not in ("uint8", "bool")

    def __repr__(self):
        return f"tensorgrad.{self.name}"

    def __reduce__(self):
        return (_by_name, (self.name,))


float16 = dtype("float16", np.float16, _FLOAT)
float32 = dtype("float32", np.float32, _FLOAT)
float64 = dtype("float64", np.float64, _FLOAT)
uint8 = dtype("uint8", np.uint8, _INT)
int8 = dtype("int8", np.int8, _INT)
int16 = dtype("int16", np.int16, _INT)
int32 = dtype("int32", np.int32, _INT)
int64 = dtype("int64", np.int64, _INT)
bool_ = dtype("bool", np.bool_, _BOOL)

# PyTorch's aliases.
half, float, double = float16, float32, float64
short, int, long = int16, int32, int64

ALL = (float16, float32, float64, uint8, int8, int16, int32, int64, bool_)
_FROM_NP = {d.np: d for d in ALL}
_BY_NAME = {d.name: d for d in ALL}
_default = float32


def _by_name(name):
    return _BY_NAME[name]


def from_numpy_dtype(np_dtype):
    """The tensorgrad dtype of a NumPy/CuPy dtype; DTypeError for unsupported ones."""
    try:
        return _FROM_NP[np.dtype(np_dtype)]
    except (KeyError, TypeError):
        names = ", ".join(d.name for d in ALL)
        raise DTypeError(f"unsupported dtype {np_dtype!r}\n  hint: use one of {names}") from None


def as_dtype(x):
    """Accept a tensorgrad dtype, a NumPy dtype, a type like `np.float32`, or a name."""
    if isinstance(x, dtype):
        return x
    if isinstance(x, str) and x in _BY_NAME:
        return _BY_NAME[x]
    if x is builtins_float:
        return _default
    if x is builtins_int:
        return int64
    if x is builtins_bool:
        return bool_
    return from_numpy_dtype(x)


builtins_float, builtins_int, builtins_bool = (1.0).__class__, (1).__class__, True.__class__


def get_default_dtype():
    return _default


def set_default_dtype(d):
    """Set the dtype Python floats and float factories get (float16/32/64 only)."""
    global _default
    d = as_dtype(d)
    if not d.is_floating_point:
        raise DTypeError(f"set_default_dtype: {d} is not a floating dtype\n"
                         "  hint: use tg.float32 or tg.float64")
    _default = d


def promote_types(a, b):
    """PyTorch's promoteTypes: within floats NumPy's rule, a float beats any integer."""
    if a is b:
        return a
    if a.category == _FLOAT and b.category != _FLOAT:
        return a
    if b.category == _FLOAT and a.category != _FLOAT:
        return b
    return _FROM_NP[np.promote_types(a.np, b.np)]


def scalar_dtype(x):
    """The dtype a Python scalar takes part in promotion with."""
    if isinstance(x, builtins_bool):
        return bool_
    if isinstance(x, builtins_int):
        return int64
    return _default


def _combine(higher, lower):
    # torch's combine_categories: a tier only wins over a higher-priority one when it
    # belongs to a higher category (bool < int < float).
    if higher is None:
        return lower
    if lower is None or higher.category == _FLOAT:
        return higher
    if higher.category == _BOOL or lower.category == _FLOAT:
        return promote_types(higher, lower)
    return higher


def result_type(*operands):
    """`torch.result_type` over tensors and Python scalars.

    >>> import tensorgrad as tg
    >>> tg.result_type(tg.ones(2, dtype=tg.int32), 2.5)
    tensorgrad.float32
    """
    dim = zero = wrapped = None
    for x in operands:
        d = getattr(x, "dtype", None)
        if d is None:
            s = scalar_dtype(x)
            wrapped = s if wrapped is None else promote_types(wrapped, s)
        elif x.ndim == 0:
            zero = d if zero is None else promote_types(zero, d)
        else:
            dim = d if dim is None else promote_types(dim, d)
    return _combine(dim, _combine(zero, wrapped))
