"""The softmax family and running sums: logsumexp, softmax, log_softmax, cumsum.

Each is shifted by the slice's maximum, so logits of magnitude 1e4 stay finite, and -inf
entries (attention masks) give probability 0 without nan. Argument handling is reduce.py's.

`softmax_cross_entropy` is log_softmax and the pick of the target class in one op (what
cross_entropy with class indices runs), with its gradient `softmax_cross_entropy_backward`
an op too: a backend fuses each into a kernel or two (backends/cupy_kernels.py).
"""

from ..errors import DTypeError
from ._util import as_float, wrap_like
from .binary import where
from .elementwise import exp
from .indexing import gather
from .reduce import _accumulating, _dims, _keepdim, _lifted, _need_float, _one_dim
from .registry import apply, register


# ---- logsumexp / softmax / log_softmax: shifted by the max, safe with -inf -----------------------
def _shift(xp, x, dims):
    """The max over `dims` (kept), or 0 where it is not finite, so x - shift never makes nan."""
    m = xp.amax(x, axis=dims, keepdims=True)
    return xp.where(xp.isfinite(m), m, 0).astype(x.dtype, copy=False)


def _logsumexp(xp, x, dims, keepdim):
    m = _shift(xp, x, dims)
    s = xp.sum(xp.exp(x - m), axis=dims, keepdims=True)
    # s == 0 only for a slice of -inf: its logsumexp is -inf (log is kept off 0: no warning).
    out = xp.where(s == 0, -xp.inf, xp.log(xp.where(s == 0, 1, s)) + m).astype(x.dtype)
    return (out if keepdim else xp.squeeze(out, axis=dims)), m


def _logsumexp_vjp(ctx, g, dims, keepdim):
    # The gradient is softmax(x). exp(x - out) would lose digits at |x| ~ 1e4 in float32
    # (out is rounded there), so it is rebuilt from the forward's shift, a constant.
    e = exp(ctx.inputs[0] - wrap_like(ctx, ctx.res))
    s = e.sum(dims, keepdim=True)
    p = e / where(s == 0, 1, s)  # an all -inf slice: e is 0 there, and so is the gradient
    return (_keepdim(g, dims, keepdim) * p,)


LOGSUMEXP = register("logsumexp", _logsumexp, _logsumexp_vjp, save_inputs=True, has_res=True)


