"""tg.func: function transforms with torch.func's signatures, built on `tg.autograd.grad`.

`grad`, `grad_and_value`, `vjp`, `jvp`, `hvp`, `jacrev`, `jacfwd` and `hessian` take a
function and give back a function (or, for `vjp`/`jvp`/`hvp`, its value and product), and
they compose: `grad(grad(f))`, `jacfwd(jacrev(f))`. Arguments may be Tensors or tuples,
lists and dicts of them (the gradient has the argument's structure).

How they compose: each call runs `f` on fresh tensors standing for the differentiated
arguments. Where an argument already takes part in an outer graph (it requires grad, and grad
mode is on) the fresh tensor is a differentiable identity of it, so the gradients computed
here stay connected and an outer transform can differentiate them again. Results carry a
graph only where f's output reaches a tensor requiring grad other than the fresh ones (an
outer transform's input, a closed-over parameter: a gradient penalty backpropagates into the
model), and grad mode is on; otherwise they come back detached, as torch.func's do.

`jvp` uses the double-VJP trick (a VJP `u -> Jᵀu` is linear in `u`, so its VJP along `v` is
`J v`), and `jacfwd` one such JVP per input element, so neither is cheaper than `jacrev` here.

This module speaks only Tensor: it imports no array library and touches no raw array.
"""

from .autograd import grad as _autograd_grad
from .autograd.graph import enable_grad, is_grad_enabled
from .creation import eye, zeros, zeros_like
from .errors import ShapeError
from .ops import stack
from .tensor import Tensor

__all__ = ["grad", "grad_and_value", "vjp", "jvp", "hvp", "jacrev", "jacfwd", "hessian"]


# ---- pytrees: tuples, lists, dicts (and namedtuples) of leaves ---------------------------------
def _flatten(tree):
    """(leaves, spec): the leaves in order, and what `_unflatten` needs to rebuild `tree`."""
    if isinstance(tree, dict):
        keys = list(tree)
        parts = [_flatten(tree[k]) for k in keys]
        return [x for p in parts for x in p[0]], (dict, keys, [p[1] for p in parts])
    if isinstance(tree, (tuple, list)):
        parts = [_flatten(x) for x in tree]
        return [x for p in parts for x in p[0]], (type(tree), None, [p[1] for p in parts])
    return [tree], None


def _unflatten(leaves, spec):
    it = iter(leaves)
    return _build(it, spec)


def _build(it, spec):
    if spec is None:
        return next(it)
    kind, keys, children = spec
    items = [_build(it, c) for c in children]
    if kind is dict:
        return dict(zip(keys, items))
    if hasattr(kind, "_fields"):  # a namedtuple
        return kind(*items)
    return kind(items)


def _tensor_leaves(tree, api, what):
    leaves, spec = _flatten(tree)
    for x in leaves:
        if not isinstance(x, Tensor):
            raise TypeError(f"func.{api}: expected {what} to be a Tensor or a tuple/list/dict of "
                            f"Tensors, got a {type(x).__name__} ({x!r:.40})\n  hint: wrap numbers "
                            "with tg.tensor(...), or leave the argument out of argnums")
    return leaves, spec


# ---- the fresh inputs and the products -------------------------------------------------------
def _fresh(x, connect, api):
    """A new tensor standing for `x` that requires grad: connected to x's graph when asked
    (`contiguous` is an identity with an identity VJP, sharing storage), else a new leaf."""
    if connect and x.requires_grad:
        return _identity(x)
    if not x.is_floating_point():
        raise TypeError(f"func.{api}: can only differentiate with respect to floating-point "
                        f"Tensors, got one of dtype {x.dtype} and shape {tuple(x.shape)}\n  hint: "
                        "convert it (x.double()) or leave it out of argnums")
    return x.detach().requires_grad_()


