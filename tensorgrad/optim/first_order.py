"""First-order optimizers with torch.optim's names, defaults and update rules.

`SGD`, `Adagrad`, `RMSprop`, `Adam` and `AdamW` follow the algorithm boxes of PyTorch's
documentation (which differ from the papers for AMSGrad, AdamW, Nesterov and RMSprop) and
keep PyTorch's state keys (`step`, `momentum_buffer`, `exp_avg`, `exp_avg_sq`,
`max_exp_avg_sq`, `sum`, `square_avg`, `grad_avg`), so `state_dict()` has PyTorch's layout.

Each parameter's update is one op of `tensorgrad.ops.optim_ops` (`adam_step_`, ...), which
writes the parameter and its state in place and which a backend may fuse into one kernel.
`foreach` and `fused` are accepted for PyTorch compatibility and change nothing: this
per-parameter fused op is the only path.

The step count: `state["step"]` is a 0-d CPU tensor as in PyTorch (float32, or float64 when
the default dtype is float64), but the update never reads it back. Each optimizer mirrors
the count as a Python int (`_host_steps`, not part of `state_dict()`), valid while the tensor
is the same object at the version this mirror wrote; after `load_state_dict` or an outside
write the count is read once from the (CPU) tensor, never per step. Speaks only Tensor: no
array library, no raw arrays (STYLE.md habit 10).
"""

from ..autograd.graph import no_grad
from ..creation import full_like, tensor, zeros_like
from ..dtypes import float32, float64, get_default_dtype
from ..errors import ShapeError
from ..ops.optim_ops import adagrad_step_, adam_step_, rmsprop_step_, sgd_step_
from ..tensor import Tensor
from .optimizer import Optimizer, check_lr

__all__ = ["SGD", "Adagrad", "RMSprop", "Adam", "AdamW"]


def _check(name, ok, message):
    if not ok:
        raise ValueError(f"{name}: {message}")


def _check_lr(name, lr):
    if isinstance(lr, Tensor):
        raise TypeError(f"{name}: lr as a Tensor is not supported (the update reads it on the "
                        "host every step)\n  hint: pass a float, e.g. lr=1e-3")
    return check_lr(name, lr)


def _check_flags(name, foreach=None, fused=None, capturable=False, differentiable=False):
    # PyTorch's implementation switches: accepted for compatibility where they mean nothing
    # here, refused where they promise what tensorgrad does not do.
    _check(name, not differentiable, "differentiable=True is not supported (optimizer steps "
           "are not recorded by autograd)")
    _check(name, not capturable, "capturable=True (CUDA graph capture) is not supported")
    if fused and foreach:
        raise RuntimeError(f"{name}: `fused` and `foreach` cannot be `True` together.")


def _scalar_dtype():
    # torch.optim.optimizer._get_scalar_dtype: the dtype of state["step"].
    return float64 if get_default_dtype() is float64 else float32


class _FirstOrder(Optimizer):
    """What the first-order optimizers share: the step mirror and state checks on load."""

    _tensor_state = ()  # state keys holding a tensor shaped like its parameter
    _counts_steps = True  # keeps state["step"]

    def __init__(self, params, defaults):
        self._host_steps = {}
        super().__init__(params, defaults)

    def _new_step(self, p):
        t = tensor(0.0, dtype=_scalar_dtype(), device="cpu")
        self._host_steps[p] = (t, t._version, 0)
        return t

    def _advance(self, p, state):
        """state["step"] += 1, returning the new count as a Python int (see module doc)."""
        t = state["step"]
        mirror = self._host_steps.get(p)
        if mirror is not None and mirror[0] is t and mirror[1] == t._version:
            n = mirror[2] + 1
        else:
            n = int(t.item()) + 1  # once after a load or an outside write; t is on the CPU
        t.fill_(n)
        self._host_steps[p] = (t, t._version, n)
        return n

    def load_state_dict(self, state_dict):
        self._check_saved_state(state_dict)
        super().load_state_dict(state_dict)
        self._host_steps = {}

    def _check_saved_state(self, state_dict):
        """Each saved per-parameter state has this optimizer's keys and its parameter's shape."""
        groups = state_dict.get("param_groups") if isinstance(state_dict, dict) else None
        if not groups or len(groups) != len(self.param_groups) or any(
                len(g["params"]) != len(o["params"]) or set(self.defaults) - set(g)
                for g, o in zip(groups, self.param_groups)):
            return  # the base class says what does not match
        by_index = {i: p for g, o in zip(groups, self.param_groups)
                    for i, p in zip(g["params"], o["params"])}
        name = type(self).__name__
        known = set(self._tensor_state) | ({"step"} if self._counts_steps else set())
        for idx, saved in state_dict.get("state", {}).items():
            unknown = sorted(set(saved) - known)
            _check(name, not unknown, f"load_state_dict: the saved state of parameter {idx} "
                   f"has {unknown}, which {name} does not keep (it keeps {sorted(known)})\n"
                   "  hint: was it saved by a different optimizer?")
            p = by_index.get(int(idx))
            for key in self._tensor_state:
                v = saved.get(key)
                if p is not None and isinstance(v, Tensor) and v.shape != p.shape:
                    raise ShapeError(f"{name}.load_state_dict: saved {key!r} of parameter "
                                     f"{idx} has shape {tuple(v.shape)}, the parameter here "
                                     f"{tuple(p.shape)}\n  hint: build the model with the "
                                     "same layout as the one saved")


