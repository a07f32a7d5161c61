"""User-defined ops: `tg.autograd.Function`, with PyTorch's ctx API.

A Function records one graph `Node` built the way the registry builds an op's node (an
`OpDef` named after the class, never entered in `registry.OPS`), so the engine treats it
like any op: it checks the count, shape, dtype and device of the gradients `backward`
returns, checks the versions of the tensors saved with `ctx.save_for_backward`, and frees
them after the VJP unless `retain_graph`.

Several outputs: each output gets a small selector node whose only edge is the Function's
node. A selector hands its output's gradient on as an `_OutputGrads` (one slot per output),
the engine sums those like any gradient, and the Function's node calls `backward` once with
all of them, as PyTorch does (zeros, or None, for the outputs that got no gradient).

Graph edges never point back from a node to its outputs: saved outputs are kept as arrays
and re-wrapped on access, and ctx holds its node weakly, so reference counting frees it all.

Imports core modules lazily (tensor, registry) because autograd is imported before ops.
"""

import functools
import weakref

from ..errors import GraphError
from . import graph
from .graph import Node, no_grad


class FunctionCtx:
    """The `ctx` passed to forward and backward; arbitrary attributes may be set on it."""

    def __init__(self, needs_input_grad):
        self.needs_input_grad = needs_input_grad
        self.materialize_grads = True
        self._to_save = ()
        self._non_differentiable = ()
        self._node_ref = None
        self._cls = None
        self._single = True       # forward returned one tensor, not a tuple
        self._out_meta = ()       # (shape, dtype, device) per tensor output, None otherwise
        self._tensor_args = ()

    def save_for_backward(self, *tensors):
        """Keep `tensors` (inputs, outputs or intermediates, or None) for backward."""
        self._to_save = tensors

    def mark_non_differentiable(self, *tensors):
        """These outputs get no gradient: they do not require grad, backward sees zeros."""
        self._non_differentiable = tensors

    def set_materialize_grads(self, value):
        """With False, backward gets None (not zeros) for outputs that got no gradient."""
        self.materialize_grads = bool(value)

    def mark_dirty(self, *tensors):
        raise NotImplementedError(
            "mark_dirty: in-place Functions are not supported\n  hint: return a new tensor "
            "from forward instead of modifying an input")

    @property
    def saved_tensors(self):
        """The tensors given to save_for_backward; GraphError once backward freed them."""
        node = self._node_ref() if self._node_ref is not None else None
        if node is None:
            if self._node_ref is None:
                return tuple(self._to_save)  # no graph was recorded: plain values
            raise GraphError("saved_tensors: the graph this ctx belonged to was freed\n  hint: "
                             "pass retain_graph=True to backward() to keep it")
        if node.freed:
            raise node._freed_error()
        return tuple(_unpack(s, node) for s in node.inputs or ())


class _SavedOutput:
    """An output saved for backward: its array, re-wrapped on access (no cycle via the node)."""

    __slots__ = ("index", "array", "device", "vc", "differentiable")

    def __init__(self, index, tensor, differentiable):
        self.index = index
        self.array = tensor._array
        self.device = tensor._device
        self.vc = tensor._vc
        self.differentiable = differentiable


def _unpack(saved, node):
    from ..tensor import Tensor
    if not isinstance(saved, _SavedOutput):
        return saved
    if not (saved.differentiable and graph._mode.enabled):
        return Tensor._wrap(saved.array, saved.device, False, None, saved.vc)
    ctx = node.attrs["ctx"]
    if ctx._single:
        src = node
    else:  # a fresh selector: the gradient reaching it flows on to slot `index` of node
        src = _selector(node, saved.index, ctx)
    return Tensor._wrap(saved.array, saved.device, True, src, saved.vc)


class _OutputGrads:
    """The gradients of a Function's outputs, one slot each; `+` adds them slot by slot."""

    __slots__ = ("grads",)

    def __init__(self, grads):
        self.grads = grads

    def __add__(self, other):
        return _OutputGrads([b if a is None else a if b is None else a + b
                             for a, b in zip(self.grads, other.grads, strict=True)])


# ---- the ops behind a Function ----------------------------------------------------------------
_OPDEFS = weakref.WeakKeyDictionary()  # Function subclass -> (its OpDef, its selector OpDef)


def _opdefs(cls):
    ops = _OPDEFS.get(cls)
    if ops is None:
        from ..ops.registry import OpDef
        # Named after the class, so engine errors (count, shape, dtype) name it.
        ops = _OPDEFS[cls] = (OpDef(cls.__name__, None, _function_vjp, family="function"),
                              OpDef(cls.__name__, None, _select_vjp, family="function"))
    return ops


def _select_vjp(node, g, index, ctx):
    grads = [None] * len(ctx._out_meta)
    grads[index] = g
    return (_OutputGrads(grads),)