def _reaches_outside(tensors, own):
    """Whether the graph behind `tensors` reaches a tensor requiring grad that is not one of
    `own` (the fresh inputs): only then must results carry a graph (create_graph=True)."""
    own_ids = {id(x) for x in own}
    stack, seen = [], set()
    for t in tensors:
        if t.grad_fn is not None:
            stack.append(t.grad_fn)
        elif t.requires_grad and id(t) not in own_ids:
            return True
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        for e in node.edges:  # a Node, a leaf Tensor that requires grad, or None
            if isinstance(e, Tensor):
                if id(e) not in own_ids:
                    return True
            elif e is not None:
                stack.append(e)
    return False


def _identity(x):
    """A new tensor object equal to x, with an identity VJP. `contiguous` shares storage;
    a 0-d tensor is cloned (cheap) because `contiguous` would make it 1-d (NumPy's
    ascontiguousarray does), and `view_as` to the same shape hands back x itself."""
    return x.contiguous() if x.ndim else x.clone()


def _products(outputs, inputs, cotangents, create_graph, retain_graph):
    """autograd.grad of `outputs` along `cotangents`, zeros where an input is not reached."""
    pairs = [(o, c) for o, c in zip(outputs, cotangents, strict=True) if o.requires_grad]
    wanted = [x for x in inputs if x.requires_grad]
    if not pairs or not wanted:
        return [zeros_like(x) for x in inputs]
    found = iter(_autograd_grad([o for o, _ in pairs], wanted, [c for _, c in pairs],
                                retain_graph=retain_graph, create_graph=create_graph,
                                materialize_grads=True))
    return [next(found) if x.requires_grad else zeros_like(x) for x in inputs]


def _dummies(outputs):
    """The dummy cotangents of the double-VJP trick (their value never matters)."""
    return [zeros_like(o, requires_grad=o.is_floating_point()) for o in outputs]


def _argnums(argnums, n, api):
    """Validated, non-negative argnums as a tuple, and whether one int was given."""
    single = isinstance(argnums, int)
    nums = (argnums,) if single else argnums
    if not isinstance(nums, tuple) or not nums or not all(isinstance(a, int) for a in nums):
        raise TypeError(f"func.{api}: argnums must be an int or a non-empty tuple of ints, got "
                        f"{argnums!r}\n  hint: argnums=0 or argnums=(0, 1)")
    if any(not -n <= a < n for a in nums):
        raise IndexError(f"func.{api}: argnums={argnums!r} but f was called with {n} "
                         f"positional argument(s)\n  hint: argnums index the positional args")
    nums = tuple(a % n for a in nums)
    if len(set(nums)) != len(nums):
        raise ValueError(f"func.{api}: argnums must be unique, got {argnums!r}")
    return nums, single


def _prepare(args, argnums, connect, api):
    """Replace the differentiated args by fresh tensors. Returns (args, flat inputs, layout)."""
    nums, single = _argnums(argnums, len(args), api)
    args, inputs, specs = list(args), [], []
    for a in nums:
        leaves, spec = _tensor_leaves(args[a], api, f"argument {a} (in argnums)")
        fresh = [_fresh(x, connect, api) for x in leaves]
        args[a] = _unflatten(fresh, spec)
        inputs += fresh
        specs.append((len(fresh), spec))
    return args, inputs, (specs, single)


def _regroup(flat, layout):
    """Per-input results back into the structure of the differentiated args."""
    specs, single = layout
    out, start = [], 0
    for n, spec in specs:
        out.append(_unflatten(flat[start:start + n], spec))
        start += n
    return out[0] if single else tuple(out)


def _split_aux(result, has_aux, api):
    if not has_aux:
        return result, None
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise TypeError(f"func.{api}: with has_aux=True, f must return a pair (output, aux); "
                        f"got {type(result).__name__}\n  hint: return (out, aux)")
    return result[0], result[1]


def _check_scalar(out, api):
    if not isinstance(out, Tensor):
        raise TypeError(f"func.{api}: expected f to return a scalar Tensor, got "
                        f"{type(out).__name__}\n  hint: with has_aux=True return (out, aux)")
    if out.ndim != 0:
        raise ShapeError(f"func.{api}: expected f to return a scalar Tensor, got one of shape "
                         f"{tuple(out.shape)}\n  hint: reduce it (.sum()), or use func.vjp / "
                         "func.jacrev for a non-scalar output")