# ---- SGD -----------------------------------------------------------------------------------
class SGD(_FirstOrder):
    """Stochastic gradient descent, optionally with momentum (torch.optim.SGD).

    >>> import tensorgrad as tg
    >>> w = tg.tensor([1.0, -2.0], requires_grad=True)
    >>> opt = tg.optim.SGD([w], lr=0.1, momentum=0.9)
    >>> for _ in range(2):
    ...     opt.zero_grad(); (w * w).sum().backward(); _ = opt.step()
    >>> [round(v, 4) for v in w.tolist()]
    [0.46, -0.92]
    """

    _tensor_state = ("momentum_buffer",)
    _counts_steps = False

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False, *, maximize=False, foreach=None, differentiable=False,
                 fused=None):
        name = type(self).__name__
        _check_lr(name, lr)
        _check(name, momentum >= 0.0, f"Invalid momentum value: {momentum}")
        _check(name, weight_decay >= 0.0, f"Invalid weight_decay value: {weight_decay}")
        _check(name, not nesterov or (momentum > 0 and dampening == 0),
               "Nesterov momentum requires a momentum and zero dampening")
        _check_flags(name, foreach, fused, differentiable=differentiable)
        super().__init__(params, dict(
            lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
            nesterov=nesterov, maximize=maximize, foreach=foreach,
            differentiable=differentiable, fused=fused))

    def step(self, closure=None):
        """One update of every parameter with a gradient; returns the closure's loss."""
        loss = self._evaluate(closure)
        with no_grad():
            for group in self.param_groups:
                momentum = group["momentum"]
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    buf, first = None, False
                    if momentum != 0:
                        state = self.state[p]
                        buf = state.get("momentum_buffer")
                        if buf is None:  # PyTorch's first step: the buffer is the direction
                            buf = state["momentum_buffer"] = zeros_like(p)
                            first = True
                    sgd_step_(p, p.grad, buf, lr=group["lr"], momentum=momentum,
                              dampening=group["dampening"], nesterov=group["nesterov"],
                              weight_decay=group["weight_decay"], maximize=group["maximize"],
                              init_buffer=first)
        return loss


# ---- Adagrad -------------------------------------------------------------------------------
class Adagrad(_FirstOrder):
    """Adagrad (torch.optim.Adagrad); its state is created for every parameter up front.

    >>> import tensorgrad as tg
    >>> w = tg.tensor([1.0], requires_grad=True)
    >>> opt = tg.optim.Adagrad([w], lr=0.5)
    >>> (w * w).sum().backward(); _ = opt.step()
    >>> round(w.item(), 4), opt.state[w]["sum"].tolist()
    (0.5, [4.0])
    """

    _tensor_state = ("sum",)

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
                 eps=1e-10, foreach=None, *, maximize=False, differentiable=False, fused=None):
        name = type(self).__name__
        _check_lr(name, lr)
        _check(name, lr_decay >= 0.0, f"Invalid lr_decay value: {lr_decay}")
        _check(name, weight_decay >= 0.0, f"Invalid weight_decay value: {weight_decay}")
        _check(name, initial_accumulator_value >= 0.0,
               f"Invalid initial_accumulator_value value: {initial_accumulator_value}")
        _check(name, eps >= 0.0, f"Invalid epsilon value: {eps}")
        _check_flags(name, foreach, fused, differentiable=differentiable)
        super().__init__(params, dict(
            lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value, foreach=foreach,
            maximize=maximize, differentiable=differentiable, fused=fused))
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(p, group)

    def _init_state(self, p, group):
        state = self.state[p]
        state["step"] = self._new_step(p)
        with no_grad():
            state["sum"] = full_like(p, group["initial_accumulator_value"])
        return state

    def step(self, closure=None):
        """One update of every parameter with a gradient; returns the closure's loss."""
        loss = self._evaluate(closure)
        with no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    state = self.state[p] or self._init_state(p, group)  # add_param_group
                    adagrad_step_(p, p.grad, state["sum"], step=self._advance(p, state),
                                  lr=group["lr"], lr_decay=group["lr_decay"],
                                  weight_decay=group["weight_decay"], eps=group["eps"],
                                  maximize=group["maximize"])
        return loss


