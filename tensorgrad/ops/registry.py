"""The op registry and dispatch: every op is one `OpDef`, applied through `apply`.

An op is registered once, with its forward over backend arrays (`forward(xp, *arrays,
**attrs)`) and its VJP over tensors (`vjp(ctx, g, **attrs) -> one cotangent per input, or
None`), side by side in its family's module. `apply` checks devices, picks the backend (and
the backend's override of the forward, if it has one), runs the forward in the device's
context, and records a graph `Node` when a gradient is needed.

`ctx` in a VJP is the node: `ctx.inputs` (saved inputs, graph-connected tensors and Python
scalars, when registered with save_inputs=True), `ctx.out` (the output, save_out=True),
`ctx.res` (whatever the forward returned as residual, has_res=True), `ctx.in_meta[i]`
(shape, dtype, device of input i, or None where no gradient is needed) and
`ctx.needs_input_grad`.
"""

from .. import backend_api
from ..autograd import graph
from ..autograd.graph import Node, _mode
from ..devices import as_device
from ..errors import DeviceError
from ..tensor import Tensor

_wrap = Tensor._wrap

OPS = {}  # name -> OpDef, every registered op
_NO_ATTRS = {}


class OpDef:
    """One op: forward over arrays and VJP over tensors, plus what the engine must keep."""

    __slots__ = ("name", "forward", "vjp", "save_inputs", "save_out", "has_res",
                 "differentiable", "smooth", "view", "family")

    def __init__(self, name, forward, vjp=None, *, save_inputs=False, save_out=False,
                 has_res=False, smooth=True, view=False, family=None):
        self.name = name
        self.forward = forward
        self.vjp = vjp
        self.save_inputs = save_inputs
        self.save_out = save_out
        self.has_res = has_res
        self.differentiable = vjp is not None
        self.smooth = smooth and vjp is not None
        self.view = view
        self.family = family

    def __repr__(self):
        return f"OpDef({self.name!r})"


def register(name, forward, vjp=None, **flags):
    """Register an op; `vjp=None` marks it not differentiable (comparisons, argmax)."""
    if name in OPS:
        raise ValueError(f"op {name!r} is registered twice")
    family = forward.__module__.rsplit(".", 1)[-1]
    op = OPS[name] = OpDef(name, forward, vjp, family=family, **flags)
    return op


def _backend_for(device):
    # Cached on the (canonical) device object, so the hot path does no registry lookups.
    b = device._backend
    if b is None:
        b = device._backend = backend_api.usable_backend(device.type)
    return b


def _common_device(op, inputs):
    """The device of the op: all tensor inputs must share it, except 0-d CPU tensors."""
    dev = None
    for x in inputs:
        if isinstance(x, Tensor):
            d = x._device
            if dev is None or dev == d:
                dev = d
            elif dev.type == "cpu" and _is_cpu_scalar_of(inputs, dev):
                dev = d
            elif not (d.type == "cpu" and x.ndim == 0):
                devs = ", ".join(str(t._device) for t in inputs if isinstance(t, Tensor))
                raise DeviceError(
                    f"{op.name}: expected all tensors on one device, got {devs}\n"
                    f"  hint: move them first, e.g. x.to('{d}') (Python scalars and 0-d CPU "
                    "tensors combine with tensors on any device)")
    return dev


def _is_cpu_scalar_of(inputs, cpu):
    # True when every CPU tensor so far is 0-d, so they can follow a GPU operand.
    return all(x.ndim == 0 for x in inputs if isinstance(x, Tensor) and x._device == cpu)


def apply(op, inputs, attrs=_NO_ATTRS):
    """Run `op` on `inputs` (tensors and Python scalars) and record it for autograd."""
    # One and two operands, the ops on every hot path, are unrolled and call the forward
    # with plain positional arguments: the general loop's list building, and a star-call,
    # each cost as much as a small op's NumPy call.
    n = len(inputs)
    x = inputs[0] if n else None
    if n == 2 and isinstance(x, Tensor):
        dev = x._device
        y = inputs[1]
        if isinstance(y, Tensor):
            if y._device is not dev:
                return _apply_mixed(op, inputs, attrs)
            b = y._array
            requires = x._rg or y._rg
        else:
            b = y
            requires = x._rg
        backend = dev._backend or _backend_for(dev)
        if backend.needs_device_context:
            return _apply_in_context(op, inputs, attrs, dev, backend, (x._array, b), requires)
        fwd = backend.overrides.get(op.name, op.forward) if backend.overrides else op.forward
        result = fwd(backend.xp, x._array, b, **attrs) if attrs else fwd(backend.xp, x._array, b)
    elif n == 1 and isinstance(x, Tensor):
        dev = x._device
        requires = x._rg
        backend = dev._backend or _backend_for(dev)
        if backend.needs_device_context:
            return _apply_in_context(op, inputs, attrs, dev, backend, (x._array,), requires)
        fwd = backend.overrides.get(op.name, op.forward) if backend.overrides else op.forward
        result = fwd(backend.xp, x._array, **attrs) if attrs else fwd(backend.xp, x._array)
    else:
        dev = None
        arrays = []
        requires = False
        for x in inputs:
            if isinstance(x, Tensor):
                if dev is None:
                    dev = x._device
                elif x._device is not dev:
                    return _apply_mixed(op, inputs, attrs)
                arrays.append(x._array)
                if x._rg:
                    requires = True
            else:
                arrays.append(x)
        backend = dev._backend or _backend_for(dev)
        return _apply_in_context(op, inputs, attrs, dev, backend, arrays, requires)
    if op.has_res or op.view:
        return _finish(op, inputs, attrs, dev, backend, result, requires)
    if requires and op.vjp is not None and _mode.enabled:
        return _record(op, inputs, attrs, result, None, dev, None)
    return _wrap(result, dev)


