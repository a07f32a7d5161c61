"""Optimizer updates as ops: one op performs one optimizer's whole update of one parameter.

Each op is registered without a VJP (an update is not differentiated) and writes IN PLACE:
its forward `forward(xp, param, grad, *state, **hyper)` updates the `param` array and the
state arrays with in-place ufuncs and `out=` (one scratch array per call at most), and
returns the param array. `grad` is only read. These ops are the seam a backend fuses: the
CuPy backend overrides each one with a single ElementwiseKernel, so each forward's docstring
is its contract (inputs, attributes, what is written) and overrides must match it to 1e-6
relative in float32 and 1e-12 in float64.

The public functions (`sgd_step_`, `adam_step_`, `adagrad_step_`, `rmsprop_step_`) take
tensors, check that they agree with the parameter (shape, dtype, device), run the op and bump
the version counter of every tensor written, so a graph node that saved one of them refuses
to use the stale value. They refuse to write a tensor that requires grad while grad mode is
on, as every in-place op does: optimizers call them under `tg.no_grad()`.

Hyper-parameters are Python numbers (host scalars), never tensors: reading a device scalar
would cost a GPU sync per parameter. `tensorgrad.optim` keeps the step count as a Python int
for exactly that reason. This module knows arrays (it is core); it imports no array library.
"""

from ..autograd import graph
from ..errors import DeviceError, DTypeError, GraphError, ShapeError
from ..tensor import Tensor
from .registry import apply, register

METHODS = {}
# The functions are reached as tensorgrad.ops.optim_ops.<name> (torch has no public names for
# them, so they stay out of the top-level tg.* namespace).
__all__ = ()


# ---- shared array helpers ------------------------------------------------------------------
def _direction(xp, param, grad, weight_decay, maximize):
    """The descent direction d = ±grad + weight_decay * param; (d, d is a scratch array)."""
    if weight_decay != 0:
        d = xp.multiply(param, weight_decay)
        if maximize:
            d -= grad
        else:
            d += grad
        return d, True
    if maximize:
        return xp.negative(grad), True
    return grad, False


def _scratch(xp, d, owned):
    # A scratch array the size of the parameter: the direction's if the caller no longer needs
    # it, else a fresh one.
    return d if owned else xp.empty_like(d)


# ---- SGD -----------------------------------------------------------------------------------
def sgd_step_forward(xp, param, grad, momentum_buffer, *, lr, momentum, dampening, nesterov,
                     weight_decay, maximize, init_buffer):
    """SGD, torch.optim.SGD's algorithm. Writes param and momentum_buffer; returns param.

    d = (-grad if maximize else grad) + weight_decay * param
    if momentum != 0:  buf = d                                  (init_buffer: the first step)
                       buf = momentum * buf + (1 - dampening) * d   (every later step)
                       d = d + momentum * buf if nesterov else buf
    param -= lr * d
    momentum_buffer is None exactly when momentum == 0.
    """
    d, owned = _direction(xp, param, grad, weight_decay, maximize)
    if momentum != 0:
        if init_buffer:
            xp.copyto(momentum_buffer, d)
        else:
            momentum_buffer *= momentum
            if dampening != 0:
                momentum_buffer += xp.multiply(d, 1 - dampening)
            else:
                momentum_buffer += d
        if nesterov:
            t = xp.multiply(momentum_buffer, momentum)
            t += d
            d, owned = t, True
        else:
            d, owned = momentum_buffer, False
    t = _scratch(xp, d, owned)
    xp.multiply(d, -lr, out=t)
    param += t
    return param


# ---- Adam / AdamW --------------------------------------------------------------------------
def adam_step_forward(xp, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, *, step, lr, beta1,
                      beta2, eps, weight_decay, amsgrad, maximize, decoupled):
    """Adam (decoupled=False) or AdamW (decoupled=True), torch.optim.Adam's algorithm.

    Writes param, exp_avg, exp_avg_sq and (amsgrad) max_exp_avg_sq; returns param. `step` is
    the step count AFTER this step's increment (1 on the first step), a Python int.
    if decoupled:  param *= 1 - lr * weight_decay;  d = ±grad
    else:          d = ±grad + weight_decay * param
    exp_avg    = beta1 * exp_avg + (1 - beta1) * d
    exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * d * d
    v = max_exp_avg_sq = max(max_exp_avg_sq, exp_avg_sq) if amsgrad else exp_avg_sq
    param -= lr / (1 - beta1**step) * exp_avg / (sqrt(v) / sqrt(1 - beta2**step) + eps)
    max_exp_avg_sq is None unless amsgrad.
    """
    if decoupled and weight_decay != 0:
        param *= 1 - lr * weight_decay
    d, owned = _direction(xp, param, grad, 0 if decoupled else weight_decay, maximize)
    t = xp.multiply(d, 1 - beta1)
    exp_avg *= beta1
    exp_avg += t
    xp.multiply(d, d, out=t)
    t *= 1 - beta2
    exp_avg_sq *= beta2
    exp_avg_sq += t
    v = exp_avg_sq
    if amsgrad:
        xp.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        v = max_exp_avg_sq
    bc2_sqrt = (1 - beta2 ** step) ** 0.5
    step_size = lr / (1 - beta1 ** step)
    # exp_avg / (sqrt(v)/bc2_sqrt + eps) == bc2_sqrt * exp_avg / (sqrt(v) + eps*bc2_sqrt):
    # one pass over the parameter fewer.
    xp.sqrt(v, out=t)
    t += eps * bc2_sqrt
    xp.divide(exp_avg, t, out=t)
    t *= -step_size * bc2_sqrt
    param += t
    return param


