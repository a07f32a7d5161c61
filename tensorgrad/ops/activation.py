"""Activation ops beyond relu/sigmoid/tanh, plus erf/erfc: forward over `xp` beside the VJP.

erf and erfc use W. J. Cody's rational Chebyshev approximations ("Rational Chebyshev
approximations for the error function", Math. Comp. 23, 1969; netlib SPECFUN CALERF), good
to about 1e-16 in float64, since NumPy has no erf. Exact GELU is 0.5 x erfc(-x / sqrt 2):
erfc keeps its negative tail accurate where 1 + erf(x) would cancel.

Kinked ops (leaky_relu, elu, hardtanh) are registered smooth=False; their gradients at the
kink follow PyTorch (slope / alpha / 0). VJPs use only tensorgrad ops, so second order works.

The derivative of each common activation is an op of its own (`gelu_backward`,
`silu_backward` here; `relu_backward`, `sigmoid_backward`, `tanh_backward` in elementwise.py
beside their forwards: grad_input from the incoming gradient and the saved input or output),
and `bias_act` is act(x + bias) in one op:
a backend replaces each with one fused kernel (backends/cupy_kernels.py) where the generic
forward runs several array passes. Their VJPs are again tensorgrad ops, so grad-of-grad works.
Imports no backend module: arrays are reached through `xp` only.
"""

import math

from ..errors import DTypeError, ShapeError
from ._util import as_float, need_tensor, wrap_like
from .broadcast import unbroadcast
from .elementwise import (
    RELU_BACKWARD,
    SIGMOID_BACKWARD,
    TANH_BACKWARD,
    _relu,
    _sigmoid,
    _tanh,
    exp,
    sigmoid,
    tanh,
)
from .inplace import _inplace
from .registry import apply, register

_SQRT1_2 = 1 / math.sqrt(2)
_INV_SQRT_PI = 1 / math.sqrt(math.pi)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
_TANH_K = math.sqrt(2 / math.pi)
_TANH_C = 0.044715
_TANH_3C = 3 * _TANH_C

# ---- erf / erfc (Cody's CALERF coefficients) -------------------------------------------------
_A = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02,
      3.20937758913846947e03, 1.85777706184603153e-1)
_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03,
      2.84423683343917062e03)
_C = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01,
      2.98635138197400131e02, 8.81952221241769090e02, 1.71204761263407058e03,
      2.05107837782607147e03, 1.23033935479799725e03, 2.15311535474403846e-8)
_D = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02,
      1.62138957456669019e03, 3.29079923573345963e03, 4.36261909014324716e03,
      3.43936767414372164e03, 1.23033935480374942e03)
_P = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1,
      1.60837851487422766e-2, 6.58749161529837803e-4, 1.63153871373020978e-2)
_Q = (2.56852019228982242e00, 1.87295284992346047e00, 5.27905102951428412e-1,
      6.05183413124413191e-2, 2.33520497626869185e-3)
_THRESH = 0.46875  # below it erf is a rational function of x^2; above, erfc is


def _ratio(t, num, den, n):
    """Cody's nested form of the rational function: degree n+1 over a monic degree n+1 in t."""
    xnum = num[n + 1] * t
    xden = t
    for i in range(n):
        xnum = (xnum + num[i]) * t
        xden = (xden + den[i]) * t
    return (xnum + num[n]) / (xden + den[n])


def _erf_small(xp, x):
    """erf(x) for |x| <= 0.46875 (x is clipped there first)."""
    x = xp.clip(x, -_THRESH, _THRESH)
    return x * _ratio(x * x, _A, _B, 3)


def _erfc_large(xp, y):
    """erfc(y) for y >= 0.46875 (y clipped to [0.46875, 27]; erfc(27) underflows anyway)."""
    mid = _ratio(xp.clip(y, _THRESH, 4.0), _C, _D, 7)
    y_far = xp.clip(y, 4.0, 27.0)
    r = 1 / (y_far * y_far)
    far = (_INV_SQRT_PI - r * _ratio(r, _P, _Q, 4)) / y_far
    y = xp.clip(y, _THRESH, 27.0)
    # exp(-y^2) split as exp(-ysq^2) exp(-(y - ysq)(y + ysq)), ysq = y rounded to 1/16:
    # exp(-y*y) alone loses the low bits of y^2 (Cody's trick).
    ysq = xp.trunc(y * 16) / 16
    scale = xp.exp(-ysq * ysq) * xp.exp(-(y - ysq) * (y + ysq))
    return xp.where(y <= 4.0, mid, far) * scale


def _compute_dtype(xp, x):
    # float16 is evaluated in float32: the coefficients and exp need the range.
    return x.astype(xp.float32) if x.dtype == xp.float16 else x


