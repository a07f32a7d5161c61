"""Gradient clipping and parameter flattening, with `torch.nn.utils`' names and semantics.

Speaks only Tensor, as all of tensorgrad.nn: no array library is imported here. The only
host read is the total norm's finiteness check that `error_if_nonfinite=True` asks for.

>>> import tensorgrad as tg
>>> p = tg.nn.Parameter(tg.zeros(2))
>>> p.grad = tg.tensor([3.0, 4.0])
>>> clip_grad_norm_(p, max_norm=1.0).item(), [round(g, 4) for g in p.grad.tolist()]
(5.0, [0.6, 0.8])
"""

import math

from .. import creation
from ..autograd.graph import no_grad
from ..errors import ShapeError
from ..ops.join import cat, stack
from ..tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_", "clip_grads_with_norm_", "get_total_norm",
           "parameters_to_vector", "vector_to_parameters"]


def _as_list(tensors):
    return [tensors] if isinstance(tensors, Tensor) else list(tensors)


def _grads(parameters):
    return [p.grad for p in _as_list(parameters) if p.grad is not None]


# ---- clipping -------------------------------------------------------------------------------
def get_total_norm(tensors, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """The `norm_type`-norm of all `tensors` together, as if concatenated into one vector.

    Returns a 0-d Tensor on the first tensor's device (0.0 when there are none).
    `foreach` is accepted for PyTorch compatibility; it changes nothing here.
    """
    tensors = _as_list(tensors)
    norm_type = float(norm_type)
    if not tensors:
        return creation.tensor(0.0)
    with no_grad():
        first = tensors[0].device
        # stack promotes mixed dtypes, as torch.stack does.
        total = stack([t.norm(norm_type).to(first) for t in tensors]).norm(norm_type)
    if error_if_nonfinite and not math.isfinite(total.item()):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is "
            f"non-finite ({total.item()}), so it cannot be clipped.\n  hint: to disable this "
            "error and scale the gradients by the non-finite norm anyway, set "
            "`error_if_nonfinite=False`")
    return total


def clip_grads_with_norm_(parameters, max_norm, total_norm, foreach=None):
    """Scale the gradients of `parameters` in place by min(1, max_norm / (total_norm + 1e-6))."""
    grads = _grads(parameters)
    if not grads:
        return
    with no_grad():
        # The epsilon keeps a zero total norm from dividing by zero, as in PyTorch.
        coef = (float(max_norm) / (total_norm + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(coef.to(g.device))


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False,
                    foreach=None):
    """Rescale the gradients of `parameters` in place so that their total `norm_type`-norm
    (computed over all gradients together) is at most `max_norm`. Returns the total norm
    before clipping, as a 0-d Tensor.

    With `error_if_nonfinite=True` a NaN or infinite total norm raises RuntimeError.
    """
    params = _as_list(parameters)
    total = get_total_norm(_grads(params), norm_type, error_if_nonfinite, foreach)
    clip_grads_with_norm_(params, max_norm, total, foreach)
    return total


def clip_grad_value_(parameters, clip_value, foreach=None):
    """Clamp every gradient of `parameters` in place to [-clip_value, clip_value]."""
    clip_value = float(clip_value)
    with no_grad():
        for g in _grads(parameters):
            g.clamp_(min=-clip_value, max=clip_value)


# ---- flattening -----------------------------------------------------------------------------
def parameters_to_vector(parameters):
    """One 1-D Tensor holding every parameter, flattened and concatenated in order.

    Differentiable, as in PyTorch: a gradient of the vector flows back to the parameters.
    """
    params = _as_list(parameters)
    if not params:
        raise ValueError("parameters_to_vector: got no parameters")
    return cat([p.reshape(-1) for p in params])


def vector_to_parameters(vec, parameters):
    """Copy consecutive slices of `vec` into `parameters`, in place and in order."""
    if not isinstance(vec, Tensor):
        raise TypeError(f"vector_to_parameters: expected a Tensor, but got "
                        f"{type(vec).__name__}")
    params = _as_list(parameters)
    total = sum(p.numel() for p in params)
    if vec.numel() != total:
        raise ShapeError(
            f"vector_to_parameters: the vector has {vec.numel()} elements (shape "
            f"{tuple(vec.shape)}) but the parameters hold {total} "
            f"(shapes {[tuple(p.shape) for p in params]})\n  hint: build the vector with "
            "parameters_to_vector over the same parameters")
    flat = vec.reshape(-1)
    offset = 0
    with no_grad():
        for p in params:
            n = p.numel()
            p.copy_(flat[offset:offset + n].reshape(p.shape))
            offset += n


def _zero_grads(params, set_to_none=True):
    """What Module.zero_grad and Optimizer.zero_grad share: None, or zeros in place."""
    for p in params:
        if p.grad is None:
            continue
        if set_to_none:
            p.grad = None
        else:
            with no_grad():
                p.grad = p.grad.detach()
                p.grad.zero_()