def _apply_in_context(op, inputs, attrs, dev, backend, arrays, requires):
    # The general path: any number of operands, and backends that run in a device context.
    fwd = backend.overrides.get(op.name, op.forward) if backend.overrides else op.forward
    if backend.needs_device_context:
        with backend.device_context(dev.index):
            result = fwd(backend.xp, *arrays, **attrs)
    else:
        result = fwd(backend.xp, *arrays, **attrs)
    return _finish(op, inputs, attrs, dev, backend, result, requires)


def _finish(op, inputs, attrs, dev, backend, result, requires):
    """Split off the residuals, share the version counter of a view, record."""
    res = None
    if op.has_res:
        result, res = result
    vc = None
    if op.view:
        # A view shares its base's version counter: the input array itself (contiguous() of
        # a contiguous tensor), or an array whose .base names the input or the input's own
        # base, tests far cheaper than may_share_memory. An array that owns its memory (base
        # None) and is not the input is a copy.
        a = inputs[0]._array
        base = result.base
        if result is a or base is not None and (base is a or base is a.base
                                                or backend.xp.may_share_memory(result, a)):
            vc = inputs[0]._vc
    if requires and op.vjp is not None and _mode.enabled:
        out = _record(op, inputs, attrs, result, res, dev, vc)
    else:
        out = _wrap(result, dev, False, None, vc)
    if vc is not None:  # a view: in-place ops on it write through to the tensor it views
        base = getattr(inputs[0], "_base", None)
        out._base = inputs[0] if base is None else base
    return out


def edges_and_meta(inputs):
    """Per input: its graph edge (its node, itself as a leaf, or None) and its metadata."""
    pairs = [_edge(x) for x in inputs]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _record(op, inputs, attrs, result, res, dev, vc):
    # Per input: its edge (its node, itself as a leaf, or None), its metadata, whether it
    # needs a gradient and, for ops that save their inputs, the version the engine checks
    # before reading it. Built as tuples in one pass: separate passes, or lists, cost as much
    # as the rest of the recording.
    if len(inputs) == 2:  # inlined: a call per input cost more than the rest
        x, y = inputs
        if isinstance(x, Tensor) and x._rg:
            a = x._array
            e0, m0, n0 = x if x._node is None else x._node, (a.shape, a.dtype, x._device), True
        else:
            e0 = m0 = None
            n0 = False
        if isinstance(y, Tensor) and y._rg:
            a = y._array
            e1, m1, n1 = y if y._node is None else y._node, (a.shape, a.dtype, y._device), True
        else:
            e1 = m1 = None
            n1 = False
        edges, in_meta, needs = (e0, e1), (m0, m1), (n0, n1)
    elif len(inputs) == 1:
        edges, in_meta, needs = _edge(inputs[0])
        edges, in_meta, needs = (edges,), (in_meta,), (needs,)
    else:
        edges, in_meta, needs = zip(*[_edge(x) for x in inputs])
    node = Node(op, edges, in_meta, needs, attrs)
    out = _wrap(result, dev, True, node, vc)
    node.out_meta = (result.shape, result.dtype, dev)
    if op.save_inputs:
        node.inputs = inputs
        node.versions = [(x._vc, x._vc[0]) if isinstance(x, Tensor) else (None, 0)
                         for x in inputs]
    if op.save_out:
        node.out_array = result
        node.out_version = (out._vc, out._vc[0])
    if res is not None:
        node.res = res
    if graph._anomaly.enabled:
        graph._anomaly.on_forward(node, inputs, out)
    return out


def _edge(x):
    if isinstance(x, Tensor) and x._rg:
        a = x._array
        node = x._node
        return (x if node is None else node), (a.shape, a.dtype, x._device), True
    return None, None, False


def _apply_mixed(op, inputs, attrs):
    # Slow path: 0-d CPU tensors join an op on another device (as in PyTorch).
    for x in inputs:
        if isinstance(x, Tensor):
            x._device = as_device(x._device)  # a device equal to, but not, the canonical one
    dev = _common_device(op, inputs)
    moved = tuple(x.to(dev) if isinstance(x, Tensor) and x._device is not dev else x
                  for x in inputs)
    return apply(op, moved, attrs)
