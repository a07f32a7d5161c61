"""tg.autograd.functional: the eager vjp, jvp, vhp, hvp, jacobian and hessian of PyTorch.

Each takes `func` and `inputs` (a Tensor or a tuple of Tensors), runs `func` once and returns
what `torch.autograd.functional` returns, shaped the same way: a tuple where `inputs` (or
func's output) was a tuple, a Tensor where it was a Tensor. Results are detached unless
`create_graph=True`, in which case they can be differentiated again (w.r.t. the inputs, and
w.r.t. `v` where `v` requires grad).

Forward-mode products use the double-backward trick: a VJP `u -> J^T u` is linear in `u`, so
the VJP of that VJP w.r.t. a dummy `u`, along `v`, is `J v`. Everything is written with Tensor
ops and `autograd.grad`; this module touches no array and imports no array library.
"""

from ..creation import eye, zeros, zeros_like
from ..errors import GraphError, ShapeError
from ..tensor import Tensor
from . import grad as _grad
from .graph import enable_grad, is_grad_enabled, set_grad_enabled

__all__ = ["vjp", "jvp", "vhp", "hvp", "jacobian", "hessian"]


# ---- tuples in, tuples out -----------------------------------------------------------------
def _as_tuple(x, arg_name, fn_name):
    """(was it a tuple, the tuple): a lone Tensor becomes a 1-tuple; anything else raises."""
    is_tuple = isinstance(x, (tuple, list))
    items = tuple(x) if is_tuple else (x,)
    for i, el in enumerate(items):
        if not isinstance(el, Tensor):
            where = f"the entry at index {i}" if is_tuple else f"the given {arg_name}"
            raise TypeError(f"autograd.functional.{fn_name}: the {arg_name} must be a Tensor or "
                            f"a tuple of Tensors, but {where} has type {type(el).__name__}\n"
                            "  hint: wrap numbers with tg.tensor(...)")
    return is_tuple, items


def _tuple_postprocess(res, to_unpack):
    """Undo `_as_tuple`: unwrap one (bool) or two (a pair of bools) levels of 1-tuples."""
    if isinstance(to_unpack, tuple):
        if not to_unpack[1]:
            res = tuple(el[0] for el in res)
        if not to_unpack[0]:
            res = res[0]
    elif not to_unpack:
        res = res[0]
    return res


def _grad_preprocess(inputs, create_graph, need_graph):
    """Fresh tensor objects for `inputs`, so that func's use of them is told apart from the
    same tensors captured by closure. With create_graph a differentiable identity keeps them
    connected to the caller's graph: `contiguous` makes a new object sharing storage with an
    identity VJP (`view_as` to the same shape would hand back the tensor itself); a 0-d
    tensor is cloned, as `contiguous` (NumPy's ascontiguousarray) would make it 1-d."""
    return tuple((x.contiguous() if x.ndim else x.clone()) if create_graph and x.requires_grad
                 else x.detach().requires_grad_(need_graph) for x in inputs)


def _grad_postprocess(items, create_graph):
    if isinstance(items[0], Tensor):
        return items if create_graph else tuple(x.detach() for x in items)
    return tuple(_grad_postprocess(x, create_graph) for x in items)


def _validate_v(v, other, is_other_tuple, fn_name):
    if len(other) != len(v):
        what = (f"a tuple of {len(other)} Tensors" if is_other_tuple else "a single Tensor")
        raise ShapeError(f"autograd.functional.{fn_name}: v has {len(v)} entries but should be "
                         f"{what}\n  hint: give v the structure of the tensors it multiplies")
    for i, (a, b) in enumerate(zip(v, other)):
        if a.shape != b.shape:
            raise ShapeError(f"autograd.functional.{fn_name}: entry {i} of v has shape "
                             f"{tuple(a.shape)} but should have shape {tuple(b.shape)}\n  hint: "
                             "v must match the shape of what it multiplies")


