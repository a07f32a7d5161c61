"""gradcheck / gradgradcheck: compare analytical gradients with finite differences.

As PyTorch's: `gradcheck(func, inputs, eps=1e-6, atol=1e-5, rtol=1e-3)` returns True, or
raises GraphError naming the worst element of the Jacobian (which input, which output
element, both values). Inputs that require grad must be float64: finite differences in
float32 are too coarse to check anything. Small inputs get the full Jacobian; for large ones
(`fast_mode=True`, or more than `max_full` Jacobian entries) the check runs along random
directions u·J·v instead.
"""

import numpy as np

from ..errors import DTypeError, GraphError


def _tensor_inputs(inputs):
    from ..tensor import Tensor
    if isinstance(inputs, Tensor):
        inputs = (inputs,)
    inputs = tuple(inputs)
    diff = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    for i in diff:
        if inputs[i].dtype.name != "float64":
            raise DTypeError(f"gradcheck: input {i} is {inputs[i].dtype}; finite differences "
                             "need float64\n  hint: pass inputs made with dtype=tg.float64")
    return inputs, diff


def _outputs(func, inputs):
    from ..tensor import Tensor
    out = func(*inputs)
    outs = (out,) if isinstance(out, Tensor) else tuple(out)
    return tuple(o for o in outs if isinstance(o, Tensor) and o.dtype.is_floating_point)


def _flat_numpy(t):
    return t._backend.to_numpy(t._array).astype(np.float64).reshape(-1)


def _numerical_jacobian(func, inputs, i, eps):
    """d outputs / d inputs[i] by central differences: a list (per output) of (n_out, n_in)."""
    x = inputs[i]
    host = x._backend.to_numpy(x._array).copy()
    flat = host.reshape(-1)
    cols = []
    # Grad mode stays on: `func` may itself differentiate (gradgradcheck's first_order).
    for k in range(flat.size):
        orig = flat[k]
        flat[k] = orig + eps
        x._array[...] = x._backend.asarray(host, None, x.device.index)
        plus = [_flat_numpy(o) for o in _outputs(func, inputs)]
        flat[k] = orig - eps
        x._array[...] = x._backend.asarray(host, None, x.device.index)
        minus = [_flat_numpy(o) for o in _outputs(func, inputs)]
        flat[k] = orig
        x._array[...] = x._backend.asarray(host, None, x.device.index)
        cols.append([(p - m) / (2 * eps) for p, m in zip(plus, minus)])
    return [np.stack([c[j] for c in cols], axis=1) if cols else None
            for j in range(len(cols[0]) if cols else 0)]


def _analytical_jacobian(outputs, inputs, diff):
    """Rows of d outputs / d inputs, one backward per output element."""
    from ..creation import zeros_like
    from . import grad
    jac = {(j, i): np.zeros((o.numel(), inputs[i].numel()))
           for j, o in enumerate(outputs) for i in diff}
    for j, o in enumerate(outputs):
        if not o.requires_grad:
            continue
        for r in range(o.numel()):
            u = zeros_like(o)
            u._array.reshape(-1)[r] = 1
            grads = grad(o, [inputs[i] for i in diff], u, retain_graph=True, allow_unused=True)
            for i, g in zip(diff, grads):
                if g is not None:
                    jac[j, i][r] = _flat_numpy(g)
    return jac


def gradcheck(func, inputs, *, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True,
              fast_mode=False, max_full=4096, seed=0):
    """True if `func`'s analytical gradients match central finite differences.

    >>> import tensorgrad as tg
    >>> x = tg.randn(3, dtype=tg.float64, requires_grad=True)
    >>> tg.autograd.gradcheck(lambda x: (x.sin() * x).sum(), (x,))
    True
    """
    inputs, diff = _tensor_inputs(inputs)
    outputs = _outputs(func, inputs)
    n_jac = sum(o.numel() for o in outputs) * sum(inputs[i].numel() for i in diff)
    if fast_mode or n_jac > max_full:
        return _check_directions(func, inputs, diff, outputs, eps, atol, rtol,
                                 raise_exception, seed)
    analytical = _analytical_jacobian(outputs, inputs, diff)
    for i in diff:
        numerical = _numerical_jacobian(func, inputs, i, eps)
        for j, num in enumerate(numerical):
            ana = analytical[j, i]
            err = np.abs(ana - num) - (atol + rtol * np.abs(num))
            if err.size and (np.isnan(err).any() or err.max() > 0):  # NaN never passes
                r, c = np.unravel_index(np.argmax(np.nan_to_num(err, nan=np.inf)), err.shape)
                if not raise_exception:
                    return False
                raise GraphError(
                    f"gradcheck: Jacobian mismatch for output {j} with respect to input {i}\n"
                    f"  worst element: d out{j}[{r}] / d in{i}[{c}]: analytical "
                    f"{float(ana[r, c])!r}, numerical {float(num[r, c])!r} "
                    f"(atol={atol}, rtol={rtol})\n"
                    f"  analytical:\n{ana}\n  numerical:\n{num}")
    return True