def _erf(xp, x):
    xc = _compute_dtype(xp, x)
    y = xp.abs(xc)
    tail = 1 - _erfc_large(xp, y)
    out = xp.where(y <= _THRESH, _erf_small(xp, xc), xp.where(xc < 0, -tail, tail))
    return out.astype(x.dtype, copy=False)


def _erfc(xp, x):
    xc = _compute_dtype(xp, x)
    y = xp.abs(xc)
    tail = _erfc_large(xp, y)
    out = xp.where(y <= _THRESH, 1 - _erf_small(xp, xc), xp.where(xc < 0, 2 - tail, tail))
    return out.astype(x.dtype, copy=False)


def _erf_vjp(ctx, g):
    x = ctx.inputs[0]
    return (g * (2 * _INV_SQRT_PI) * exp(-(x * x)),)


def _erfc_vjp(ctx, g):
    x = ctx.inputs[0]
    return (g * (-2 * _INV_SQRT_PI) * exp(-(x * x)),)


ERF = register("erf", _erf, _erf_vjp, save_inputs=True)
ERFC = register("erfc", _erfc, _erfc_vjp, save_inputs=True)


# ---- gelu / silu / softplus / logsigmoid: smooth --------------------------------------------
def _gelu(xp, x, approximate):
    if approximate == "tanh":
        inner = _TANH_K * (x + _TANH_C * x * x * x)
        return 0.5 * x * (1 + xp.tanh(inner))
    return 0.5 * x * _erfc(xp, -x * _SQRT1_2)


def _gelu_vjp(ctx, g, approximate):
    return (apply(GELU_BACKWARD, (g, ctx.inputs[0]), {"approximate": approximate}),)


GELU = register("gelu", _gelu, _gelu_vjp, save_inputs=True)


def _gelu_backward(xp, g, x, approximate):
    """g * gelu'(x): Phi(x) + x phi(x), or the tanh approximation's derivative."""
    if approximate == "tanh":
        t = xp.tanh(_TANH_K * (x + _TANH_C * x * x * x))
        dinner = _TANH_K * (1 + _TANH_3C * x * x)
        return g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * dinner)
    cdf = 0.5 * _erfc(xp, x * -_SQRT1_2)
    pdf = xp.exp(x * x * -0.5) * _INV_SQRT_2PI
    return g * (cdf + x * pdf)


def _gelu_backward_vjp(ctx, v, approximate):
    # Linear in g; d/dx is g * gelu''(x): phi(x) (2 - x^2), or for the tanh form
    # (1 - t^2) (u' - x t u'^2 + 3 k c x^2) with u = k (x + c x^3), t = tanh(u).
    g, x = ctx.inputs
    need = ctx.needs_input_grad
    gg = apply(GELU_BACKWARD, (v, x), {"approximate": approximate}) if need[0] else None
    gx = None
    if need[1]:
        if approximate == "tanh":
            t = tanh(_TANH_K * (x + _TANH_C * x * x * x))
            du = _TANH_K * (1 + _TANH_3C * x * x)
            second = (1 - t * t) * (du - x * t * du * du + _TANH_K * _TANH_3C * x * x)
        else:
            second = exp(x * x * -0.5) * _INV_SQRT_2PI * (2 - x * x)
        gx = v * g * second
    return gg, gx


GELU_BACKWARD = register("gelu_backward", _gelu_backward, _gelu_backward_vjp, save_inputs=True)


def _silu(xp, x):
    return x * _sigmoid(xp, x)


def _silu_vjp(ctx, g):
    return (apply(SILU_BACKWARD, (g, ctx.inputs[0])),)


SILU = register("silu", _silu, _silu_vjp, save_inputs=True)


def _silu_backward(xp, g, x):
    """g * silu'(x) = g * s (1 + x (1 - s)), s = sigmoid(x)."""
    s = _sigmoid(xp, x)
    return g * (s * (1 + x * (1 - s)))


def _silu_backward_vjp(ctx, v):
    g, x = ctx.inputs  # silu''(x) = s (1 - s) (2 + x (1 - 2 s))
    need = ctx.needs_input_grad
    gg = apply(SILU_BACKWARD, (v, x)) if need[0] else None
    gx = None
    if need[1]:
        s = sigmoid(x)
        gx = v * g * (s * (1 - s) * (2 + x * (1 - 2 * s)))
    return gg, gx


SILU_BACKWARD = register("silu_backward", _silu_backward, _silu_backward_vjp, save_inputs=True)


# ---- bias + activation in one op -----------------------------------------------------------
_BIAS_ACTS = {  # activation -> its forward over xp, taking z = x + bias
    "relu": _relu, "sigmoid": _sigmoid, "tanh": _tanh, "silu": _silu,
    "gelu": lambda xp, z: _gelu(xp, z, "none"), "gelu_tanh": lambda xp, z: _gelu(xp, z, "tanh"),
}


