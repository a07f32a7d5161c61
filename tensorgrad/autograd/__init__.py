"""tensorgrad.autograd: the engine's public face (torch.autograd's names).

`grad`, `backward`, `no_grad`/`enable_grad`/`set_grad_enabled`/`is_grad_enabled`,
`inference_mode`/`is_inference_mode_enabled`,
`Function` (custom ops), `gradcheck`/`gradgradcheck`, `detect_anomaly`.
"""

from .engine import _root_grad, run_backward
from .graph import (
    Node,
    enable_grad,
    inference_mode,
    is_grad_enabled,
    is_inference_mode_enabled,
    no_grad,
    set_grad_enabled,
)


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    """Accumulate the gradients of `tensors` into the leaves' `.grad`."""
    from .engine import backward as _backward
    _backward(tensors, grad_tensors, retain_graph, create_graph, inputs=inputs)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=False, materialize_grads=False):
    """The gradients of `outputs` with respect to `inputs`, returned (not accumulated).

    >>> import tensorgrad as tg
    >>> x = tg.tensor(3.0, requires_grad=True)
    >>> (g,) = tg.autograd.grad(x ** 3, x, create_graph=True)
    >>> g.item(), tg.autograd.grad(g, x)[0].item()
    (27.0, 18.0)
    """
    from ..tensor import Tensor
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    single = isinstance(inputs, Tensor)
    inputs = [inputs] if single else list(inputs)
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs]
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor) or not t.requires_grad:
            from ..errors import GraphError
            raise GraphError(f"autograd.grad: input {i} does not require grad\n  hint: create "
                             "it with requires_grad=True (or call .requires_grad_())")
    roots = [_root_grad(o, g, "autograd.grad") for o, g in zip(outputs, grad_outputs, strict=True)]
    if retain_graph is None:
        retain_graph = create_graph
    found = run_backward(outputs, roots, retain_graph, create_graph, targets=inputs)
    result = []
    for i, (t, g) in enumerate(zip(inputs, found, strict=True)):
        if g is None:
            if materialize_grads:
                from ..creation import zeros_like
                g = zeros_like(t)
            elif not allow_unused:
                from ..errors import GraphError
                raise GraphError(
                    f"autograd.grad: input {i} (shape {tuple(t.shape)}) was not used to compute "
                    "the outputs\n  hint: pass allow_unused=True to get None for it")
        elif not create_graph:
            g = g.detach()
        result.append(g)
    return tuple(result)


__all__ = ["backward", "grad", "no_grad", "enable_grad", "set_grad_enabled",
           "is_grad_enabled", "inference_mode", "is_inference_mode_enabled", "Node"]

from .function import Function, FunctionCtx  # noqa: E402
from .gradcheck import gradcheck, gradgradcheck  # noqa: E402

__all__ += ["Function", "FunctionCtx", "gradcheck", "gradgradcheck"]
from . import functional  # noqa: E402, F401 - tg.autograd.functional
from .anomaly import (  # noqa: E402 - installs the anomaly checks into graph's seam
    detect_anomaly,
    is_anomaly_check_nan_enabled,
    is_anomaly_enabled,
    set_detect_anomaly,
)

__all__ += ["detect_anomaly", "set_detect_anomaly", "is_anomaly_enabled",
            "is_anomaly_check_nan_enabled"]