def _default_v(items, fn_name, what):
    if len(items) != 1 or items[0].numel() != 1:
        raise ShapeError(f"autograd.functional.{fn_name}: v can only be None if {what} is a "
                         f"single Tensor with a single element; got shapes "
                         f"{[tuple(t.shape) for t in items]}\n  hint: pass v explicitly")


# ---- strict mode and the missing gradients -------------------------------------------------
_STRICT = {
    "outputs": "output {i} of the user-provided function does not require grad: it must be "
               "computed in a differentiable way from the inputs",
    "grad_inputs": "the gradient w.r.t. input {i} is independent of the inputs",
    "jacobian": "the jacobian w.r.t. input {i} is independent of the input (is the function "
                "linear?)",
    "back": "the output of the user-provided function is independent of input {i}",
    "back_trick": "the gradient w.r.t. the inputs is independent of entry {i} of the dummy "
                  "grad_outputs of the double-backward trick",
    "double_back": "the jacobian of the user-provided function is independent of input {i}",
    "double_back_trick": "the hessian of the user-provided function is independent of entry "
                         "{i} of the dummy grad_jacobian of the double-backward trick",
}


def _strict_error(fn_name, key, i):
    return GraphError(f"autograd.functional.{fn_name}: {_STRICT[key].format(i=i)}; this is not "
                      "allowed with strict=True\n  hint: pass strict=False to get zeros there")


def _check_requires_grad(items, key, strict, fn_name):
    if strict:
        for i, t in enumerate(items):
            if t is None or not t.requires_grad:
                raise _strict_error(fn_name, key, i)


def _fill_in_zeros(grads, refs, strict, create_graph, stage, fn_name):
    """None gradients become zeros shaped like `refs` (or an error with strict=True)."""
    res = []
    for i, g in enumerate(grads):
        if g is None:
            if strict:
                raise _strict_error(fn_name, stage, i)
            g = zeros_like(refs[i])
        elif strict and create_graph and not g.requires_grad:
            raise _strict_error(fn_name, "double_back" if "double" in stage else "jacobian", i)
        res.append(g)
    return tuple(res)


def _autograd_grad(outputs, inputs, grad_outputs=None, create_graph=False, retain_graph=None):
    """autograd.grad over the outputs that require grad; None for unused inputs (or all)."""
    if grad_outputs is None:
        grad_outputs = (None,) * len(outputs)
    pairs = [(o, g) for o, g in zip(outputs, grad_outputs, strict=True)
             if o is not None and o.requires_grad]
    if not pairs:
        return (None,) * len(inputs)
    return _grad([o for o, _ in pairs], list(inputs), [g for _, g in pairs],
                 retain_graph=retain_graph, create_graph=create_graph, allow_unused=True)


# ---- vjp, jvp ------------------------------------------------------------------------------
def vjp(func, inputs, v=None, create_graph=False, strict=False):
    """`(func(inputs), vᵀ J)`: the vector-Jacobian product, shaped like `inputs`.

    >>> import tensorgrad as tg
    >>> out, g = tg.autograd.functional.vjp(lambda x: x ** 2, tg.tensor([1.0, 3.0]),
    ...                                     tg.tensor([1.0, 1.0]))
    >>> out.tolist(), g.tolist()
    ([1.0, 9.0], [2.0, 6.0])
    """
    with enable_grad():
        is_inputs_tuple, inputs = _as_tuple(inputs, "inputs", "vjp")
        inputs = _grad_preprocess(inputs, create_graph, need_graph=True)
        is_outputs_tuple, outputs = _as_tuple(func(*inputs), "outputs of func", "vjp")
        _check_requires_grad(outputs, "outputs", strict, "vjp")
        if v is not None:
            v = _grad_preprocess(_as_tuple(v, "v", "vjp")[1], create_graph, need_graph=False)
            _validate_v(v, outputs, is_outputs_tuple, "vjp")
        else:
            _default_v(outputs, "vjp", "func's output")
    with set_grad_enabled(True if create_graph else is_grad_enabled()):
        res = _autograd_grad(outputs, inputs, v, create_graph=create_graph)
        res = _fill_in_zeros(res, inputs, strict, create_graph, "back", "vjp")
    return (_tuple_postprocess(_grad_postprocess(outputs, create_graph), is_outputs_tuple),
            _tuple_postprocess(_grad_postprocess(res, create_graph), is_inputs_tuple))


