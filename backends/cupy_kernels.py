"""Fused CuPy kernels that override registered ops on the "cuda" backend.

`OVERRIDES` maps an op's registry name to a forward with exactly the generic forward's
signature (`f(xp, *arrays, **attrs)`, xp being cupy) and contract: the same outputs and
dtypes, and for the optimizer updates (backends/cupy_optim_kernels.py) the same in-place
writes. Where the generic forward makes several passes over memory (sigmoid's five ufuncs,
exact gelu's erfc, an optimizer update's ten), one kernel makes one; the softmax cross entropy
keeps CuPy's max and sum (so it adds in the generic's order) around two kernels.

Each kernel is built on first use and cached per (array module, kernel): CuPy is imported
lazily by the backend, so this module imports no array library, and the table loads on a
machine without CuPy (tests/test_cupy_kernels.py checks its names and signatures there, and
runs the kernel sources through a C++ compiler on the CPU). Every kernel mirrors its generic
forward operation by operation, in the array's dtype, with constants cast to it as NumPy and
CuPy cast a Python float; and it is compiled with --fmad=false, because the generic ops round
after every step where a contracted a*b+c would round once. That is what keeps overrides
within 1e-6 (float32) / 1e-12 (float64) of the generic ops.

Covered: float32 and float64. float16, and layouts a kernel does not handle (softmax cross
entropy other than (N, C) over dim 1), run the generic forward. relu and tanh have no
forward kernel: their generic forward is already one CuPy ufunc.

Imports tensorgrad's ops (core) for the generic forwards and constants; never cupy.
"""

from tensorgrad.ops import activation as _act
from tensorgrad.ops.registry import OPS
from tensorgrad.ops.softmax import (  # tensorgrad.ops.softmax the name is the function
    _shift,
    _softmax_cross_entropy,
    _softmax_cross_entropy_backward,
)

from .cupy_kernel_base import BASE_PREAMBLE, OPTIONS, floating, kernel, lit
from .cupy_optim_kernels import OPTIM_OVERRIDES


# ---- device functions shared by the kernels -------------------------------------------------
def _ratio_function(name, num, den, n):
    """activation._ratio as a device function: the same nested form, in the same order."""
    body = [f"F xnum = (F){num[n + 1]!r} * t;", "F xden = t;"]
    for i in range(n):
        body += [f"xnum = (xnum + (F){num[i]!r}) * t;", f"xden = (xden + (F){den[i]!r}) * t;"]
    body.append(f"return (xnum + (F){num[n]!r}) / (xden + (F){den[n]!r});")
    return ("template <typename F> __device__ F " + name + "(F t) {\n    "
            + "\n    ".join(body) + "\n}\n")


def _erfc_functions():
    """activation._erfc (Cody's CALERF), branch for branch: same clips, same exp split."""
    a = _act
    t = repr(a._THRESH)
    return (_ratio_function("tg_ratio_ab", a._A, a._B, 3)
            + _ratio_function("tg_ratio_cd", a._C, a._D, 7)
            + _ratio_function("tg_ratio_pq", a._P, a._Q, 4) + f"""
template <typename F> __device__ F tg_erf_small(F x) {{
    x = tg_clip(x, (F)-{t}, (F){t});
    return x * tg_ratio_ab(x * x);
}}
template <typename F> __device__ F tg_erfc_large(F y) {{
    F mid = tg_ratio_cd(tg_clip(y, (F){t}, (F)4.0));
    F y_far = tg_clip(y, (F)4.0, (F)27.0);
    F r = (F)1 / (y_far * y_far);
    F far = ((F){a._INV_SQRT_PI!r} - r * tg_ratio_pq(r)) / y_far;
    y = tg_clip(y, (F){t}, (F)27.0);
    F ysq = trunc(y * (F)16) / (F)16;
    F scale = exp(-ysq * ysq) * exp(-(y - ysq) * (y + ysq));
    return (y <= (F)4.0 ? mid : far) * scale;
}}
template <typename F> __device__ F tg_erfc(F x) {{
    F y = fabs(x);
    F tail = tg_erfc_large(y);
    return y <= (F){t} ? (F)1 - tg_erf_small(x) : (x < (F)0 ? (F)2 - tail : tail);
}}
""")