def _selector(fn_node, index, ctx):
    node = Node(_opdefs(ctx._cls)[1], [fn_node], [None], (True,), {"index": index, "ctx": ctx})
    node.out_meta = ctx._out_meta[index]
    return node


def _function_vjp(node, g, ctx):
    grads = g.grads if isinstance(g, _OutputGrads) else [g]
    if ctx.materialize_grads:
        grads = [_zeros(meta) if gi is None and meta is not None else gi
                 for gi, meta in zip(grads, ctx._out_meta, strict=True)]
    result = ctx._cls.backward(ctx, *grads)
    if not isinstance(result, (tuple, list)):
        result = (result,)
    result = list(result)
    n = len(node.edges)
    # PyTorch accepts extra trailing Nones (gradients of arguments forward did not take).
    while len(result) > n and result[-1] is None:
        result.pop()
    if len(result) != n:
        return result  # the engine's check raises ShapeError naming the class
    return tuple(_own(node, i, gi) for i, gi in enumerate(result))


def _own(node, i, g):
    """The gradient of input i as the engine wants it: None where no gradient is needed."""
    if node.edges[i] is None:
        if g is not None and not node.attrs["ctx"]._tensor_args[i]:
            raise GraphError(f"{node.op.name}.backward returned a gradient for input {i}, "
                             "which is not a Tensor\n  hint: return None for it")
        return None
    # A gradient that is an input's or a saved tensor's own storage must not become .grad.
    a = getattr(g, "_array", None)
    if a is not None and any(a is held for held in _held_arrays(node)):
        return g.clone()
    return g


def _held_arrays(node):
    from ..tensor import Tensor
    held = [e._array for e in node.edges if isinstance(e, Tensor)]
    for s in node.inputs or ():
        if isinstance(s, (Tensor, _SavedOutput)):
            held.append(s._array if isinstance(s, Tensor) else s.array)
    return held


def _zeros(meta):
    from ..creation import zeros
    from ..dtypes import _FROM_NP
    shape, dtype, device = meta
    return zeros(shape, dtype=_FROM_NP[dtype], device=device)


# ---- once_differentiable ---------------------------------------------------------------------
def once_differentiable(backward):
    """Decorate a Function's `backward` that is not written in differentiable ops.

    It runs with grad mode off. Under `create_graph` the gradients it returns are marked: they
    require grad, and differentiating them again raises GraphError naming the Function.
    (PyTorch marks them only when a gradient flowing into backward requires grad, and
    otherwise returns constants, so a later second derivative through them is silently
    wrong; here they are marked whenever `create_graph` is on.)

    >>> import tensorgrad as tg
    >>> from tensorgrad.autograd.function import once_differentiable
    >>> class Square(tg.autograd.Function):
    ...     @staticmethod
    ...     def forward(ctx, x):
    ...         ctx.save_for_backward(x)
    ...         return x * x
    ...     @staticmethod
    ...     @once_differentiable
    ...     def backward(ctx, g):
    ...         (x,) = ctx.saved_tensors
    ...         return 2 * x * g
    >>> x = tg.tensor(3.0, requires_grad=True)
    >>> (g,) = tg.autograd.grad(Square.apply(x), x, create_graph=True)
    >>> g.item(), g.grad_fn
    (6.0, <OnceDifferentiableBackward0>)
    """
    @functools.wraps(backward)
    def wrapper(ctx, *grad_outputs):
        with no_grad():
            result = backward(ctx, *grad_outputs)
        if not graph._mode.enabled:
            return result
        if isinstance(result, (tuple, list)):
            return type(result)(_mark_once(ctx, grad_outputs, r) for r in result)
        return _mark_once(ctx, grad_outputs, result)
    return wrapper


def _mark_once(ctx, grad_outputs, result):
    """`result` behind a node whose VJP raises, with edges to what it depends on: the
    Function's inputs and the gradients given to backward (so autograd.grad reaches it)."""
    from ..ops.registry import OpDef, edges_and_meta
    from ..tensor import Tensor
    if not isinstance(result, Tensor):
        return result
    edges, in_meta = edges_and_meta([g for g in grad_outputs if isinstance(g, Tensor)])
    fn_node = ctx._node_ref() if ctx._node_ref is not None else None
    if fn_node is not None:
        edges, in_meta = list(fn_node.edges) + edges, list(fn_node.in_meta) + in_meta
    if not _ONCE:
        _ONCE.append(OpDef("once_differentiable", None, _once_vjp, family="function"))
    node = Node(_ONCE[0], edges, in_meta, tuple(e is not None for e in edges),
                {"cls": ctx._cls})
    node.out_meta = (result._array.shape, result._array.dtype, result._device)
    return Tensor._wrap(result._array, result._device, True, node, result._vc)