def jvp(func, inputs, v=None, create_graph=False, strict=False):
    """`(func(inputs), J v)`: the Jacobian-vector product, shaped like func's output.

    >>> import tensorgrad as tg
    >>> out, t = tg.autograd.functional.jvp(lambda x: x ** 2, tg.tensor([1.0, 3.0]),
    ...                                     tg.tensor([1.0, 0.5]))
    >>> t.tolist()
    [2.0, 3.0]
    """
    with enable_grad():
        is_inputs_tuple, inputs = _as_tuple(inputs, "inputs", "jvp")
        inputs = _grad_preprocess(inputs, create_graph, need_graph=True)
        if v is not None:
            v = _grad_preprocess(_as_tuple(v, "v", "jvp")[1], create_graph, need_graph=False)
            _validate_v(v, inputs, is_inputs_tuple, "jvp")
        else:
            _default_v(inputs, "jvp", "the input")
        is_outputs_tuple, outputs = _as_tuple(func(*inputs), "outputs of func", "jvp")
        _check_requires_grad(outputs, "outputs", strict, "jvp")
        dummies = _dummies(outputs)
        grad_inputs = _autograd_grad(outputs, inputs, dummies, create_graph=True)
        _check_requires_grad(grad_inputs, "grad_inputs", strict, "jvp")
    with set_grad_enabled(True if create_graph else is_grad_enabled()):
        res = _autograd_grad(grad_inputs, dummies, v, create_graph=create_graph)
        res = _fill_in_zeros(res, outputs, strict, create_graph, "back_trick", "jvp")
    return (_tuple_postprocess(_grad_postprocess(outputs, create_graph), is_outputs_tuple),
            _tuple_postprocess(_grad_postprocess(res, create_graph), is_outputs_tuple))


def _dummies(refs):
    """The dummy cotangents of the double-backward trick (their value never matters)."""
    return tuple(zeros_like(r, requires_grad=r.is_floating_point()) for r in refs)


# ---- vhp, hvp ------------------------------------------------------------------------------
def _scalar_output(func, inputs, strict, fn_name):
    is_outputs_tuple, outputs = _as_tuple(func(*inputs), "outputs of func", fn_name)
    _check_requires_grad(outputs, "outputs", strict, fn_name)
    if is_outputs_tuple or outputs[0].numel() != 1:
        shapes = [tuple(o.shape) for o in outputs]
        raise ShapeError(f"autograd.functional.{fn_name}: func should return a single Tensor "
                         f"with a single element; got {'a tuple of ' if is_outputs_tuple else ''}"
                         f"shape(s) {shapes}\n  hint: reduce the output to a scalar (.sum())")
    return outputs


def _second_order_setup(func, inputs, v, create_graph, strict, fn_name):
    is_inputs_tuple, inputs = _as_tuple(inputs, "inputs", fn_name)
    inputs = _grad_preprocess(inputs, create_graph, need_graph=True)
    if v is not None:
        v = _grad_preprocess(_as_tuple(v, "v", fn_name)[1], create_graph, need_graph=False)
        _validate_v(v, inputs, is_inputs_tuple, fn_name)
    else:
        _default_v(inputs, fn_name, "the input")
    outputs = _scalar_output(func, inputs, strict, fn_name)
    jac = _autograd_grad(outputs, inputs, create_graph=True)
    _check_requires_grad(jac, "jacobian", strict, fn_name)
    return is_inputs_tuple, inputs, v, outputs, jac


