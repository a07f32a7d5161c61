"""Binary ops: arithmetic, pow, maximum/minimum, where, comparisons and logical ops.

Operands are promoted by `torch.result_type` (Python scalars never widen a tensor), then the
op broadcasts like NumPy. Each VJP returns the full-shape cotangent through `_reduce`, which
un-broadcasts it to the input's shape with the one shared helper.
"""

import math

from ..dtypes import _FLOAT, _INT, get_default_dtype, result_type
from ..errors import DTypeError
from ..tensor import Tensor
from ._util import wrap_like
from .broadcast import broadcast_shapes, unbroadcast
from .registry import apply, register


def _reduce(ctx, i, g):
    """Un-broadcast `g` to input i's shape (None when input i needs no gradient)."""
    meta = ctx.in_meta[i]
    if meta is None:
        return None
    # Equal shapes, the common case, need no call into the helper.
    return g if g._array.shape == meta[0] else unbroadcast(g, meta[0])


def _operands(a, b, op, true_div=False):
    """Cast tensor operands to the promoted dtype; Python scalars stay weak."""
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        raise TypeError(f"{op}(): expected at least one Tensor, got {type(a).__name__} and "
                        f"{type(b).__name__}")
    for x in (a, b):
        if not isinstance(x, (Tensor, int, float, bool)):
            raise TypeError(f"{op}(): unsupported operand type {type(x).__name__}\n"
                            "  hint: operands must be Tensors or Python numbers")
    if (isinstance(a, Tensor) and isinstance(b, Tensor)
            and a._array.dtype is b._array.dtype and (not true_div or a.dtype.category == _FLOAT)):
        if a._array.shape != b._array.shape:
            broadcast_shapes(a._array.shape, b._array.shape, op=op)
        return a, b
    dt = result_type(a, b)
    if true_div and dt.category != _FLOAT:
        dt = get_default_dtype()
    from .shape import to_dtype
    both = isinstance(a, Tensor) and isinstance(b, Tensor)
    if isinstance(a, Tensor) and not (both and _mask_of(a, b, dt)):
        a = to_dtype(a, dt)
    if isinstance(b, Tensor) and not (both and _mask_of(b, a, dt)):
        b = to_dtype(b, dt)
    if both and a._array.shape != b._array.shape:
        broadcast_shapes(a._array.shape, b._array.shape, op=op)
    return _wrap_int(a, dt), _wrap_int(b, dt)


def _boolish(x):
    return type(x) is bool or isinstance(x, Tensor) and x._array.dtype.kind == "b"


def _mask_of(x, other, dt):
    # A bool tensor beside a tensor of the result dtype is left as it is: the ufunc's own
    # bool loop gives the same dtype without materialising a converted copy (g * mask is
    # how VJPs apply masks, and the copy cost as much as the multiply).
    return x._array.dtype.kind == "b" and other._array.dtype == dt.np


def _wrap_int(x, dt):
    # PyTorch casts an out-of-range Python int to the integer dtype, wrapping around
    # (uint8 + -1 adds 255); NumPy 2 raises OverflowError instead.
    if dt.category != _INT or isinstance(x, (Tensor, bool, float)):
        return x
    bits = 8 * dt.itemsize
    x &= (1 << bits) - 1
    return x - (1 << bits) if dt.is_signed and x >= 1 << (bits - 1) else x


# ---- arithmetic ---------------------------------------------------------------------------
def _add(xp, a, b):
    return xp.add(a, b)


def _add_vjp(ctx, g):
    return _reduce(ctx, 0, g), _reduce(ctx, 1, g)


ADD = register("add", _add, _add_vjp)


def _sub(xp, a, b):
    return xp.subtract(a, b)


def _sub_vjp(ctx, g):
    return _reduce(ctx, 0, g), (None if ctx.in_meta[1] is None else _reduce(ctx, 1, -g))


SUB = register("sub", _sub, _sub_vjp)


def _mul(xp, a, b):
    return xp.multiply(a, b)


def _mul_vjp(ctx, g):
    # Straight to the op: g has the output's dtype and the inputs were promoted when mul
    # ran, so the public function's promotion and broadcast checks would find nothing.
    a, b = ctx.inputs
    need_a, need_b = ctx.needs_input_grad
    return (_reduce(ctx, 0, apply(MUL, (g, b))) if need_a else None,
            _reduce(ctx, 1, apply(MUL, (g, a))) if need_b else None)