def _bias_act(xp, x, bias, activation):
    return _BIAS_ACTS[activation](xp, x + bias)


def _bias_act_vjp(ctx, g, activation):
    x, bias = ctx.inputs
    if activation in ("relu", "sigmoid", "tanh"):  # their derivatives read the output
        op = {"relu": RELU_BACKWARD, "sigmoid": SIGMOID_BACKWARD, "tanh": TANH_BACKWARD}
        gz = apply(op[activation], (g, ctx.out))
    elif activation == "silu":
        gz = apply(SILU_BACKWARD, (g, x + bias))
    else:
        approximate = "tanh" if activation == "gelu_tanh" else "none"
        gz = apply(GELU_BACKWARD, (g, x + bias), {"approximate": approximate})
    need = ctx.needs_input_grad
    return (gz if need[0] else None), (unbroadcast(gz, bias.shape) if need[1] else None)


BIAS_ACT = register("bias_act", _bias_act, _bias_act_vjp, save_inputs=True, save_out=True,
                    smooth=False)  # relu is kinked; the smooth activations have 2nd-order cases


def _softplus(xp, x, beta, threshold):
    bx = x * beta
    # max(bx, 0) + log1p(exp(-|bx|)): no overflow for any bx. Linear above the threshold.
    soft = (xp.maximum(bx, 0) + xp.log1p(xp.exp(-xp.abs(bx)))) / beta
    linear = bx > threshold
    return xp.where(linear, x, soft).astype(x.dtype, copy=False), linear.astype(x.dtype)


def _softplus_vjp(ctx, g, beta, threshold):
    linear = wrap_like(ctx, ctx.res)
    s = sigmoid(ctx.inputs[0] * beta)
    return (g * (linear + (1 - linear) * s),)


SOFTPLUS = register("softplus", _softplus, _softplus_vjp, save_inputs=True, has_res=True)


def _logsigmoid(xp, x):
    # min(x, 0) - log1p(exp(-|x|)): exp of a non-positive number only, finite everywhere.
    return xp.minimum(x, 0) - xp.log1p(xp.exp(-xp.abs(x)))


def _logsigmoid_vjp(ctx, g):
    return (g * sigmoid(-ctx.inputs[0]),)


LOGSIGMOID = register("logsigmoid", _logsigmoid, _logsigmoid_vjp, save_inputs=True)


# ---- leaky_relu / elu / hardtanh: kinked ----------------------------------------------------
def _leaky_relu(xp, x, negative_slope):
    pos = x > 0
    slope = xp.where(pos, 1, negative_slope).astype(x.dtype, copy=False)
    return x * slope, slope  # PyTorch's gradient at 0 is the negative slope


def _leaky_relu_vjp(ctx, g, negative_slope):
    return (g * wrap_like(ctx, ctx.res),)


LEAKY_RELU = register("leaky_relu", _leaky_relu, _leaky_relu_vjp, has_res=True, smooth=False)


def _elu(xp, x, alpha):
    pos = x > 0
    out = xp.where(pos, x, alpha * xp.expm1(xp.minimum(x, 0)))
    return out.astype(x.dtype, copy=False), pos.astype(x.dtype)


def _elu_vjp(ctx, g, alpha):
    # Below 0 the slope is alpha exp(x) = out + alpha, through `out` so second order works.
    pos = wrap_like(ctx, ctx.res)
    return (g * (pos + (1 - pos) * (ctx.out + alpha)),)


ELU = register("elu", _elu, _elu_vjp, save_out=True, has_res=True, smooth=False)


def _hardtanh(xp, x, min_val, max_val):
    inside = (x > min_val) & (x < max_val)  # PyTorch: gradient 0 at the bounds
    return xp.clip(x, min_val, max_val), inside


def _hardtanh_vjp(ctx, g, min_val, max_val):
    return (g * wrap_like(ctx, ctx.res),)


HARDTANH = register("hardtanh", _hardtanh, _hardtanh_vjp, has_res=True, smooth=False)


# ---- gradient reversal ----------------------------------------------------------------------
def _gradient_reversal(xp, x, lambda_):
    return x[...]  # identity: a view sharing storage


def _gradient_reversal_vjp(ctx, g, lambda_):
    return (g * -lambda_,)


GRADIENT_REVERSAL = register("gradient_reversal", _gradient_reversal, _gradient_reversal_vjp,
                             view=True)


# ---- public functions ---------------------------------------------------------------------
def _act(op, x, name, **attrs):
    return apply(op, (as_float(x, name),), attrs)


def erf(input):
    """The error function, accurate to ~1e-16 in float64.

    >>> import tensorgrad as tg
    >>> round(tg.erf(tg.tensor([1.0], dtype=tg.float64)).item(), 12)
    0.84270079295
    """
    return _act(ERF, input, "erf")


