"""Unary math and activations: each op's forward (over `xp` arrays) beside its VJP.

Integer inputs are cast to the default float dtype first, as PyTorch does for `exp(int)`.
VJPs use only tensorgrad ops, so every gradient is itself differentiable.
"""

import math

from ..tensor import Tensor
from ._util import as_float, need_tensor, wrap_like
from .binary import where
from .registry import apply, register


def _unary(op, x, name):
    return apply(op, (as_float(x, name),))


# ---- exp / log family -----------------------------------------------------------------------
def _exp(xp, x):
    return xp.exp(x)


def _exp_vjp(ctx, g):
    return (g * ctx.out,)


EXP = register("exp", _exp, _exp_vjp, save_out=True)


def _log(xp, x):
    return xp.log(x)


def _log_vjp(ctx, g):
    return (g / ctx.inputs[0],)


LOG = register("log", _log, _log_vjp, save_inputs=True)


def _log1p(xp, x):
    return xp.log1p(x)


def _log1p_vjp(ctx, g):
    return (g / (ctx.inputs[0] + 1),)


LOG1P = register("log1p", _log1p, _log1p_vjp, save_inputs=True)


def _expm1(xp, x):
    return xp.expm1(x)


def _expm1_vjp(ctx, g):
    return (g * (ctx.out + 1),)


EXPM1 = register("expm1", _expm1, _expm1_vjp, save_out=True)


def _sqrt(xp, x):
    return xp.sqrt(x)


def _sqrt_vjp(ctx, g):
    return (g * 0.5 / ctx.out,)


SQRT = register("sqrt", _sqrt, _sqrt_vjp, save_out=True)


def _rsqrt(xp, x):
    return 1 / xp.sqrt(x)


def _rsqrt_vjp(ctx, g):
    out = ctx.out
    return (g * -0.5 * out * out * out,)


RSQRT = register("rsqrt", _rsqrt, _rsqrt_vjp, save_out=True)


# ---- trigonometric / hyperbolic ---------------------------------------------------------------
def _sin(xp, x):
    return xp.sin(x)


def _sin_vjp(ctx, g):
    return (g * cos(ctx.inputs[0]),)


SIN = register("sin", _sin, _sin_vjp, save_inputs=True)


def _cos(xp, x):
    return xp.cos(x)


def _cos_vjp(ctx, g):
    return (-g * sin(ctx.inputs[0]),)


COS = register("cos", _cos, _cos_vjp, save_inputs=True)


def _tanh(xp, x):
    return xp.tanh(x)


def _tanh_vjp(ctx, g):
    return (apply(TANH_BACKWARD, (g, ctx.out)),)


TANH = register("tanh", _tanh, _tanh_vjp, save_out=True)


def _sigmoid(xp, x):
    # exp of a non-positive number only: no overflow for large |x|. The numerator
    # max(e, x >= 0) is exactly 1 for x >= 0 and e below (NaN stays NaN), without `where`,
    # which is branchy and about 10x slower than these ufuncs on mixed signs.
    e = xp.exp(-xp.abs(x))
    return xp.maximum(e, x >= 0) / (e + 1)


def _sigmoid_vjp(ctx, g):
    return (apply(SIGMOID_BACKWARD, (g, ctx.out)),)


SIGMOID = register("sigmoid", _sigmoid, _sigmoid_vjp, save_out=True)


# ---- piecewise: abs, sign, relu, clamp ----------------------------------------------------
def _abs(xp, x):
    return xp.abs(x)


def _abs_vjp(ctx, g):
    return (g * sign(ctx.inputs[0]),)  # sign(0) = 0: PyTorch's gradient at the kink


ABS = register("abs", _abs, _abs_vjp, save_inputs=True, smooth=False)


def _sign(xp, x):
    return xp.sign(x)


def _sign_vjp(ctx, g):
    return (g * 0,)


SIGN = register("sign", _sign, _sign_vjp, smooth=False)


def _relu(xp, x):
    return xp.maximum(x, 0)


def _relu_vjp(ctx, g):
    return (apply(RELU_BACKWARD, (g, ctx.out)),)


RELU = register("relu", _relu, _relu_vjp, save_out=True, smooth=False)


# ---- the derivatives of tanh, sigmoid and relu: ops of their own ---------------------------
# One op each (not g * (1 - out * out) in generic ops), so a backend can fuse it into one
# kernel (the CuPy backend does) and the VJP dispatches once; each is differentiable, for
# double backward.
def _relu_backward(xp, g, out):
    """g where out > 0, else 0 (PyTorch's gradient 0 at the kink); `out` is relu's output."""
    # g * mask, not where(mask, g, 0): NumPy's where is ~4x slower on unpredictable masks.
    return g * (out > 0)


def _relu_backward_vjp(ctx, v):
    # Linear in g; the mask is piecewise constant in `out`, so out gets no gradient.
    return apply(RELU_BACKWARD, (v, ctx.inputs[1])) if ctx.needs_input_grad[0] else None, None


