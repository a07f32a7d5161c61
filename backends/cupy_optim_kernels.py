"""One ElementwiseKernel per optimizer update: the CuPy overrides of ops/optim_ops.py.

Each override takes exactly the generic forward's arguments and honours its docstring
contract: it writes `param` and the state arrays in place (they are the kernel's output
arguments, read and written by the same thread), only reads `grad`, and returns `param`.
The kernel source is specialised on the flags (weight decay on or off, maximize, momentum,
nesterov, amsgrad, ...), so each combination is a kernel without branches, compiled on first
use. The hyper-parameters are passed as scalars of the parameter's dtype, computed in Python
exactly as the generic forward computes them (`1 - beta1`, `-lr`, the bias corrections), and
every arithmetic step is the generic one in the same order (see cupy_kernel_base.OPTIONS), so
the updates match the generic ops to rounding.

Every flag combination is covered for float32 and float64; other dtypes (float16) run the
generic forward. Imports no array library.
"""

from tensorgrad.ops import optim_ops as _generic

from .cupy_kernel_base import BASE_PREAMBLE, OPTIONS, floating, kernel


def _build(name, in_params, out_params, lines):
    body = "\n".join(lines)

    def build(xp):
        return xp.ElementwiseKernel(in_params, out_params, body, name=name,
                                    preamble=BASE_PREAMBLE, options=OPTIONS)
    return build


def _direction(decay, maximize):
    """_generic._direction in C: d = +-grad + weight_decay * param."""
    if decay:
        return ["T d = param * wd;", "d = d - grad;" if maximize else "d = d + grad;"]
    return ["T d = -grad;" if maximize else "T d = grad;"]


# ---- SGD -----------------------------------------------------------------------------------
def _sgd_kernel(decay, maximize, momentum, init, dampening, nesterov):
    lines = _direction(decay, maximize)
    outs = "T param"
    if momentum:
        outs += ", T buf"
        if init:
            lines.append("buf = d;")
        else:
            lines += ["buf = buf * momentum;",
                      "buf = buf + d * damp1;" if dampening else "buf = buf + d;"]
        lines += ["T t = buf * momentum;", "d = t + d;"] if nesterov else ["d = buf;"]
    lines.append("param = param + d * neg_lr;")
    return _build("tg_sgd_step", "T grad, T wd, T momentum, T damp1, T neg_lr", outs, lines)


def sgd_step(xp, param, grad, momentum_buffer, *, lr, momentum, dampening, nesterov,
             weight_decay, maximize, init_buffer):
    if not floating(param, grad):
        return _generic.sgd_step_forward(
            xp, param, grad, momentum_buffer, lr=lr, momentum=momentum, dampening=dampening,
            nesterov=nesterov, weight_decay=weight_decay, maximize=maximize,
            init_buffer=init_buffer)
    flags = (weight_decay != 0, bool(maximize), momentum != 0, bool(init_buffer),
             dampening != 0, bool(nesterov))
    k = kernel(xp, ("sgd_step",) + flags, lambda xp: _sgd_kernel(*flags)(xp))
    state = (momentum_buffer,) if momentum != 0 else ()
    k(grad, weight_decay, momentum, 1 - dampening, -lr, param, *state)
    return param


# ---- Adam / AdamW --------------------------------------------------------------------------
def _adam_kernel(decoupled_decay, l2_decay, maximize, amsgrad):
    lines = ["param = param * decay;"] if decoupled_decay else []
    lines += _direction(l2_decay, maximize) + [
        "T t = d * omb1;",
        "exp_avg = exp_avg * b1;",
        "exp_avg = exp_avg + t;",
        "t = d * d;",
        "t = t * omb2;",
        "exp_avg_sq = exp_avg_sq * b2;",
        "exp_avg_sq = exp_avg_sq + t;",
    ]
    outs = "T param, T exp_avg, T exp_avg_sq"
    if amsgrad:
        outs += ", T max_exp_avg_sq"
        lines += ["max_exp_avg_sq = tg_maximum(max_exp_avg_sq, exp_avg_sq);",
                  "T v = max_exp_avg_sq;"]
    else:
        lines.append("T v = exp_avg_sq;")
    lines += ["t = sqrt(v);", "t = t + eps_bc;", "t = exp_avg / t;", "t = t * neg_step;",
              "param = param + t;"]
    ins = "T grad, T decay, T wd, T b1, T omb1, T b2, T omb2, T eps_bc, T neg_step"
    return _build("tg_adam_step", ins, outs, lines)