def _maybe_detach(tree, keep):
    if keep:
        return tree
    leaves, spec = _flatten(tree)
    return _unflatten([x.detach() if isinstance(x, Tensor) else x for x in leaves], spec)


# ---- grad, grad_and_value ------------------------------------------------------------------
def grad_and_value(func, argnums=0, has_aux=False):
    """Like `grad`, but the function returns `(gradient, value)` (`(gradient, (value, aux))`
    with has_aux), computing both in one pass.

    >>> import tensorgrad as tg
    >>> g, v = tg.func.grad_and_value(lambda x: (x ** 2).sum())(tg.tensor([1.0, 2.0]))
    >>> g.tolist(), v.item()
    ([2.0, 4.0], 5.0)
    """
    def wrapper(*args, **kwargs):
        connect = is_grad_enabled()
        with enable_grad():
            args, inputs, layout = _prepare(args, argnums, connect, "grad")
            out, aux = _split_aux(func(*args, **kwargs), has_aux, "grad")
            _check_scalar(out, "grad")
            keep = connect and _reaches_outside([out], inputs)
            grads = _products([out], inputs, [None], create_graph=keep, retain_graph=keep)
        value = _maybe_detach(out, keep)
        return _regroup(grads, layout), ((value, aux) if has_aux else value)
    return wrapper


def grad(func, argnums=0, has_aux=False):
    """The gradient of a scalar-valued `func` w.r.t. the argument(s) `argnums`, as a function.

    With a tuple of argnums it returns a tuple of gradients; with has_aux, `func` returns
    `(out, aux)` and the function returns `(gradient, aux)`.

    >>> import tensorgrad as tg
    >>> d2sin = tg.func.grad(tg.func.grad(tg.sin))
    >>> round(d2sin(tg.tensor(0.5)).item(), 6) == round(-tg.sin(tg.tensor(0.5)).item(), 6)
    True
    """
    both = grad_and_value(func, argnums, has_aux)

    def wrapper(*args, **kwargs):
        g, value = both(*args, **kwargs)
        return (g, value[1]) if has_aux else g
    return wrapper


# ---- vjp, jvp, hvp -------------------------------------------------------------------------
def vjp(func, *primals, has_aux=False):
    """`(func(*primals), vjp_fn)`; `vjp_fn(cotangents)` returns one VJP per primal (a tuple),
    and can be called many times. With has_aux: `(out, vjp_fn, aux)`.

    >>> import tensorgrad as tg
    >>> out, vjp_fn = tg.func.vjp(tg.sin, tg.tensor([0.0, 1.0]))
    >>> [round(v, 4) for v in vjp_fn(tg.tensor([1.0, 2.0]))[0].tolist()]
    [1.0, 1.0806]
    """
    if not primals:
        raise TypeError("func.vjp: expected at least one primal after f\n  hint: "
                        "tg.func.vjp(f, x)")
    connect = is_grad_enabled()
    with enable_grad():
        args, inputs, layout = _prepare(primals, tuple(range(len(primals))), connect, "vjp")
        out, aux = _split_aux(func(*args), has_aux, "vjp")
        outs, out_spec = _tensor_leaves(out, "vjp", "the output of f")
        keep = connect and _reaches_outside(outs, inputs)

    def vjp_fn(cotangents):
        cots, spec = _tensor_leaves(cotangents, "vjp", "the cotangents")
        _check_like(cots, spec, outs, out_spec, "vjp", "cotangents", "the output of f")
        # a graph where the result can reach the outside: through f, or through cotangents
        # that require grad (a VJP of this VJP, the double-VJP trick)
        graph = is_grad_enabled() and (keep or any(c.requires_grad for c in cots))
        with enable_grad():
            grads = _products(outs, inputs, cots, create_graph=graph, retain_graph=True)
        return _regroup(grads, (layout[0], False))

    out = _maybe_detach(out, keep)
    return (out, vjp_fn, aux) if has_aux else (out, vjp_fn)


