"""`Optimizer`: param_groups, per-parameter state, zero_grad, state_dict (torch.optim's).

`opt.state[p]` is keyed by the parameter, as in PyTorch; `state_dict()` keys it by the
parameter's position across param_groups, so it serializes and loads into a fresh model.
Updates run under no_grad through tensorgrad ops only: nothing here imports an array
library or reads a raw array (habit 10 of shared/STYLE.md).
"""

from collections import defaultdict
from copy import deepcopy

from ..autograd.graph import enable_grad
from ..errors import DTypeError, GraphError, ShapeError
from ..nn.utils import _zero_grads
from ..tensor import Tensor


class _Required:
    def __repr__(self):
        return "<required parameter>"


required = _Required()  # a hyper-parameter a subclass requires (SGD's lr in old PyTorch)


class Optimizer:
    """Base class: subclasses define `step(closure=None)` over `self.param_groups`.

    >>> import tensorgrad as tg
    >>> w = tg.zeros(3, requires_grad=True)
    >>> opt = tg.optim.SGD([w], lr=0.1)
    >>> (w - 1).square().sum().backward(); opt.step()
    >>> [round(v, 2) for v in w.tolist()]
    [0.2, 0.2, 0.2]
    """

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.state = defaultdict(dict)
        self.param_groups = []
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of "
                            f"Tensors or dicts, but got {type(params).__name__}\n  hint: pass "
                            "[tensor] or model.parameters()")
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__}: optimizer got an empty parameter list\n"
                             "  hint: did model.parameters() run out (a generator used twice)?")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join(lines) + "\n)"

    # -- groups ----------------------------------------------------------------------------
    def add_param_group(self, param_group):
        """Add a group of parameters with its own hyper-parameters (defaults fill the rest)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, got {type(param_group).__name__}")
        group = dict(param_group)
        params = group["params"]
        group["params"] = [params] if isinstance(params, Tensor) else list(params)
        for i, p in enumerate(group["params"]):
            _check_param(self, p, i)
        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError(f"{type(self).__name__}: parameter group didn't specify a "
                                 f"value of required optimization parameter {name}")
            group.setdefault(name, default)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in group["params"]):
            raise ValueError(f"{type(self).__name__}: some parameters appear in more than one "
                             "parameter group")
        self.param_groups.append(group)

    def _params_with_grad(self, group):
        return [p for p in group["params"] if p.grad is not None]

    # -- gradients ---------------------------------------------------------------------------
    def zero_grad(self, set_to_none=True):
        """Reset every parameter's gradient (to None by default, as PyTorch 2 does)."""
        _zero_grads((p for g in self.param_groups for p in g["params"]), set_to_none)

    def step(self, closure=None):
        raise NotImplementedError(f"{type(self).__name__} does not define step()")

    def _evaluate(self, closure):
        """Run `closure` under enable_grad (as PyTorch's step does) and check its loss.

        The loss may be None, a Python number or a one-element Tensor; anything else (a
        vector of residuals, a tuple) raises here rather than deep inside a step.
        """
        if closure is None:
            return None
        with enable_grad():
            loss = closure()
        name = type(self).__name__
        if isinstance(loss, Tensor):
            if loss.numel() != 1:
                raise ShapeError(f"{name}.step: the closure returned a tensor of shape "
                                 f"{tuple(loss.shape)}; expected the loss, a scalar\n  hint: "
                                 "reduce it (loss.sum() or loss.mean()); for least squares "
                                 "on a residual vector use LevenbergMarquardt")
        elif loss is not None and not isinstance(loss, (int, float)):
            raise TypeError(f"{name}.step: the closure returned a {type(loss).__name__}; "
                            "expected the loss (a scalar Tensor or a number) or None")
        return loss

    # -- state dict --------------------------------------------------------------------------
    def state_dict(self):
        """{"state": {index: {...}}, "param_groups": [{..., "params": [index, ...]}]}."""
        index = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = []
            for p in group["params"]:
                index.setdefault(id(p), len(index))
                packed["params"].append(index[id(p)])
            groups.append(packed)
        state = {index[id(p)]: dict(s) for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore hyper-parameters and state saved by `state_dict()` of the same layout."""
        groups = state_dict.get("param_groups")
        if groups is None or "state" not in state_dict:
            raise ValueError(f"{type(self).__name__}.load_state_dict: expected a dict with "
                             "'state' and 'param_groups' (what Optimizer.state_dict() returns)")
        if len(groups) != len(self.param_groups):
            raise ValueError(f"{type(self).__name__}.load_state_dict: the saved state has "
                             f"{len(groups)} parameter group(s), this optimizer has "
                             f"{len(self.param_groups)}")
        for i, (saved, own) in enumerate(zip(groups, self.param_groups)):
            missing = sorted(set(self.defaults) - set(saved))
            if missing:
                raise ValueError(f"{type(self).__name__}.load_state_dict: saved group {i} "
                                 f"lacks the hyper-parameter(s) {missing} this optimizer "
                                 f"uses; it has {sorted(k for k in saved if k != 'params')}"
                                 "\n  hint: was it saved by a different optimizer?")
            if len(saved["params"]) != len(own["params"]):
                raise ValueError(f"{type(self).__name__}.load_state_dict: group {i} has "
                                 f"{len(saved['params'])} parameter(s) in the saved state and "
                                 f"{len(own['params'])} here\n  hint: build the optimizer "
                                 "over the same model before loading")
        by_index = {}
        for saved, own in zip(groups, self.param_groups):
            by_index.update(zip(saved["params"], own["params"]))
        self.state = defaultdict(dict)
        for idx, s in state_dict["state"].items():
            p = by_index.get(int(idx))
            if p is None:
                raise ValueError(f"{type(self).__name__}.load_state_dict: state for parameter "
                                 f"{idx}, which no group holds")
            self.state[p] = {k: _state_value(v, p, k) for k, v in s.items()}
        for saved, own in zip(groups, self.param_groups):
            for k, v in saved.items():
                if k != "params":
                    own[k] = deepcopy(v)


def _check_param(opt, p, i):
    name = type(opt).__name__
    if not isinstance(p, Tensor):
        raise TypeError(f"{name}: parameter {i} is a {type(p).__name__}, not a Tensor")
    if p.grad_fn is not None:
        raise GraphError(f"{name}: can't optimize a non-leaf Tensor (parameter {i}, made by "
                         f"{p.grad_fn.name()})\n  hint: optimize the leaf it was computed from, "
                         "or .detach().requires_grad_() a copy")
    if not p.dtype.is_floating_point:  # before requires_grad: an int tensor can't require it
        raise DTypeError(f"{name}: parameter {i} has dtype {p.dtype}; only floating-point "
                         "tensors can be optimized")
    if not p.requires_grad:
        raise GraphError(f"{name}: parameter {i} (shape {tuple(p.shape)}) does not require grad"
                         ", so it would never be updated\n  hint: create it with "
                         "requires_grad=True, or leave it out of the optimizer")


def _state_value(v, p, key):
    # Tensors follow their parameter's device, and floating ones its dtype ("step" stays).
    if not isinstance(v, Tensor):
        return deepcopy(v)
    if key == "step" or not v.dtype.is_floating_point:
        return v.to(p.device).clone()
    return v.to(p.device).to(p.dtype).clone()


def check_lr(opt_name, lr):
    """Refuse a negative (or non-numeric) learning rate with PyTorch's message."""
    if isinstance(lr, Tensor):
        return lr
    if not 0.0 <= lr:
        raise ValueError(f"{opt_name}: invalid learning rate: {lr} (must be >= 0)")
    return lr