def erfc(input):
    """1 - erf(x), accurate in the tail where 1 - erf(x) would round to 0."""
    return _act(ERFC, input, "erfc")


def gelu(input, approximate="none"):
    """x Phi(x) (approximate="none", via erf) or PyTorch's tanh approximation ("tanh")."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return _act(GELU, input, "gelu", approximate=approximate)


def silu(input):
    """x * sigmoid(x) (swish)."""
    return _act(SILU, input, "silu")


def softplus(input, beta=1.0, threshold=20.0):
    """log(1 + exp(beta x)) / beta, and x itself where beta x > threshold (as PyTorch)."""
    return _act(SOFTPLUS, input, "softplus", beta=beta, threshold=threshold)


def logsigmoid(input):
    """log(sigmoid(x)), finite for any x.

    >>> import tensorgrad as tg
    >>> tg.ops.activation.logsigmoid(tg.tensor([-1e3])).item()
    -1000.0
    """
    return _act(LOGSIGMOID, input, "logsigmoid")


def leaky_relu(input, negative_slope=0.01):
    """x where x > 0, else negative_slope * x."""
    return _act(LEAKY_RELU, input, "leaky_relu", negative_slope=negative_slope)


def elu(input, alpha=1.0):
    """x where x > 0, else alpha (exp(x) - 1)."""
    return _act(ELU, input, "elu", alpha=alpha)


def hardtanh(input, min_val=-1.0, max_val=1.0):
    """clamp(x, min_val, max_val) with gradient 0 at the bounds, as PyTorch's hardtanh."""
    if min_val > max_val:
        raise ValueError(f"hardtanh: min_val ({min_val}) cannot be greater than max_val "
                         f"({max_val})")
    return _act(HARDTANH, input, "hardtanh", min_val=min_val, max_val=max_val)


def relu6(input):
    """min(max(x, 0), 6): hardtanh(x, 0, 6), as PyTorch defines it."""
    return hardtanh(input, 0.0, 6.0)


def bias_act(input, bias, activation="relu"):
    """activation(input + bias) as one op, `bias` of shape (C,) added along the last dimension.

    activation: "relu", "gelu", "gelu_tanh" (gelu's tanh approximation), "silu", "sigmoid" or
    "tanh". The same numbers as the two ops apart; on the GPU one fused kernel each way.

    >>> import tensorgrad as tg
    >>> from tensorgrad.ops.activation import bias_act
    >>> bias_act(tg.tensor([[-1.0, 1.0]]), tg.tensor([0.5, 0.5])).tolist()
    [[0.0, 1.5]]
    """
    need_tensor(input, "bias_act")
    need_tensor(bias, "bias_act", "bias")
    if activation not in _BIAS_ACTS:
        raise ValueError(f"bias_act: activation must be one of {', '.join(_BIAS_ACTS)}, got "
                         f"{activation!r}")
    if input.ndim == 0 or tuple(bias.shape) != (input.shape[-1],):
        raise ShapeError(f"bias_act: bias must have shape (C,) for input (..., C); got input "
                         f"{tuple(input.shape)} and bias {tuple(bias.shape)}\n  hint: one bias "
                         "value per feature of the last dimension")
    if bias.dtype is not input.dtype or not input.dtype.is_floating_point:
        raise DTypeError(f"bias_act: input and bias must share one floating dtype, got "
                         f"{input.dtype} and {bias.dtype}\n  hint: convert them, e.g. "
                         "bias.to(input.dtype)")
    return apply(BIAS_ACT, (input, bias), {"activation": activation})


def gradient_reversal(input, lambda_=1.0):
    """Identity forward; the gradient is multiplied by -lambda_ (domain-adversarial training)."""
    return apply(GRADIENT_REVERSAL, (need_tensor(input, "gradient_reversal"),),
                 {"lambda_": lambda_})


def _inplace_form(fn, name):
    def fn_(input, *args, **kwargs):
        return _inplace(need_tensor(input, name), name, lambda x: fn(x, *args, **kwargs))
    fn_.__name__ = name
    fn_.__doc__ = f"In-place {fn.__name__}: writes into `input` (or rebases it under autograd)."
    return fn_


leaky_relu_ = _inplace_form(leaky_relu, "leaky_relu_")
elu_ = _inplace_form(elu, "elu_")
hardtanh_ = _inplace_form(hardtanh, "hardtanh_")
silu_ = _inplace_form(silu, "silu_")

METHODS = {"erf": erf, "erfc": erfc, "erf_": _inplace_form(erf, "erf_"),
           "erfc_": _inplace_form(erfc, "erfc_")}
__all__ = ["erf", "erfc"]