def _check_like(leaves, spec, refs, ref_spec, api, what, ref_what):
    if spec != ref_spec or len(leaves) != len(refs):
        raise ValueError(f"func.{api}: {what} must have the structure of {ref_what}; got "
                         f"{len(leaves)} tensor(s) for {len(refs)}")
    for i, (a, b) in enumerate(zip(leaves, refs)):
        if a.shape != b.shape:
            raise ShapeError(f"func.{api}: entry {i} of {what} has shape {tuple(a.shape)} but "
                             f"{ref_what} has shape {tuple(b.shape)} there\n  hint: each entry "
                             "must match the shape of what it multiplies")


def _primals_and_tangents(primals, tangents, api):
    for name, t in (("primals", primals), ("tangents", tangents)):
        if not isinstance(t, (tuple, list)):
            raise TypeError(f"func.{api}: expected {name} to be a tuple, got "
                            f"{type(t).__name__}\n  hint: pass (x,) for a single argument")
    tans, tspec = _tensor_leaves(tuple(tangents), api, "tangents")
    refs, pspec = _tensor_leaves(tuple(primals), api, "primals")
    _check_like(tans, tspec, refs, pspec, api, "tangents", "primals")
    return tans


def jvp(func, primals, tangents, *, strict=False, has_aux=False):
    """`(func(*primals), J·tangents)`; primals and tangents are tuples of the same structure.
    With has_aux: `(out, jvp_out, aux)`. (`strict` is accepted for torch.func's signature.)

    >>> import tensorgrad as tg
    >>> out, t = tg.func.jvp(lambda x: x ** 2, (tg.tensor([1.0, 3.0]),), (tg.tensor([1.0, 0.5]),))
    >>> t.tolist()
    [2.0, 3.0]
    """
    tans = _primals_and_tangents(primals, tangents, "jvp")
    connect = is_grad_enabled()
    with enable_grad():
        args, inputs, _ = _prepare(tuple(primals), tuple(range(len(primals))), connect, "jvp")
        out, aux = _split_aux(func(*args), has_aux, "jvp")
        outs, out_spec = _tensor_leaves(out, "jvp", "the output of f")
        keep = connect and _reaches_outside(outs + tans, inputs)
        dummies = _dummies(outs)
        vjps = _products(outs, inputs, dummies, create_graph=True, retain_graph=True)
        jv = _products(vjps, dummies, tans, create_graph=keep, retain_graph=keep)
    res = (_maybe_detach(out, keep), _unflatten(jv, out_spec))
    return res + (aux,) if has_aux else res


def hvp(func, primals, tangents):
    """`(func(*primals), H·tangents)` for a scalar `func` (tensorgrad's; torch.func has none).

    primals and tangents are tuples, as in `jvp`, and H·tangents is a tuple shaped like the
    primals. Computed as a VJP of the gradient (H is symmetric for twice-differentiable f).

    >>> import tensorgrad as tg
    >>> out, (hv,) = tg.func.hvp(lambda x: (x ** 3).sum(), (tg.tensor([1.0, 2.0]),),
    ...                          (tg.tensor([1.0, 1.0]),))
    >>> hv.tolist()
    [6.0, 12.0]
    """
    tans = _primals_and_tangents(primals, tangents, "hvp")
    connect = is_grad_enabled()
    with enable_grad():
        nums = tuple(range(len(primals)))
        args, inputs, layout = _prepare(tuple(primals), nums, connect, "hvp")
        out = func(*args)
        _check_scalar(out, "hvp")
        keep = connect and _reaches_outside([out] + tans, inputs)
        g = _products([out], inputs, [None], create_graph=True, retain_graph=True)
        hv = _products(g, inputs, tans, create_graph=keep, retain_graph=keep)
    return _maybe_detach(out, keep), _regroup(hv, (layout[0], False))