def logsumexp(input, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """log(sum(exp(x))) over `dim` (all dimensions when None), stable for large |x|.

    >>> import tensorgrad as tg
    >>> tg.logsumexp(tg.tensor([1e4, 1e4]), dim=0).item() - 1e4
    0.693359375
    """
    dims, keepdim = _dims(input, dim, axis, keepdim, keepdims, "logsumexp")
    input = as_float(input, "logsumexp")
    return apply(LOGSUMEXP, (input,), {"dims": dims, "keepdim": keepdim})


def _softmax(xp, x, dim):
    e = xp.exp(x - _shift(xp, x, (dim,)))
    s = xp.sum(e, axis=dim, keepdims=True)
    return e / xp.where(s == 0, xp.nan, s)  # an all -inf slice gives nan, as in PyTorch


def _softmax_vjp(ctx, g, dim):
    y = ctx.out
    gy = g * y
    return (gy - y * gy.sum(dim, keepdim=True),)


SOFTMAX = register("softmax", _softmax, _softmax_vjp, save_out=True)


def _log_softmax(xp, x, dim):
    z = x - _shift(xp, x, (dim,))
    s = xp.sum(xp.exp(z), axis=dim, keepdims=True)
    return z - xp.log(xp.where(s == 0, xp.nan, s))  # nan for an all -inf slice, as PyTorch


def _log_softmax_vjp(ctx, g, dim):
    return (g - exp(ctx.out) * g.sum(dim, keepdim=True),)


LOG_SOFTMAX = register("log_softmax", _log_softmax, _log_softmax_vjp, save_out=True)


def _normalized(op, name, input, dim, dtype, axis):
    d = _one_dim(input, dim, axis, name)
    if dtype is not None:
        input = input.to(dtype)
    _need_float(input, name, name)
    return _lifted(lambda x: apply(op, (x,), {"dim": d}), input)


def softmax(input, dim=None, dtype=None, *, axis=None):
    """exp(x) / sum(exp(x)) along `dim`; -inf entries get probability 0.

    >>> import tensorgrad as tg
    >>> tg.softmax(tg.tensor([0.0, float("-inf")]), dim=0).tolist()
    [1.0, 0.0]
    """
    return _normalized(SOFTMAX, "softmax", input, dim, dtype, axis)


def log_softmax(input, dim=None, dtype=None, *, axis=None):
    """x - logsumexp(x) along `dim`; -inf entries get log-probability -inf."""
    return _normalized(LOG_SOFTMAX, "log_softmax", input, dim, dtype, axis)


# ---- softmax cross entropy: log_softmax and the target's pick in one op -------------------------
def _softmax_cross_entropy(xp, x, target, dim, ignore_index):
    """Per-sample -log_softmax(x)[target] along `dim` (0 where target == ignore_index).

    Returns (loss, (shift, log_s)): the shift and log of the sum of exp(x - shift), both
    kept along `dim`, residuals for the backward op. The numbers are log_softmax's then the
    pick: z[t] - log_s with z = x - shift, negated.
    """
    shift = _shift(xp, x, (dim,))
    z = x - shift
    s = xp.sum(xp.exp(z), axis=dim, keepdims=True)
    log_s = xp.log(xp.where(s == 0, xp.nan, s)).astype(x.dtype, copy=False)  # nan: all -inf
    valid = target != ignore_index
    idx = xp.expand_dims(xp.where(valid, target, 0), dim)
    loss = xp.squeeze(log_s - xp.take_along_axis(z, idx, axis=dim), axis=dim)
    return xp.where(valid, loss, 0).astype(x.dtype, copy=False), (shift, log_s)


def _softmax_cross_entropy_vjp(ctx, g, dim, ignore_index):
    x, target = ctx.inputs
    shift, log_s = (wrap_like(ctx, r) for r in ctx.res)
    gx = apply(SOFTMAX_CROSS_ENTROPY_BACKWARD, (g, x, target, shift, log_s),
               {"dim": dim, "ignore_index": ignore_index})
    return gx, None


SOFTMAX_CROSS_ENTROPY = register("softmax_cross_entropy", _softmax_cross_entropy,
                                 _softmax_cross_entropy_vjp, save_inputs=True, has_res=True)


def _softmax_cross_entropy_backward(xp, g, x, target, shift, log_s, dim, ignore_index):
    """g * (softmax(x) - onehot(target)) along `dim`, 0 for ignored samples.

    shift and log_s are the forward's residuals for this x (softmax = exp(x - shift - log_s)).
    """
    p = xp.exp((x - shift) - log_s)
    valid = target != ignore_index
    ge = xp.expand_dims(xp.where(valid, g, 0), dim).astype(x.dtype, copy=False)
    classes = [1] * x.ndim
    classes[dim] = x.shape[dim]
    onehot = xp.arange(x.shape[dim]).reshape(classes) == xp.expand_dims(target, dim)
    return ge * p - ge * onehot  # g p - g at the target: as the log_softmax VJP rounds it


def _softmax_cross_entropy_backward_vjp(ctx, v, dim, ignore_index):
    # Per sample, the backward is g (p - e_t): d/dg = v . (p - e_t), and d/dx is the softmax
    # Jacobian applied to v, times g: g p (v - v . p). shift and log_s are constants here.
    g, x, target = ctx.inputs[:3]
    keep = (target != ignore_index).to(x.dtype)
    p = apply(SOFTMAX, (x,), {"dim": dim})
    vp = (v * p).sum(dim)
    need = ctx.needs_input_grad
    gg = gx = None
    if need[0]:
        safe = where(target != ignore_index, target, 0).unsqueeze(dim)
        gg = (vp - gather(v, dim, safe).squeeze(dim)) * keep
    if need[1]:
        gx = (g * keep).unsqueeze(dim) * p * (v - vp.unsqueeze(dim))
    return gg, gx, None, None, None


SOFTMAX_CROSS_ENTROPY_BACKWARD = register(
    "softmax_cross_entropy_backward", _softmax_cross_entropy_backward,
    _softmax_cross_entropy_backward_vjp, save_inputs=True)


def softmax_cross_entropy(input, target, dim=1, ignore_index=-100):
    """-log_softmax(input, dim) picked at the integer `target`, per sample (0 where ignored).

    `target` has input's shape without `dim`. What `cross_entropy` with class indices runs;
    it checks the targets first (this op does not: an index out of range gives nan on a GPU).

    >>> import tensorgrad as tg
    >>> from tensorgrad.ops.softmax import softmax_cross_entropy
    >>> round(softmax_cross_entropy(tg.tensor([[0.0, 0.0]]), tg.tensor([1])).item(), 6)
    0.693147
    """
    if target.dtype.is_floating_point or target.dtype.name == "bool":
        raise DTypeError(f"softmax_cross_entropy: target must hold integer class indices, got "
                         f"{target.dtype}\n  hint: target.long()")
    return apply(SOFTMAX_CROSS_ENTROPY, (input, target),
                 {"dim": dim % max(input.ndim, 1), "ignore_index": int(ignore_index)})


# ---- cumsum ---------------------------------------------------------------------------------
def _cumsum(xp, x, dim, reverse):
    if reverse:  # the VJP's sum from the end: exact, unlike total - cumsum
        return xp.flip(xp.cumsum(xp.flip(x, axis=dim), axis=dim), axis=dim)
    return xp.cumsum(x, axis=dim)


def _cumsum_vjp(ctx, g, dim, reverse):
    return (apply(CUMSUM, (g,), {"dim": dim, "reverse": not reverse}),)


CUMSUM = register("cumsum", _cumsum, _cumsum_vjp)


def cumsum(input, dim=None, *, dtype=None, axis=None):
    """Running sum along `dim`; integer and bool inputs give int64."""
    d = _one_dim(input, dim, axis, "cumsum")
    input = _accumulating(input, dtype)
    return _lifted(lambda x: apply(CUMSUM, (x,), {"dim": d, "reverse": False}), input)



METHODS = {"logsumexp": logsumexp, "softmax": softmax, "log_softmax": log_softmax,
           "cumsum": cumsum}
__all__ = list(METHODS)
