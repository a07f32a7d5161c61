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
from ..autograd.graph import Node
from ..devices import as_device
from ..errors import DeviceError
from ..tensor import Tensor

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
    # One and two operands, the ops on every hot path, are unrolled: the general loop's list
    # building cost as much as a small op's NumPy call.
    n = len(inputs)
    x = inputs[0] if n else None
    if n == 1 and isinstance(x, Tensor):
        dev = x._device
        arrays = (x._array,)
        requires = x._rg
    elif n == 2 and isinstance(x, Tensor):
        dev = x._device
        y = inputs[1]
        if isinstance(y, Tensor):
            if y._device is not dev:
                return _apply_mixed(op, inputs, attrs)
            arrays = (x._array, y._array)
            requires = x._rg or y._rg
        else:
            arrays = (x._array, y)
            requires = x._rg
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
    fwd = backend.overrides.get(op.name, op.forward) if backend.overrides else op.forward
    if backend.needs_device_context:
        with backend.device_context(dev.index):
            result = fwd(backend.xp, *arrays, **attrs)
    else:
        result = fwd(backend.xp, *arrays, **attrs)
    res = None
    if op.has_res:
        result, res = result
    vc = None
    if op.view and backend.xp.may_share_memory(result, arrays[0]):
        vc = inputs[0]._vc  # a view shares its base's version counter
    if requires and op.vjp is not None and graph._mode.enabled:
        return _record(op, inputs, attrs, result, res, dev, vc)
    return Tensor._wrap(result, dev, False, None, vc)


def edges_and_meta(inputs):
    """Per input: its graph edge (its node, itself as a leaf, or None) and its metadata."""
    edges, in_meta, _ = _edges(inputs)
    return edges, in_meta


def _edges(inputs):
    # One pass builds all three lists: a generator per call (tuple(e is not None ...)) cost
    # as much as the rest of the recording.
    edges = []
    in_meta = []
    needs = []
    for x in inputs:
        if isinstance(x, Tensor) and x._rg:
            node = x._node
            edges.append(x if node is None else node)
            a = x._array
            in_meta.append((a.shape, a.dtype, x._device))
            needs.append(True)
        else:
            edges.append(None)
            in_meta.append(None)
            needs.append(False)
    return edges, in_meta, needs


def _record(op, inputs, attrs, result, res, dev, vc):
    # One pass builds edges, metadata and (for ops that save their inputs) the versions the
    # engine checks before reading them: separate passes cost as much as the rest.
    edges, in_meta, needs = [], [], []
    versions = [] if op.save_inputs else None
    for x in inputs:
        if isinstance(x, Tensor):
            if versions is not None:
                versions.append((x._vc, x._vc[0]))
            if x._rg:
                node = x._node
                edges.append(x if node is None else node)
                a = x._array
                in_meta.append((a.shape, a.dtype, x._device))
                needs.append(True)
                continue
        elif versions is not None:
            versions.append((None, 0))
        edges.append(None)
        in_meta.append(None)
        needs.append(False)
    node = Node(op, edges, in_meta, tuple(needs), attrs)
    out = Tensor._wrap(result, dev, True, node, vc)
    node.out_meta = (result.shape, result.dtype, dev)
    if versions is not None:
        node.inputs = inputs
        node.versions = versions
    if op.save_out:
        node.out_array = result
        node.out_version = (out._vc, out._vc[0])
    node.res = res
    if graph._anomaly.enabled:
        graph._anomaly.on_forward(node, inputs, out)
    return out


def _apply_mixed(op, inputs, attrs):
    # Slow path: 0-d CPU tensors join an op on another device (as in PyTorch).
    for x in inputs:
        if isinstance(x, Tensor):
            x._device = as_device(x._device)  # a device equal to, but not, the canonical one
    dev = _common_device(op, inputs)
    moved = tuple(x.to(dev) if isinstance(x, Tensor) and x._device is not dev else x
                  for x in inputs)
    return apply(op, moved, attrs)