# ---- RMSprop -------------------------------------------------------------------------------
class RMSprop(_FirstOrder):
    """RMSprop, optionally centered and with momentum (torch.optim.RMSprop).

    >>> import tensorgrad as tg
    >>> w = tg.tensor([1.0], requires_grad=True)
    >>> opt = tg.optim.RMSprop([w], lr=0.01, alpha=0.75, eps=0.0)
    >>> (w * w).sum().backward(); _ = opt.step()
    >>> round(w.item(), 4)
    0.98
    """

    _tensor_state = ("square_avg", "momentum_buffer", "grad_avg")

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, capturable=False, foreach=None, maximize=False,
                 differentiable=False):
        name = type(self).__name__
        _check_lr(name, lr)
        _check(name, eps >= 0.0, f"Invalid epsilon value: {eps}")
        _check(name, momentum >= 0.0, f"Invalid momentum value: {momentum}")
        _check(name, weight_decay >= 0.0, f"Invalid weight_decay value: {weight_decay}")
        _check(name, alpha >= 0.0, f"Invalid alpha value: {alpha}")
        _check_flags(name, foreach, None, capturable, differentiable)
        super().__init__(params, dict(
            lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
            weight_decay=weight_decay, capturable=capturable, foreach=foreach,
            maximize=maximize, differentiable=differentiable))

    def _state(self, p, group):
        state = self.state[p]
        if not state:
            state["step"] = self._new_step(p)
            state["square_avg"] = zeros_like(p)
            if group["momentum"] > 0:
                state["momentum_buffer"] = zeros_like(p)
            if group["centered"]:
                state["grad_avg"] = zeros_like(p)
        return state

    def step(self, closure=None):
        """One update of every parameter with a gradient; returns the closure's loss."""
        loss = self._evaluate(closure)
        with no_grad():
            for group in self.param_groups:
                momentum, centered = group["momentum"], group["centered"]
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    state = self._state(p, group)
                    self._advance(p, state)
                    rmsprop_step_(
                        p, p.grad, state["square_avg"],
                        state["grad_avg"] if centered else None,
                        state["momentum_buffer"] if momentum > 0 else None,
                        lr=group["lr"], alpha=group["alpha"], eps=group["eps"],
                        weight_decay=group["weight_decay"], momentum=momentum,
                        centered=centered, maximize=group["maximize"])
        return loss


# ---- Adam / AdamW --------------------------------------------------------------------------
class Adam(_FirstOrder):
    """Adam, with AMSGrad and (decoupled_weight_decay=True) AdamW's decay (torch.optim.Adam).

    >>> import tensorgrad as tg
    >>> w = tg.tensor([1.0, -1.0], requires_grad=True)
    >>> opt = tg.optim.Adam([w], lr=0.1)
    >>> (w * w).sum().backward(); _ = opt.step()
    >>> [round(v, 4) for v in w.tolist()], opt.state[w]["step"].item()
    ([0.9, -0.9], 1.0)
    """

    _tensor_state = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, fused=None, decoupled_weight_decay=False):
        name = type(self).__name__
        _check_lr(name, lr)
        _check(name, eps >= 0.0, f"Invalid epsilon value: {eps}")
        for i, beta in enumerate(betas):
            _check(name, 0.0 <= beta < 1.0, f"Invalid beta parameter at index {i}: {beta}")
        _check(name, weight_decay >= 0.0, f"Invalid weight_decay value: {weight_decay}")
        _check_flags(name, foreach, fused, capturable, differentiable)
        super().__init__(params, dict(
            lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
            maximize=maximize, foreach=foreach, capturable=capturable,
            differentiable=differentiable, fused=fused,
            decoupled_weight_decay=decoupled_weight_decay))

    def _state(self, p, amsgrad):
        state = self.state[p]
        if not state:
            state["step"] = self._new_step(p)
            state["exp_avg"] = zeros_like(p)
            state["exp_avg_sq"] = zeros_like(p)
        if amsgrad and "max_exp_avg_sq" not in state:
            state["max_exp_avg_sq"] = zeros_like(p)
        return state

    def step(self, closure=None):
        """One update of every parameter with a gradient; returns the closure's loss."""
        loss = self._evaluate(closure)
        with no_grad():
            for group in self.param_groups:
                beta1, beta2 = group["betas"]
                amsgrad = group["amsgrad"]
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    state = self._state(p, amsgrad)
                    adam_step_(p, p.grad, state["exp_avg"], state["exp_avg_sq"],
                               state["max_exp_avg_sq"] if amsgrad else None,
                               step=self._advance(p, state), lr=group["lr"], beta1=beta1,
                               beta2=beta2, eps=group["eps"], weight_decay=group["weight_decay"],
                               amsgrad=amsgrad, maximize=group["maximize"],
                               decoupled=group["decoupled_weight_decay"])
        return loss


class AdamW(Adam):
    """Adam with decoupled weight decay, weight_decay=1e-2 by default (torch.optim.AdamW).

    >>> import tensorgrad as tg
    >>> w = tg.tensor([1.0], requires_grad=True)
    >>> opt = tg.optim.AdamW([w], lr=0.1)
    >>> (w * w).sum().backward(); _ = opt.step()
    >>> round(w.item(), 4)  # 1 * (1 - 0.1 * 0.01) - 0.1
    0.899
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False, foreach=None, capturable=False,
                 differentiable=False, fused=None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach,
                         maximize=maximize, capturable=capturable,
                         differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)