RELU_BACKWARD = register("relu_backward", _relu_backward, _relu_backward_vjp,
                         save_inputs=True, smooth=False)


def _sigmoid_backward(xp, g, out):
    """g * out * (1 - out); `out` is sigmoid's output."""
    return g * out * (1 - out)


def _sigmoid_backward_vjp(ctx, v):
    g, out = ctx.inputs
    need = ctx.needs_input_grad
    return (apply(SIGMOID_BACKWARD, (v, out)) if need[0] else None,
            v * g * (1 - 2 * out) if need[1] else None)


SIGMOID_BACKWARD = register("sigmoid_backward", _sigmoid_backward, _sigmoid_backward_vjp,
                            save_inputs=True)


def _tanh_backward(xp, g, out):
    """g * (1 - out^2); `out` is tanh's output."""
    return g * (1 - out * out)


def _tanh_backward_vjp(ctx, v):
    g, out = ctx.inputs
    need = ctx.needs_input_grad
    return (apply(TANH_BACKWARD, (v, out)) if need[0] else None,
            v * g * out * -2 if need[1] else None)


TANH_BACKWARD = register("tanh_backward", _tanh_backward, _tanh_backward_vjp, save_inputs=True)


def _clamp(xp, x, min, max):
    out = xp.clip(x, min, max)
    keep = xp.ones(x.shape, dtype=bool)
    if min is not None:
        keep &= x >= min
    if max is not None:
        keep &= x <= max
    return out, keep  # the gradient is 1 inside [min, max], bounds included


def _clamp_vjp(ctx, g, min, max):
    return (g * wrap_like(ctx, ctx.res),)  # a multiply by the mask: see _relu_vjp


CLAMP = register("clamp", _clamp, _clamp_vjp, has_res=True, smooth=False)


def _neg(xp, x):
    return xp.negative(x)


def _neg_vjp(ctx, g):
    return (-g,)


NEG = register("neg", _neg, _neg_vjp)


def _reciprocal(xp, x):
    return 1 / x


def _reciprocal_vjp(ctx, g):
    out = ctx.out
    return (-g * out * out,)


RECIPROCAL = register("reciprocal", _reciprocal, _reciprocal_vjp, save_out=True)


def _square(xp, x):
    return xp.square(x)


def _square_vjp(ctx, g):
    return (g * 2 * ctx.inputs[0],)


SQUARE = register("square", _square, _square_vjp, save_inputs=True)


# ---- public functions ---------------------------------------------------------------------
def exp(input):
    return _unary(EXP, input, "exp")


def log(input):
    return _unary(LOG, input, "log")


def log1p(input):
    return _unary(LOG1P, input, "log1p")


def expm1(input):
    return _unary(EXPM1, input, "expm1")


def sqrt(input):
    return _unary(SQRT, input, "sqrt")


def rsqrt(input):
    return _unary(RSQRT, input, "rsqrt")


def sin(input):
    return _unary(SIN, input, "sin")


def cos(input):
    return _unary(COS, input, "cos")


def tanh(input):
    return _unary(TANH, input, "tanh")


def sigmoid(input):
    return _unary(SIGMOID, input, "sigmoid")


def reciprocal(input):
    return _unary(RECIPROCAL, input, "reciprocal")


def abs(input):
    return apply(ABS, (need_tensor(input, "abs"),))


def sign(input):
    return apply(SIGN, (need_tensor(input, "sign"),))


def neg(input):
    return apply(NEG, (need_tensor(input, "neg"),))


def square(input):
    return apply(SQUARE, (need_tensor(input, "square"),))


def relu(input):
    return apply(RELU, (need_tensor(input, "relu"),))


def clamp(input, min=None, max=None):
    """Limit values to [min, max]; bounds may be numbers or tensors (then broadcast)."""
    need_tensor(input, "clamp")
    if min is None and max is None:
        raise ValueError("clamp: at least one of 'min' and 'max' must be given")
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        out = input
        if min is not None:
            out = where(out < min, min, out)
        if max is not None:
            out = where(out > max, max, out)
        return out
    if not input.dtype.is_floating_point:
        min = None if min is None else math.ceil(min) if isinstance(min, float) else min
        max = None if max is None else math.floor(max) if isinstance(max, float) else max
    return apply(CLAMP, (input,), {"min": min, "max": max})


clip = clamp


METHODS = {
    "exp": exp, "log": log, "log1p": log1p, "expm1": expm1, "sqrt": sqrt, "rsqrt": rsqrt,
    "sin": sin, "cos": cos, "tanh": tanh, "sigmoid": sigmoid, "abs": abs, "sign": sign,
    "relu": relu, "clamp": clamp, "clip": clip, "neg": neg, "negative": neg,
    "reciprocal": reciprocal, "square": square, "__neg__": neg, "__abs__": abs,
}
__all__ = ["exp", "log", "log1p", "expm1", "sqrt", "rsqrt", "sin", "cos", "tanh", "sigmoid",
           "abs", "sign", "relu", "clamp", "clip", "neg", "negative", "reciprocal", "square"]
negative = neg