# ---- Adagrad -------------------------------------------------------------------------------
def adagrad_step_forward(xp, param, grad, state_sum, *, step, lr, lr_decay, weight_decay, eps,
                         maximize):
    """Adagrad, torch.optim.Adagrad's algorithm. Writes param and state_sum; returns param.

    `step` is the count after this step's increment (1 on the first step), a Python int.
    d = ±grad + weight_decay * param
    state_sum += d * d
    param -= lr / (1 + (step - 1) * lr_decay) * d / (sqrt(state_sum) + eps)
    """
    d, owned = _direction(xp, param, grad, weight_decay, maximize)
    clr = lr / (1 + (step - 1) * lr_decay)
    t = xp.multiply(d, d)
    state_sum += t
    xp.sqrt(state_sum, out=t)
    t += eps
    xp.divide(d, t, out=t)
    t *= -clr
    param += t
    return param


# ---- RMSprop -------------------------------------------------------------------------------
def rmsprop_step_forward(xp, param, grad, square_avg, grad_avg, momentum_buffer, *, lr, alpha,
                         eps, weight_decay, momentum, centered, maximize):
    """RMSprop, torch.optim.RMSprop's algorithm. Returns param.

    Writes param, square_avg, grad_avg (centered) and momentum_buffer (momentum > 0); those
    two are None otherwise.
    d = ±grad + weight_decay * param
    square_avg = alpha * square_avg + (1 - alpha) * d * d
    if centered:  grad_avg = alpha * grad_avg + (1 - alpha) * d
                  avg = sqrt(square_avg - grad_avg**2) + eps
    else:         avg = sqrt(square_avg) + eps
    if momentum > 0:  buf = momentum * buf + d / avg;  param -= lr * buf
    else:             param -= lr * d / avg
    """
    d, owned = _direction(xp, param, grad, weight_decay, maximize)
    t = xp.multiply(d, d)
    t *= 1 - alpha
    square_avg *= alpha
    square_avg += t
    if centered:
        xp.multiply(d, 1 - alpha, out=t)
        grad_avg *= alpha
        grad_avg += t
        xp.multiply(grad_avg, grad_avg, out=t)
        xp.subtract(square_avg, t, out=t)
        xp.sqrt(t, out=t)
    else:
        xp.sqrt(square_avg, out=t)
    t += eps
    xp.divide(d, t, out=t)
    if momentum > 0:
        momentum_buffer *= momentum
        momentum_buffer += t
        xp.multiply(momentum_buffer, -lr, out=t)
    else:
        t *= -lr
    param += t
    return param


SGD_STEP = register("sgd_step", sgd_step_forward)
ADAM_STEP = register("adam_step", adam_step_forward)
ADAGRAD_STEP = register("adagrad_step", adagrad_step_forward)
RMSPROP_STEP = register("rmsprop_step", rmsprop_step_forward)


# ---- Tensor-level functions ----------------------------------------------------------------
def _check(name, param, grad, state):
    """param, grad and every state tensor agree; none written is recorded by autograd."""
    for what, t in (("param", param), ("grad", grad)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name}: {what} must be a Tensor, got {type(t).__name__}")
    for what, t in (("grad", grad),) + tuple(state.items()):
        if t.shape != param.shape:
            raise ShapeError(f"{name}: {what} has shape {tuple(t.shape)}, the parameter "
                             f"{tuple(param.shape)}\n  hint: state is created with "
                             "tg.zeros_like(param)")
        if t.dtype is not param.dtype:
            raise DTypeError(f"{name}: {what} has dtype {t.dtype}, the parameter "
                             f"{param.dtype}\n  hint: keep state in the parameter's dtype")
        if t.device != param.device:
            raise DeviceError(f"{name}: {what} is on {t.device}, the parameter on "
                              f"{param.device}\n  hint: move the state with the parameter")
    if graph._mode.enabled and (param._rg or any(t._rg for t in state.values())):
        raise GraphError(f"{name}: updates its tensors in place, and the parameter requires "
                         "grad while grad mode is on\n  hint: call it under `with "
                         "tg.no_grad():`, as optimizers do")