def vhp(func, inputs, v=None, create_graph=False, strict=False):
    """`(func(inputs), vᵀ H)` for a scalar `func`, shaped like `inputs`.

    >>> import tensorgrad as tg
    >>> out, r = tg.autograd.functional.vhp(lambda x: (x ** 3).sum(), tg.tensor([1.0, 2.0]),
    ...                                     tg.tensor([1.0, 1.0]))
    >>> out.item(), r.tolist()
    (9.0, [6.0, 12.0])
    """
    with enable_grad():
        is_inputs_tuple, inputs, v, outputs, jac = _second_order_setup(
            func, inputs, v, create_graph, strict, "vhp")
    with set_grad_enabled(True if create_graph else is_grad_enabled()):
        res = _autograd_grad(jac, inputs, v, create_graph=create_graph)
        res = _fill_in_zeros(res, inputs, strict, create_graph, "double_back", "vhp")
    return (_grad_postprocess(outputs, create_graph)[0],
            _tuple_postprocess(_grad_postprocess(res, create_graph), is_inputs_tuple))


def hvp(func, inputs, v=None, create_graph=False, strict=False):
    """`(func(inputs), H v)` for a scalar `func`, shaped like `inputs` (double-backward trick,
    as PyTorch: exact even where H is not symmetric; `vhp` is cheaper where it is).

    >>> import tensorgrad as tg
    >>> out, r = tg.autograd.functional.hvp(lambda x: (x ** 3).sum(), tg.tensor([1.0, 2.0]),
    ...                                     tg.tensor([1.0, 1.0]))
    >>> r.tolist()
    [6.0, 12.0]
    """
    with enable_grad():
        is_inputs_tuple, inputs, v, outputs, jac = _second_order_setup(
            func, inputs, v, create_graph, strict, "hvp")
        grad_jac = _dummies(inputs)
        double_back = _autograd_grad(jac, inputs, grad_jac, create_graph=True)
    with set_grad_enabled(True if create_graph else is_grad_enabled()):
        res = _autograd_grad(double_back, grad_jac, v, create_graph=create_graph)
        res = _fill_in_zeros(res, inputs, strict, create_graph, "double_back_trick", "hvp")
    return (_grad_postprocess(outputs, create_graph)[0],
            _tuple_postprocess(_grad_postprocess(res, create_graph), is_inputs_tuple))


# ---- jacobian, hessian ---------------------------------------------------------------------
def _stack_rows(rows, lead_shape, ref, dim):
    """Stack per-element results (each shaped like `ref`) into lead_shape + ref.shape, or
    ref.shape + lead_shape (dim=-1); an empty list gives zeros."""
    from ..ops import stack  # the ops import this package: look late
    if not rows:
        shape = tuple(lead_shape) + tuple(ref.shape) if dim == 0 else \
            tuple(ref.shape) + tuple(lead_shape)
        return zeros(shape, dtype=ref.dtype, device=ref.device)
    out = stack(rows, dim=0 if dim == 0 else ref.ndim)
    return out.reshape(tuple(lead_shape) + tuple(ref.shape) if dim == 0 else
                       tuple(ref.shape) + tuple(lead_shape))


def _basis(t):
    """The one-hot directions e_j for t's elements, each shaped like t."""
    n = t.numel()
    rows = eye(n, dtype=t.dtype, device=t.device)
    return [rows[j].reshape(t.shape) for j in range(n)]


def _jac_reverse(outputs, inputs, create_graph, strict):
    """jac[i][k] = d outputs[i] / d inputs[k], one VJP per output element (row by row)."""
    jac = []
    for i, out in enumerate(outputs):
        rows = [[] for _ in inputs]
        for e in _basis(out):
            vj = _autograd_grad((out,), inputs, (e,), create_graph=create_graph,
                                retain_graph=True)
            for k, g in enumerate(vj):
                if g is None:
                    if strict:
                        raise GraphError(f"autograd.functional.jacobian: output {i} is "
                                         f"independent of input {k}; this is not allowed with "
                                         "strict=True\n  hint: pass strict=False to get zeros")
                    g = zeros_like(inputs[k])
                elif strict and create_graph and not g.requires_grad:
                    raise _strict_error("jacobian", "jacobian", k)
                rows[k].append(g)
        jac.append(tuple(_stack_rows(r, out.shape, x, 0) for r, x in zip(rows, inputs)))
    return tuple(jac)