MUL = register("mul", _mul, _mul_vjp, save_inputs=True)


def _div(xp, a, b):
    return xp.true_divide(a, b)


def _div_vjp(ctx, g):
    a, b = ctx.inputs
    need_a, need_b = ctx.needs_input_grad
    ga = g / b if need_a or need_b else None
    return (_reduce(ctx, 0, ga) if need_a else None,
            _reduce(ctx, 1, -ga * a / b) if need_b else None)


DIV = register("div", _div, _div_vjp, save_inputs=True)


def _pow(xp, a, b):
    return xp.power(a, b)


def _pow_vjp(ctx, g):
    a, b = ctx.inputs
    need_a, need_b = ctx.needs_input_grad
    ga = gb = None
    if need_a:
        if isinstance(b, Tensor):
            # PyTorch defines it as 0 where b == 0 (not 0 * a**-1, which is nan at a == 0).
            ga = where(b == 0, 0, g * b * a ** (b - 1))
        else:
            ga = g * 0 if b == 0 else g * b * a ** (b - 1)
    if need_b:
        out = a ** b  # recomputed rather than saved: only needed for the exponent's gradient
        if isinstance(a, Tensor):
            # d/db a**b = a**b log a; PyTorch defines it as 0 where a == 0 and b >= 0.
            gb = where((a == 0) & (b >= 0), 0, g * out * a.log())
        else:
            # log of a negative base is nan, as in PyTorch; 0 ** b counts as 0 (see above).
            gb = g * out * math.log(a) if a > 0 else g * (0 if a == 0 else math.nan)
    return _reduce(ctx, 0, ga) if need_a else None, _reduce(ctx, 1, gb) if need_b else None


POW = register("pow", _pow, _pow_vjp, save_inputs=True)


def _remainder(xp, a, b):
    return xp.remainder(a, b)


def _remainder_vjp(ctx, g):
    # a % b = a - floor(a / b) * b, and floor's derivative is 0 (PyTorch's rule, jumps aside):
    # d/da = 1, d/db = -floor(a / b). floor_divide records nothing, so this is exact at
    # second order too.
    a, b = ctx.inputs
    need_a, need_b = ctx.needs_input_grad
    return (_reduce(ctx, 0, g) if need_a else None,
            _reduce(ctx, 1, -g * floor_divide(a, b)) if need_b else None)


# Piecewise linear, with jumps where a / b is an integer: smooth=False, as the kinked ops.
REMAINDER = register("remainder", _remainder, _remainder_vjp, save_inputs=True, smooth=False)


# ---- maximum / minimum / where -----------------------------------------------------------
def _max_weights(xp, a, b, out):
    # The share of the gradient that goes to `a`: 1 where it won, 1/2 on ties (PyTorch).
    if out.dtype.kind != "f":
        return None  # integer results carry no gradient
    w = (a == out).astype(out.dtype)
    w -= 0.5 * (a == b)
    return w


def _maximum(xp, a, b):
    out = xp.maximum(a, b)
    return out, _max_weights(xp, a, b, out)


def _minimum(xp, a, b):
    out = xp.minimum(a, b)
    return out, _max_weights(xp, a, b, out)


def _extremum_vjp(ctx, g):
    w = wrap_like(ctx, ctx.res)
    need_a, need_b = ctx.needs_input_grad
    return (_reduce(ctx, 0, g * w) if need_a else None,
            _reduce(ctx, 1, g * (1 - w)) if need_b else None)


MAXIMUM = register("maximum", _maximum, _extremum_vjp, has_res=True, smooth=False)
MINIMUM = register("minimum", _minimum, _extremum_vjp, has_res=True, smooth=False)


def _where(xp, cond, a, b):
    out = xp.where(cond, a, b)
    return out


def _where_vjp(ctx, g):
    cond = ctx.inputs[0]
    need_a, need_b = ctx.needs_input_grad[1:]
    return (None,
            _reduce(ctx, 1, where(cond, g, 0)) if need_a else None,
            _reduce(ctx, 2, where(cond, 0, g)) if need_b else None)


WHERE = register("where", _where, _where_vjp, save_inputs=True)


# ---- ops without gradient: floor division, comparisons, logic -----------------------------------
def _nograd(name, fn):
    return register(name, fn)