def _run(op, param, grad, state, attrs):
    """Check, apply `op` to (param, grad, *state) and bump the written tensors' versions."""
    present = {k: v for k, v in state.items() if v is not None}
    _check(op.name + "_", param, grad, present)
    apply(op, (param, grad, *state.values()), attrs)
    param._vc[0] += 1
    for t in present.values():
        t._vc[0] += 1
    return param


def sgd_step_(param, grad, momentum_buffer=None, *, lr, momentum=0.0, dampening=0.0,
              nesterov=False, weight_decay=0.0, maximize=False, init_buffer=False):
    """One SGD update of `param` in place (see `sgd_step_forward`); returns `param`.

    >>> import tensorgrad as tg
    >>> from tensorgrad.ops.optim_ops import sgd_step_
    >>> p = tg.tensor([1.0, 2.0]); buf = tg.zeros(2)
    >>> _ = sgd_step_(p, tg.tensor([1.0, 1.0]), buf, lr=0.5, momentum=0.9, init_buffer=True)
    >>> p.tolist(), buf.tolist()
    ([0.5, 1.5], [1.0, 1.0])
    """
    if (momentum != 0) != (momentum_buffer is not None):
        raise ValueError("sgd_step_: pass a momentum_buffer exactly when momentum != 0")
    return _run(SGD_STEP, param, grad, {"momentum_buffer": momentum_buffer},
                dict(lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov,
                     weight_decay=weight_decay, maximize=maximize, init_buffer=init_buffer))


def adam_step_(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq=None, *, step, lr, beta1=0.9,
               beta2=0.999, eps=1e-8, weight_decay=0.0, amsgrad=False, maximize=False,
               decoupled=False):
    """One Adam (or AdamW, decoupled=True) update in place (see `adam_step_forward`).

    `step` is the Python int count including this step. Returns `param`.

    >>> import tensorgrad as tg
    >>> from tensorgrad.ops.optim_ops import adam_step_
    >>> p = tg.tensor([1.0]); m = tg.zeros(1); v = tg.zeros(1)
    >>> _ = adam_step_(p, tg.tensor([3.0]), m, v, step=1, lr=0.1)
    >>> round(p.item(), 6)
    0.9
    """
    if amsgrad != (max_exp_avg_sq is not None):
        raise ValueError("adam_step_: pass max_exp_avg_sq exactly when amsgrad=True")
    return _run(ADAM_STEP, param, grad, {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq,
                                         "max_exp_avg_sq": max_exp_avg_sq},
                dict(step=step, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                     weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize,
                     decoupled=decoupled))


def adagrad_step_(param, grad, state_sum, *, step, lr, lr_decay=0.0, weight_decay=0.0,
                  eps=1e-10, maximize=False):
    """One Adagrad update in place (see `adagrad_step_forward`); returns `param`.

    >>> import tensorgrad as tg
    >>> from tensorgrad.ops.optim_ops import adagrad_step_
    >>> p = tg.tensor([1.0]); s = tg.zeros(1)
    >>> _ = adagrad_step_(p, tg.tensor([2.0]), s, step=1, lr=0.5)
    >>> round(p.item(), 6), s.item()
    (0.5, 4.0)
    """
    return _run(ADAGRAD_STEP, param, grad, {"state_sum": state_sum},
                dict(step=step, lr=lr, lr_decay=lr_decay, weight_decay=weight_decay, eps=eps,
                     maximize=maximize))


def rmsprop_step_(param, grad, square_avg, grad_avg=None, momentum_buffer=None, *, lr,
                  alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
                  maximize=False):
    """One RMSprop update in place (see `rmsprop_step_forward`); returns `param`.

    >>> import tensorgrad as tg
    >>> from tensorgrad.ops.optim_ops import rmsprop_step_
    >>> p = tg.tensor([1.0]); sq = tg.zeros(1)
    >>> _ = rmsprop_step_(p, tg.tensor([2.0]), sq, lr=0.1, alpha=0.75, eps=0.0)
    >>> round(p.item(), 6), sq.item()
    (0.8, 1.0)
    """
    if centered != (grad_avg is not None) or (momentum > 0) != (momentum_buffer is not None):
        raise ValueError("rmsprop_step_: pass grad_avg exactly when centered=True and "
                         "momentum_buffer exactly when momentum > 0")
    return _run(RMSPROP_STEP, param, grad, {"square_avg": square_avg, "grad_avg": grad_avg,
                                            "momentum_buffer": momentum_buffer},
                dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                     momentum=momentum, centered=centered, maximize=maximize))