def _jac_forward(outputs, inputs, create_graph, strict):
    """jac[i][k] by the double-backward trick, one JVP per input element (column by column)."""
    dummies = _dummies(outputs)
    grad_inputs = _autograd_grad(outputs, inputs, dummies, create_graph=True)
    cols = [[[] for _ in inputs] for _ in outputs]
    for k, (x, g) in enumerate(zip(inputs, grad_inputs)):
        for e in _basis(x):
            jv = _autograd_grad((g,), dummies, (e,), create_graph=create_graph,
                                retain_graph=True)
            for i, t in enumerate(jv):
                if t is None and strict:
                    raise GraphError(f"autograd.functional.jacobian: output {i} is independent "
                                     f"of input {k}; this is not allowed with strict=True\n"
                                     "  hint: pass strict=False to get zeros")
                cols[i][k].append(zeros_like(outputs[i]) if t is None else t)
    return tuple(tuple(_stack_rows(cols[i][k], x.shape, out, -1) for k, x in enumerate(inputs))
                 for i, out in enumerate(outputs))


def jacobian(func, inputs, create_graph=False, strict=False, vectorize=False,
             strategy="reverse-mode"):
    """The Jacobian of `func` at `inputs`: entry [i][k] has shape out_i.shape + in_k.shape.

    A single output and a single input give one Tensor; a tuple on either side gives a tuple
    level for it (outputs outside, inputs inside). `vectorize` is accepted for PyTorch's
    signature: the rows (or columns, with strategy="forward-mode") are computed one by one.

    >>> import tensorgrad as tg
    >>> tg.autograd.functional.jacobian(lambda x: x ** 2, tg.tensor([1.0, 3.0])).tolist()
    [[2.0, 0.0], [0.0, 6.0]]
    """
    if strategy not in ("forward-mode", "reverse-mode"):
        raise ValueError(f"autograd.functional.jacobian: strategy must be 'forward-mode' or "
                         f"'reverse-mode', got {strategy!r}\n  hint: 'forward-mode' tends to be "
                         "faster where the function has more outputs than inputs")
    with enable_grad():
        is_inputs_tuple, inputs = _as_tuple(inputs, "inputs", "jacobian")
        inputs = _grad_preprocess(inputs, create_graph, need_graph=True)
        is_outputs_tuple, outputs = _as_tuple(func(*inputs), "outputs of func", "jacobian")
        _check_requires_grad(outputs, "outputs", strict, "jacobian")
        jac_fn = _jac_forward if strategy == "forward-mode" else _jac_reverse
        jac = jac_fn(outputs, inputs, create_graph, strict)
    return _tuple_postprocess(_grad_postprocess(jac, create_graph),
                              (is_outputs_tuple, is_inputs_tuple))


def hessian(func, inputs, create_graph=False, strict=False, vectorize=False,
            outer_jacobian_strategy="reverse-mode"):
    """The Hessian of a scalar `func`: shape in.shape + in.shape for a single input, a tuple
    of tuples ([i][j]: d²f / d in_i d in_j) for a tuple of inputs.

    >>> import tensorgrad as tg
    >>> tg.autograd.functional.hessian(lambda x: (x ** 3).sum(), tg.tensor([1.0, 2.0])).tolist()
    [[6.0, 0.0], [0.0, 12.0]]
    """
    is_inputs_tuple, inputs = _as_tuple(inputs, "inputs", "hessian")

    def single_output(*inp):
        return _scalar_output(func, inp, strict, "hessian")[0].reshape(())

    def jac_func(*inp):
        jac = jacobian(single_output, inp, create_graph=True)
        _check_requires_grad(jac, "jacobian", strict, "hessian")
        return jac

    res = jacobian(jac_func, inputs, create_graph=create_graph, strict=strict,
                   vectorize=vectorize, strategy=outer_jacobian_strategy)
    return _tuple_postprocess(res, (is_inputs_tuple, is_inputs_tuple))