PREAMBLE = BASE_PREAMBLE + _erfc_functions()


def _elementwise(in_params, out_params, body, name):
    """A builder for an ElementwiseKernel over the shared preamble."""
    def build(xp):
        return xp.ElementwiseKernel(in_params, out_params, body, name=name, preamble=PREAMBLE,
                                    options=OPTIONS)
    return build


# ---- activations: forward -------------------------------------------------------------------
def _act_expr(activation, z):
    """C for activation(z), written as the generic forward computes it."""
    k, c = lit(_act._TANH_K), lit(_act._TANH_C)
    return {
        "relu": f"tg_maximum({z}, (T)0)",
        "sigmoid": f"tg_sigmoid({z})",
        "tanh": f"tanh({z})",
        "silu": f"{z} * tg_sigmoid({z})",
        "gelu": f"(T)0.5 * {z} * tg_erfc(-{z} * {lit(_act._SQRT1_2)})",
        "gelu_tanh": f"(T)0.5 * {z} * ((T)1 + tanh({k} * ({z} + {c} * {z} * {z} * {z})))",
    }[activation]


def _unary(activation):
    return _elementwise("T x", "T y", f"y = {_act_expr(activation, 'x')};",
                        f"tg_{activation}")


def sigmoid(xp, x):
    if not floating(x):
        return _act._sigmoid(xp, x)
    return kernel(xp, "sigmoid", _unary("sigmoid"))(x)


def silu(xp, x):
    if not floating(x):
        return _act._silu(xp, x)
    return kernel(xp, "silu", _unary("silu"))(x)


def gelu(xp, x, approximate):
    if not floating(x):
        return _act._gelu(xp, x, approximate)
    name = "gelu_tanh" if approximate == "tanh" else "gelu"
    return kernel(xp, name, _unary(name))(x)


def bias_act(xp, x, bias, activation):
    if not floating(x, bias) or activation not in _act._BIAS_ACTS:
        return _act._bias_act(xp, x, bias, activation)
    build = _elementwise("T x, T b", "T y", f"T z = x + b; y = {_act_expr(activation, 'z')};",
                         f"tg_bias_{activation}")
    return kernel(xp, ("bias_act", activation), build)(x, bias)


# ---- activations: backward ------------------------------------------------------------------
_GELU_BACKWARD = {
    "tanh": f"""
        T t = tanh({lit(_act._TANH_K)} * (x + {lit(_act._TANH_C)} * x * x * x));
        T dinner = {lit(_act._TANH_K)} * ((T)1 + {lit(_act._TANH_3C)} * x * x);
        gx = g * ((T)0.5 * ((T)1 + t) + (T)0.5 * x * ((T)1 - t * t) * dinner);""",
    "none": f"""
        T cdf = (T)0.5 * tg_erfc(x * {lit(-_act._SQRT1_2)});
        T pdf = exp(x * x * (T)-0.5) * {lit(_act._INV_SQRT_2PI)};
        gx = g * (cdf + x * pdf);""",
}


def _from_output(name, body):
    """The derivative op `name` of an activation whose gradient is a function of its output
    (relu, sigmoid, tanh): gx from g and out in one kernel; other dtypes take the generic
    forward, looked up in the registry."""
    def override(xp, g, out):
        if not floating(g, out):
            return OPS[name].forward(xp, g, out)
        return kernel(xp, name, _elementwise("T g, T out", "T gx", body, f"tg_{name}"))(g, out)
    override.__name__ = name
    return override


relu_backward = _from_output("relu_backward", "gx = g * (T)(out > (T)0);")
sigmoid_backward = _from_output("sigmoid_backward", "gx = g * out * ((T)1 - out);")
tanh_backward = _from_output("tanh_backward", "gx = g * ((T)1 - out * out);")