def _once_vjp(node, g, cls):
    name = getattr(cls, "__name__", "Function")
    raise GraphError(f"{name}.backward: trying to differentiate twice a function that was "
                     "marked with @once_differentiable\n  hint: write its backward in "
                     "tensorgrad ops and drop the decorator to get higher-order gradients, or "
                     "do not differentiate its gradient again")


_ONCE = []  # the OpDef of the raising node, made on first use (ops import after autograd)


# ---- Function ---------------------------------------------------------------------------------
class Function:
    """A custom op with a hand-written backward, called as `MyFn.apply(*args)`.

    >>> import tensorgrad as tg
    >>> class Cube(tg.autograd.Function):
    ...     @staticmethod
    ...     def forward(ctx, x):
    ...         ctx.save_for_backward(x)
    ...         return x ** 3
    ...     @staticmethod
    ...     def backward(ctx, g):
    ...         (x,) = ctx.saved_tensors
    ...         return g * 3 * x ** 2
    >>> x = tg.tensor(2.0, requires_grad=True)
    >>> Cube.apply(x).backward()
    >>> x.grad.item()
    12.0
    """

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError("Function subclasses must define a static forward(ctx, ...)")

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError("Function subclasses must define a static backward(ctx, ...)")

    @staticmethod
    def setup_context(ctx, inputs, output):
        """PyTorch 2's split form: forward(*args) without ctx, then this fills ctx."""

    @classmethod
    def apply(cls, *args, **kwargs):
        from ..tensor import Tensor
        recording = graph._mode.enabled and any(
            isinstance(a, Tensor) and a._rg for a in args)
        ctx = FunctionCtx(tuple(recording and isinstance(a, Tensor) and a._rg for a in args))
        ctx._cls = cls
        with no_grad():
            if cls.setup_context is Function.setup_context:
                out = cls.forward(ctx, *args, **kwargs)
            else:
                out = cls.forward(*args, **kwargs)
                cls.setup_context(ctx, args, out)
        if not recording:
            return out
        return _record(cls, ctx, args, out)


def _record(cls, ctx, args, out):
    from ..tensor import Tensor
    ctx._single = not isinstance(out, (tuple, list))
    outs = [out] if ctx._single else list(out)
    ctx._tensor_args = tuple(isinstance(a, Tensor) for a in args)
    from ..ops.registry import edges_and_meta
    edges, in_meta = edges_and_meta(args)
    diff = [_differentiable(o, ctx) for o in outs]
    ctx._out_meta = tuple((o._array.shape, o._array.dtype, o._device)
                          if isinstance(o, Tensor) else None for o in outs)
    node = Node(_opdefs(cls)[0], edges, in_meta, tuple(e is not None for e in edges),
                {"ctx": ctx})
    ctx._node_ref = weakref.ref(node)
    _save(node, ctx, args, outs, diff)
    results = [_output(node, ctx, k, o, d)
               for k, (o, d) in enumerate(zip(outs, diff, strict=True))]
    if graph._anomaly.enabled:
        for r in results:
            if isinstance(r, Tensor):
                graph._anomaly.on_forward(node, args, r)
    if ctx._single:
        return results[0]
    return type(out)(results) if type(out) in (tuple, list) else type(out)(*results)


def _differentiable(o, ctx):
    from ..tensor import Tensor
    return (isinstance(o, Tensor) and o.dtype.is_floating_point
            and not any(o is t for t in ctx._non_differentiable))


def _output(node, ctx, k, o, differentiable):
    """The tensor the caller gets for output k: same storage, graph-connected if it can be."""
    from ..tensor import Tensor
    if not isinstance(o, Tensor):
        return o
    if not differentiable:
        t = Tensor._wrap(o._array, o._device, False, None, o._vc)
    elif ctx._single:
        node.out_meta = ctx._out_meta[0]
        t = Tensor._wrap(o._array, o._device, True, node, o._vc)
    else:
        t = Tensor._wrap(o._array, o._device, True, _selector(node, k, ctx), o._vc)
    base = getattr(o, "_base", None)
    if base is not None:  # a view (split's pieces): in-place ops on it write through
        t._base = base
    return t


def _save(node, ctx, args, outs, diff):
    """Move what forward saved onto the node, with versions, so the engine checks and frees it."""
    from ..tensor import Tensor
    saved, versions = [], []
    for t in ctx._to_save:
        if t is not None and not isinstance(t, Tensor):
            raise TypeError(f"{node.op.name}: save_for_backward takes tensors or None, got "
                            f"{type(t).__name__}\n  hint: store other values as ctx attributes")
        k = next((k for k, o in enumerate(outs) if t is not None and o is t), None)
        if k is not None and not any(t is a for a in args):
            saved.append(_SavedOutput(k, t, diff[k]))
        else:
            saved.append(t)
        versions.append((t._vc, t._vc[0]) if t is not None else (None, 0))
    ctx._to_save = ()
    if saved:
        node.inputs = saved
        node.versions = versions