# PyTorch's floor_divide has no derivative either (its backward raises); integer-valued.
FLOOR_DIVIDE = _nograd("floor_divide", lambda xp, a, b: xp.floor_divide(a, b))
EQ = _nograd("eq", lambda xp, a, b: xp.equal(a, b))
NE = _nograd("ne", lambda xp, a, b: xp.not_equal(a, b))
LT = _nograd("lt", lambda xp, a, b: xp.less(a, b))
LE = _nograd("le", lambda xp, a, b: xp.less_equal(a, b))
GT = _nograd("gt", lambda xp, a, b: xp.greater(a, b))
GE = _nograd("ge", lambda xp, a, b: xp.greater_equal(a, b))
LOGICAL_AND = _nograd("logical_and", lambda xp, a, b: xp.logical_and(a, b))
LOGICAL_OR = _nograd("logical_or", lambda xp, a, b: xp.logical_or(a, b))
LOGICAL_XOR = _nograd("logical_xor", lambda xp, a, b: xp.logical_xor(a, b))
BITWISE_AND = _nograd("bitwise_and", lambda xp, a, b: xp.bitwise_and(a, b))
BITWISE_OR = _nograd("bitwise_or", lambda xp, a, b: xp.bitwise_or(a, b))
BITWISE_XOR = _nograd("bitwise_xor", lambda xp, a, b: xp.bitwise_xor(a, b))
LOGICAL_NOT = _nograd("logical_not", lambda xp, a: xp.logical_not(a))
BITWISE_NOT = _nograd("bitwise_not", lambda xp, a: xp.invert(a))


# ---- public functions ---------------------------------------------------------------------
def _binary(op, a, b, name):
    if not _plain(a, b):
        a, b = _operands(a, b, name)
    return apply(op, (a, b))


def _plain(a, b):
    """True when promotion has nothing to do: two tensors of one shape and dtype (or a float
    tensor and a bool mask), or a floating tensor and a Python int or float (a weak scalar
    keeps the tensor's dtype)."""
    if isinstance(a, Tensor):  # isinstance: Parameters take the fast path too
        if isinstance(b, Tensor):
            da, db = a._array.dtype, b._array.dtype
            # A bool mask beside a floating tensor (g * mask in VJPs) is left as it is too:
            # the ufunc's bool loop gives the floating dtype, as promotion would.
            return a._array.shape == b._array.shape and (
                da is db or da.kind == "f" and db.kind == "b" or da.kind == "b" and db.kind == "f")
        return (type(b) is float or type(b) is int) and a._array.dtype.kind == "f"
    return (type(a) is float or type(a) is int) and isinstance(b, Tensor) \
        and b._array.dtype.kind == "f"


def add(input, other, *, alpha=1):
    return _binary(ADD, input, other if alpha == 1 else other * alpha, "add")


def sub(input, other, *, alpha=1):
    if _boolish(input) or _boolish(other):
        raise DTypeError("sub: subtraction, the `-` operator, with a bool tensor is not "
                         "supported\n  hint: to invert a mask use `~` or logical_not(); to "
                         "subtract numbers convert first, e.g. x.long()")
    return _binary(SUB, input, other if alpha == 1 else other * alpha, "sub")


def mul(input, other):
    return _binary(MUL, input, other, "mul")


def div(input, other, *, rounding_mode=None):
    if rounding_mode == "floor":
        return floor_divide(input, other)
    if rounding_mode is not None:
        raise ValueError(f"div: rounding_mode must be None or 'floor', got {rounding_mode!r}")
    if _plain(input, other) and (input if isinstance(input, Tensor) else other).dtype.category \
            == _FLOAT:
        return apply(DIV, (input, other))
    a, b = _operands(input, other, "div", true_div=True)
    return apply(DIV, (a, b))


def floor_divide(input, other):
    return _binary(FLOOR_DIVIDE, input, other, "floor_divide")


def remainder(input, other):
    return _binary(REMAINDER, input, other, "remainder")


def pow(input, exponent):
    a, b = _operands(input, exponent, "pow")
    if not isinstance(b, Tensor) and not isinstance(a, Tensor):
        raise TypeError("pow(): expected a Tensor operand")
    return apply(POW, (a, b))


def maximum(input, other):
    return _binary(MAXIMUM, input, other, "maximum")


def minimum(input, other):
    return _binary(MINIMUM, input, other, "minimum")