def silu_backward(xp, g, x):
    if not floating(g, x):
        return _act._silu_backward(xp, g, x)
    body = "T s = tg_sigmoid(x); gx = g * (s * ((T)1 + x * ((T)1 - s)));"
    return kernel(xp, "silu_backward", _elementwise("T g, T x", "T gx", body,
                                                    "tg_silu_backward"))(g, x)


def gelu_backward(xp, g, x, approximate):
    if not floating(g, x):
        return _act._gelu_backward(xp, g, x, approximate)
    form = "tanh" if approximate == "tanh" else "none"
    build = _elementwise("T g, T x", "T gx", _GELU_BACKWARD[form], f"tg_gelu_backward_{form}")
    return kernel(xp, ("gelu_backward", form), build)(g, x)


# ---- softmax cross entropy ------------------------------------------------------------------
def _fused_layout(x, target, dim):
    # (N, C) scores over dim 1 with int32/int64 class indices: what the kernels index.
    return (floating(x) and x.ndim == 2 and dim == 1 and target.dtype.kind == "i"
            and target.dtype.itemsize in (4, 8))


_EXP_SHIFTED = _elementwise("T x, T shift", "T e", "e = exp(x - shift);", "tg_exp_shifted")


_SCE_FINISH = _elementwise(
    "raw T x, T shift, T s, I t, I ignore, int64 n_classes", "T loss, T log_s", """
        log_s = log(s == (T)0 ? (T)NAN : s);
        if (t == ignore) {
            loss = (T)0;
        } else if (t < 0 || t >= n_classes) {
            loss = (T)NAN;  // an index the host check did not see (inside a graph capture)
        } else {
            loss = log_s - (x[i * n_classes + t] - shift);
        }""", "tg_softmax_cross_entropy")

_SCE_GRAD = _elementwise(
    "T x, T shift, T log_s, T g, I t, I ignore, int64 n_classes", "T gx", """
        T ge = t != ignore ? g : (T)0;
        T p = exp((x - shift) - log_s);
        gx = ge * p - ge * (T)((i % n_classes) == t);""", "tg_softmax_cross_entropy_backward")


def softmax_cross_entropy(xp, x, target, dim, ignore_index):
    if not _fused_layout(x, target, dim):
        return _softmax_cross_entropy(xp, x, target, dim, ignore_index)
    n, c = x.shape
    shift = _shift(xp, x, (1,))  # the generic's own: max, and 0 where not finite
    # The sum is CuPy's, over the same exp(x - shift) as the generic's: a reduction kernel of
    # our own would add in another order, an ulp of s away, and log_s - z_t (small for a
    # confident right answer) would show it.
    s = xp.sum(kernel(xp, "exp_shifted", _EXP_SHIFTED)(x, shift), axis=1)
    flat = xp.ascontiguousarray(x).reshape(-1)  # read by linear index in the kernel
    loss, log_s = kernel(xp, "sce", _SCE_FINISH)(flat, shift.reshape(n), s, target,
                                                 ignore_index, c)
    return loss, (shift, log_s.reshape(n, 1))


def softmax_cross_entropy_backward(xp, g, x, target, shift, log_s, dim, ignore_index):
    if not (_fused_layout(x, target, dim) and floating(x, g, shift, log_s)):
        return _softmax_cross_entropy_backward(xp, g, x, target, shift, log_s, dim,
                                               ignore_index)
    n, c = x.shape
    return kernel(xp, "sce_backward", _SCE_GRAD)(x, shift, log_s, g.reshape(n, 1),
                                                 target.reshape(n, 1), ignore_index, c)


OVERRIDES = {
    "sigmoid": sigmoid,
    "silu": silu,
    "gelu": gelu,
    "bias_act": bias_act,
    "relu_backward": relu_backward,
    "sigmoid_backward": sigmoid_backward,
    "tanh_backward": tanh_backward,
    "silu_backward": silu_backward,
    "gelu_backward": gelu_backward,
    "softmax_cross_entropy": softmax_cross_entropy,
    "softmax_cross_entropy_backward": softmax_cross_entropy_backward,
    **OPTIM_OVERRIDES,
}