def _check_directions(func, inputs, diff, outputs, eps, atol, rtol, raise_exception, seed):
    # u·J·v from both sides, for a few random u (output cotangents) and v (input directions).
    from ..tensor import Tensor
    from . import grad
    rng = np.random.default_rng(seed)
    for trial in range(3):
        us = [rng.standard_normal(o.shape) for o in outputs]
        vs = {i: rng.standard_normal(inputs[i].shape) for i in diff}
        u_t = [Tensor._wrap(o._backend.asarray(u, o._array.dtype, o.device.index), o.device)
               for o, u in zip(outputs, us)]
        used = [(o, u) for o, u in zip(outputs, u_t) if o.requires_grad]
        grads = grad([o for o, _ in used], [inputs[i] for i in diff], [u for _, u in used],
                     retain_graph=True, allow_unused=True)
        ana = sum(float((_flat_numpy(g) * vs[i].reshape(-1)).sum())
                  for i, g in zip(diff, grads) if g is not None)
        saved = {i: inputs[i]._array.copy() for i in diff}
        vals = []
        # grad mode stays on, as in _numerical_jacobian
        for sign in (1, -1):
            for i in diff:
                step = inputs[i]._backend.asarray(sign * eps * vs[i], saved[i].dtype,
                                                  inputs[i].device.index)
                inputs[i]._array[...] = saved[i] + step
            vals.append(sum(float((_flat_numpy(o) * u.reshape(-1)).sum())
                            for o, u in zip(_outputs(func, inputs), us)))
        for i in diff:
            inputs[i]._array[...] = saved[i]
        num = (vals[0] - vals[1]) / (2 * eps)
        if not abs(ana - num) <= atol + rtol * abs(num):  # also fails on NaN
            if not raise_exception:
                return False
            raise GraphError(f"gradcheck (random directions, trial {trial}): u·J·v analytical "
                             f"{ana!r} vs numerical {num!r} (atol={atol}, rtol={rtol})")
    return True


def gradgradcheck(func, inputs, grad_outputs=None, *, eps=1e-6, atol=1e-5, rtol=1e-3,
                  raise_exception=True, fast_mode=False, max_full=4096, seed=0):
    """gradcheck of the gradient: checks second derivatives (VJPs recorded under create_graph).

    >>> import tensorgrad as tg
    >>> x = tg.randn(3, dtype=tg.float64, requires_grad=True)
    >>> tg.autograd.gradgradcheck(lambda x: (x.exp() * x).sum(), (x,))
    True
    """
    from ..creation import tensor
    from . import grad
    inputs, diff = _tensor_inputs(inputs)
    outputs = _outputs(func, inputs)
    if grad_outputs is None:
        rng = np.random.default_rng(seed)
        grad_outputs = tuple(
            tensor(rng.standard_normal(o.shape), dtype="float64", device=o.device,
                   requires_grad=True) for o in outputs)
    n_in = len(inputs)

    def first_order(*args):
        xs, us = args[:n_in], args[n_in:]
        outs = [o for o in _outputs(func, xs)]
        pairs = [(o, u) for o, u in zip(outs, us) if o.requires_grad]
        return grad([o for o, _ in pairs], [xs[i] for i in diff], [u for _, u in pairs],
                    create_graph=True, allow_unused=True, materialize_grads=True)

    return gradcheck(first_order, tuple(inputs) + tuple(grad_outputs), eps=eps, atol=atol,
                     rtol=rtol, raise_exception=raise_exception, fast_mode=fast_mode,
                     max_full=max_full, seed=seed)