def where(condition, input, other):
    """`input` where `condition` is True, else `other`; all three broadcast."""
    if not isinstance(condition, Tensor) or condition.dtype.name != "bool":
        raise TypeError("where(): 'condition' must be a bool Tensor, got "
                        f"{getattr(condition, 'dtype', type(condition).__name__)}")
    if not isinstance(input, Tensor) and not isinstance(other, Tensor):
        # Two Python scalars: PyTorch gives their result type (int64, or the default float).
        from ..creation import tensor
        input = tensor(input, dtype=result_type(input, other), device=condition.device)
    a, b = _operands(input, other, "where")
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        raise TypeError("where(): expected at least one Tensor among input and other")
    shapes = [condition.shape] + [x.shape for x in (a, b) if isinstance(x, Tensor)]
    broadcast_shapes(*shapes, op="where")
    out = apply(WHERE, (condition, a, b))
    dt = result_type(a, b)
    if out.dtype is not dt:  # NumPy may widen for two Python scalars; PyTorch does not
        from .shape import to_dtype
        out = to_dtype(out, dt)
    return out


def _compare(op, name):
    def compare(input, other):
        return _binary(op, input, other, name)
    compare.__name__ = name
    return compare


eq, ne, lt, le, gt, ge = (_compare(o, o.name) for o in (EQ, NE, LT, LE, GT, GE))
logical_and, logical_or, logical_xor = (_compare(o, o.name) for o in
                                        (LOGICAL_AND, LOGICAL_OR, LOGICAL_XOR))
bitwise_and, bitwise_or, bitwise_xor = (_compare(o, o.name) for o in
                                        (BITWISE_AND, BITWISE_OR, BITWISE_XOR))
greater, greater_equal, less, less_equal, not_equal = gt, ge, lt, le, ne


def logical_not(input):
    return apply(LOGICAL_NOT, (input,))


def bitwise_not(input):
    return apply(BITWISE_NOT, (input,))


def _reflected(fn):
    def r(self, other):
        return fn(other, self)
    r.__name__ = f"r{fn.__name__}"
    return r


def _and(a, b):
    return (logical_and if _is_bool(a, b) else bitwise_and)(a, b)


def _or(a, b):
    return (logical_or if _is_bool(a, b) else bitwise_or)(a, b)


def _xor(a, b):
    return (logical_xor if _is_bool(a, b) else bitwise_xor)(a, b)


def _is_bool(a, b):
    return all(x.dtype.name == "bool" if isinstance(x, Tensor) else isinstance(x, bool)
               for x in (a, b))


def _invert(a):
    return logical_not(a) if a.dtype.name == "bool" else bitwise_not(a)


METHODS = {
    "add": add, "sub": sub, "subtract": sub, "mul": mul, "multiply": mul, "div": div,
    "divide": div, "true_divide": div, "floor_divide": floor_divide, "remainder": remainder,
    "pow": pow, "maximum": maximum, "minimum": minimum, "eq": eq, "ne": ne, "lt": lt, "le": le,
    "gt": gt, "ge": ge, "logical_and": logical_and, "logical_or": logical_or,
    "logical_xor": logical_xor, "logical_not": logical_not, "where": lambda self, c, o:
    where(c, self, o),
    "__add__": add, "__radd__": _reflected(add), "__sub__": sub, "__rsub__": _reflected(sub),
    "__mul__": mul, "__rmul__": _reflected(mul), "__truediv__": div,
    "__rtruediv__": _reflected(div), "__floordiv__": floor_divide,
    "__rfloordiv__": _reflected(floor_divide), "__mod__": remainder,
    "__rmod__": _reflected(remainder), "__pow__": pow, "__rpow__": _reflected(pow),
    "__eq__": eq, "__ne__": ne, "__lt__": lt, "__le__": le, "__gt__": gt, "__ge__": ge,
    "__and__": _and, "__rand__": _reflected(_and), "__or__": _or, "__ror__": _reflected(_or),
    "__xor__": _xor, "__rxor__": _reflected(_xor), "__invert__": _invert,
}

__all__ = ["add", "sub", "subtract", "mul", "multiply", "div", "divide", "true_divide",
           "floor_divide", "remainder", "pow", "maximum", "minimum", "where", "eq", "ne", "lt",
           "le", "gt", "ge", "greater", "greater_equal", "less", "less_equal", "not_equal",
           "logical_and", "logical_or", "logical_xor", "logical_not", "bitwise_and",
           "bitwise_or", "bitwise_xor", "bitwise_not"]
subtract, multiply, divide, true_divide = sub, mul, div, div