# ---- jacrev, jacfwd, hessian ---------------------------------------------------------------
def _basis(t):
    """The one-hot directions e_j for t's elements, each shaped like t."""
    rows = eye(t.numel(), dtype=t.dtype, device=t.device)
    return [rows[j].reshape(t.shape) for j in range(t.numel())]


def _jac(func, argnums, has_aux, api, fill):
    """The shared frame of jacrev/jacfwd: `fill(outs, inputs, keep)` -> jac[o][k]."""
    def wrapper(*args, **kwargs):
        connect = is_grad_enabled()
        with enable_grad():
            args, inputs, layout = _prepare(args, argnums, connect, api)
            out, aux = _split_aux(func(*args, **kwargs), has_aux, api)
            outs, out_spec = _tensor_leaves(out, api, "the output of f")
            keep = connect and _reaches_outside(outs, inputs)
            jac = fill(outs, inputs, keep)
        res = _unflatten([_regroup(row, layout) for row in jac], out_spec)
        return (res, aux) if has_aux else res
    return wrapper


def _rows(outs, inputs, keep):
    """Reverse mode: one VJP per output element; jac[o][k] has shape o.shape + x_k.shape."""
    jac = []
    for o in outs:
        rows = [_products([o], inputs, [e], create_graph=keep, retain_graph=True)
                for e in _basis(o)]
        jac.append([_stack_or_zeros([r[k] for r in rows], o.shape + x.shape, 0, x)
                    for k, x in enumerate(inputs)])
    return jac


def _cols(outs, inputs, keep):
    """Forward mode (double-VJP): one JVP per input element, stacked on a last axis."""
    dummies = _dummies(outs)
    vjps = _products(outs, inputs, dummies, create_graph=True, retain_graph=True)
    jac = [[None] * len(inputs) for _ in outs]
    for k, (x, g) in enumerate(zip(inputs, vjps)):
        cols = [_products([g], dummies, [e], create_graph=keep, retain_graph=True)
                for e in _basis(x)]
        for i, o in enumerate(outs):
            jac[i][k] = _stack_or_zeros([c[i] for c in cols], o.shape + x.shape, o.ndim, o)
    return jac


def _stack_or_zeros(parts, shape, dim, like):
    if not parts:  # an empty tensor on one side: an empty Jacobian
        return zeros(shape, dtype=like.dtype, device=like.device)
    return stack(parts, dim=dim).reshape(shape)


def jacrev(func, argnums=0, *, has_aux=False):
    """The Jacobian of `func` by reverse mode (one VJP per output element), as a function.

    The Jacobian of an output of shape S w.r.t. an argument of shape T has shape S + T; a
    tuple of argnums gives a tuple, a tuple of outputs a tuple of those.

    >>> import tensorgrad as tg
    >>> tg.func.jacrev(lambda x: x ** 2)(tg.tensor([1.0, 3.0])).tolist()
    [[2.0, 0.0], [0.0, 6.0]]
    """
    return _jac(func, argnums, has_aux, "jacrev", _rows)


def jacfwd(func, argnums=0, has_aux=False):
    """The Jacobian of `func` by forward mode (one JVP per input element), as a function;
    the same result as `jacrev`, cheaper in principle where outputs outnumber inputs.

    >>> import tensorgrad as tg
    >>> tg.func.jacfwd(lambda x: x ** 2)(tg.tensor([1.0, 3.0])).tolist()
    [[2.0, 0.0], [0.0, 6.0]]
    """
    return _jac(func, argnums, has_aux, "jacfwd", _cols)


def hessian(func, argnums=0):
    """The Hessian of a scalar `func`, `jacfwd(jacrev(func, argnums), argnums)`: shape
    T + T for an argument of shape T, nested tuples for a tuple of argnums.

    >>> import tensorgrad as tg
    >>> tg.func.hessian(lambda x: (x ** 3).sum())(tg.tensor([1.0, 2.0])).tolist()
    [[6.0, 0.0], [0.0, 12.0]]
    """
    return jacfwd(jacrev(func, argnums), argnums)