def adam_step(xp, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, *, step, lr, beta1, beta2,
              eps, weight_decay, amsgrad, maximize, decoupled):
    if not floating(param, grad):
        return _generic.adam_step_forward(
            xp, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step=step, lr=lr,
            beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
            maximize=maximize, decoupled=decoupled)
    flags = (bool(decoupled) and weight_decay != 0, not decoupled and weight_decay != 0,
             bool(maximize), bool(amsgrad))
    k = kernel(xp, ("adam_step",) + flags, lambda xp: _adam_kernel(*flags)(xp))
    bc2_sqrt = (1 - beta2 ** step) ** 0.5  # the generic forward's scalars, computed alike
    step_size = lr / (1 - beta1 ** step)
    state = (max_exp_avg_sq,) if amsgrad else ()
    k(grad, 1 - lr * weight_decay, weight_decay, beta1, 1 - beta1, beta2, 1 - beta2,
      eps * bc2_sqrt, -step_size * bc2_sqrt, param, exp_avg, exp_avg_sq, *state)
    return param


# ---- Adagrad -------------------------------------------------------------------------------
def _adagrad_kernel(decay, maximize):
    lines = _direction(decay, maximize) + [
        "T t = d * d;", "state_sum = state_sum + t;", "t = sqrt(state_sum);", "t = t + eps;",
        "t = d / t;", "t = t * neg_clr;", "param = param + t;"]
    return _build("tg_adagrad_step", "T grad, T wd, T eps, T neg_clr", "T param, T state_sum",
                  lines)


def adagrad_step(xp, param, grad, state_sum, *, step, lr, lr_decay, weight_decay, eps,
                 maximize):
    if not floating(param, grad):
        return _generic.adagrad_step_forward(
            xp, param, grad, state_sum, step=step, lr=lr, lr_decay=lr_decay,
            weight_decay=weight_decay, eps=eps, maximize=maximize)
    flags = (weight_decay != 0, bool(maximize))
    k = kernel(xp, ("adagrad_step",) + flags, lambda xp: _adagrad_kernel(*flags)(xp))
    clr = lr / (1 + (step - 1) * lr_decay)
    k(grad, weight_decay, eps, -clr, param, state_sum)
    return param


# ---- RMSprop -------------------------------------------------------------------------------
def _rmsprop_kernel(decay, maximize, centered, momentum):
    lines = _direction(decay, maximize) + [
        "T t = d * d;", "t = t * oma;", "square_avg = square_avg * alpha;",
        "square_avg = square_avg + t;"]
    outs = "T param, T square_avg"
    if centered:
        outs += ", T grad_avg"
        lines += ["t = d * oma;", "grad_avg = grad_avg * alpha;", "grad_avg = grad_avg + t;",
                  "t = grad_avg * grad_avg;", "t = square_avg - t;", "t = sqrt(t);"]
    else:
        lines.append("t = sqrt(square_avg);")
    lines += ["t = t + eps;", "t = d / t;"]
    if momentum:
        outs += ", T buf"
        lines += ["buf = buf * momentum;", "buf = buf + t;", "t = buf * neg_lr;"]
    else:
        lines.append("t = t * neg_lr;")
    lines.append("param = param + t;")
    return _build("tg_rmsprop_step", "T grad, T wd, T alpha, T oma, T eps, T momentum, T neg_lr",
                  outs, lines)


def rmsprop_step(xp, param, grad, square_avg, grad_avg, momentum_buffer, *, lr, alpha, eps,
                 weight_decay, momentum, centered, maximize):
    if not floating(param, grad):
        return _generic.rmsprop_step_forward(
            xp, param, grad, square_avg, grad_avg, momentum_buffer, lr=lr, alpha=alpha,
            eps=eps, weight_decay=weight_decay, momentum=momentum, centered=centered,
            maximize=maximize)
    flags = (weight_decay != 0, bool(maximize), bool(centered), momentum > 0)
    k = kernel(xp, ("rmsprop_step",) + flags, lambda xp: _rmsprop_kernel(*flags)(xp))
    state = ((grad_avg,) if centered else ()) + ((momentum_buffer,) if momentum > 0 else ())
    k(grad, weight_decay, alpha, 1 - alpha, eps, momentum, -lr, param, square_avg, *state)
    return param


OPTIM_OVERRIDES = {
    "sgd_step": sgd_step,
    "adam_step": adam_step,
    "adagrad_step": adagrad_step,
    "rmsprop_step": rmsprop_step,
}
