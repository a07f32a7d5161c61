"""The backward pass: reverse topological order, iterative, freeing as it goes.

`run_backward` visits each node once, after every consumer has added its gradient: nodes
wait in a heap keyed by their sequence number (a node is numbered after the nodes of its
inputs), and the highest runs first, as in PyTorch's engine. Nothing recurses, so a
100 000-node chain is fine, and the graph is walked ahead of time (with an explicit stack)
only for autograd.grad's targets and for leaves with hooks. For each node it runs the tensor hooks, calls the op's VJP, checks every returned
gradient against its input's shape, dtype and device, and frees the node's residuals unless
`retain_graph`. A leaf collects its contributions until the last one arrives, so a hook on
a leaf used twice fires once, with the sum; a leaf with hooks is finished right then,
mid-backward (DDP's allreduce overlaps the rest of the graph), the others at the end.

With `targets` (autograd.grad, backward(inputs=...)) hooks run as PyTorch runs them: a leaf
target's on its summed gradient at the end, a non-leaf's when its node is reached, and what
they leave is the target's gradient (but a non-leaf target that leads on to another target
gives the gradient that reached it); hooks of tensors that lead to no target never run.

VJPs run with grad mode off, or on under `create_graph` (so gradients are differentiable).
"""

import itertools
import sys
from heapq import heappop, heappush

from ..errors import DeviceError, DTypeError, GraphError, ShapeError
from ..tensor import Tensor
from . import graph
from .graph import Node


def _toposort(roots):
    """Nodes reachable from `roots`, each after all the nodes that consume it, and, for each
    leaf with hooks, how many edges reach it (leaf -> count): its gradient is complete,
    and its hooks can run, when that many contributions have arrived."""
    order, seen, uses = [], set(), {}
    for root in roots:
        if root in seen:
            continue
        seen.add(root)
        stack = [(root, iter(root.edges))]
        while stack:
            node, it = stack[-1]
            for e in it:
                if type(e) is Node:
                    if e not in seen:
                        seen.add(e)
                        stack.append((e, iter(e.edges)))
                        break
                elif e is not None and e._hooks:
                    uses[e] = uses.get(e, 0) + 1
            else:
                stack.pop()
                order.append(node)
    order.reverse()
    return order, uses


def _leads_to(order, targets):
    """The subset of `order` from which a target (node or leaf) can be reached."""
    keep = set()
    for node in reversed(order):  # children first
        for e in node.edges:
            if e is not None and (id(e) in targets or type(e) is Node and e in keep):
                keep.add(node)
                break
    return keep


def _check_grads(node, grads):
    """Every VJP's result is checked: the classic wrong-shaped-gradient bug cannot pass.
    Returns the gradients as a tuple."""
    if not isinstance(grads, (tuple, list)) or len(grads) != len(node.edges):
        n = len(grads) if isinstance(grads, (tuple, list)) else 1
        who = f"{node.op.name}.backward" if node.op.family == "function" else "its VJP"
        raise ShapeError(f"{node.op.name}: {who} returned {n} gradient(s) for "
                         f"{len(node.edges)} input(s); {_culprit(node)}")
    for i, g in enumerate(grads):
        meta = node.in_meta[i]
        if g is None or meta is None:
            continue
        a = getattr(g, "_array", None)
        if a is None or a.shape != meta[0] or a.dtype != meta[1] or g._device is not meta[2]:
            _grad_mismatch(node, i, g, meta)
    return tuple(grads)


def _culprit(node):
    """Who returned the wrong gradient: a custom Function's own backward, or a built-in op."""
    if node.op.family == "function":
        return f"{node.op.name}.backward must return one gradient per forward input, shaped " \
               "like it (or None)"
    return "this is a bug in the op's VJP"


def _grad_mismatch(node, i, g, meta):
    shape, dtype, device = meta
    a = getattr(g, "_array", None)
    if a is None:
        raise ShapeError(f"{node.op.name}: its VJP returned a {type(g).__name__} for input "
                         f"{i}; expected a Tensor of shape {tuple(shape)}")
    if a.shape != shape:
        raise ShapeError(f"{node.op.name}: the gradient for input {i} has shape "
                         f"{tuple(a.shape)} but the input has shape {tuple(shape)}; "
                         f"{_culprit(node)} (a missing un-broadcast or reduction?)")
    if a.dtype != dtype:
        raise DTypeError(f"{node.op.name}: the gradient for input {i} has dtype {a.dtype} "
                         f"but the input has dtype {dtype}; {_culprit(node)}")
    if g._device != device:
        raise DeviceError(f"{node.op.name}: the gradient for input {i} is on {g._device} "
                          f"but the input is on {device}; {_culprit(node)}")
    g._device = device  # equal but not the canonical object: adopt the canonical one


def _call_hooks(hooks, g, handed_out):
    """Run `hooks` on `g`; returns the gradient they leave. A gradient a hook kept (logging
    hooks append it to a list) or returned is marked handed out: .grad, which the next
    backward adds into in place, must not be the storage of a tensor the user holds."""
    for fn in list(hooks.values()):
        before = _references(g)
        new = fn(g)
        if _references(g) > before:
            handed_out.add(id(g._array))
        if new is not None:
            _check_hook_result(fn, g, new)
            handed_out.add(id(new._array))  # its owner may hold it too
            g = new
    return g


def _references(t):
    """References to a gradient and to its array (a kept view holds the array). Where the
    interpreter counts none (PyPy), a rising tick: every hook counts as having kept it."""
    if _getrefcount is None:
        return next(_TICK)
    return _getrefcount(t) + _getrefcount(t._array)


_getrefcount = getattr(sys, "getrefcount", None)
_TICK = itertools.count()


def _check_hook_result(fn, g, new):
    """A hook may replace a gradient, with one of the same shape, dtype and device."""
    name = getattr(fn, "__name__", type(fn).__name__)
    if not isinstance(new, Tensor):
        raise TypeError(f"hook {name!r} returned a {type(new).__name__}; a tensor hook returns "
                        "None or a Tensor (the new gradient)")
    a, b = g._array, new._array
    if a.shape != b.shape:
        raise ShapeError(f"hook {name!r} changed the gradient's shape from {tuple(a.shape)} "
                         f"to {tuple(b.shape)}\n  hint: return a gradient shaped like the tensor")
    if a.dtype != b.dtype:
        raise DTypeError(f"hook {name!r} changed the gradient's dtype from {a.dtype} to "
                         f"{b.dtype}\n  hint: cast what the hook returns, e.g. new.to(g.dtype)")
    if new._device != g._device:
        raise DeviceError(f"hook {name!r} moved the gradient from {g._device} to "
                          f"{new._device}\n  hint: return a gradient on {g._device}")


def _output_hooks(node, g, create_graph, handed_out, held):
    """The hooks of a non-leaf tensor, then its retained .grad; returns the gradient.

    A VJP may hand one gradient to several inputs (add's does): a hook that edits its
    gradient in place must then edit a copy, not what the other inputs still get. `held`:
    the dicts of gradients still in flight; searched only when the tensor has hooks."""
    if node.pre_hooks:
        if _shares_held(g, held):
            g = g.clone() if create_graph else Tensor._wrap(g._array.copy(), g._device)
        g = _call_hooks(node.pre_hooks, g, handed_out)
    if node.retain_ref is not None:
        t = node.retain_ref()
        if t is not None:  # as PyTorch: a copy of its own, summed over backward calls
            if not create_graph:
                g_own = Tensor._wrap(g._array.copy(), g._device)
                t._grad = g_own if t._grad is None else t._grad + g_own
            else:
                t._grad = g.clone() if t._grad is None else t._grad + g
    return g


def _shares_held(g, held):
    """Whether `g`'s array is, or shares a base with, the array of a gradient in `held`
    (dicts of gradients, or of Functions' gradient bundles)."""
    root = _root_array(g._array)
    for d in held:
        for x in d.values():
            for t in (x,) if type(x) is Tensor else getattr(x, "grads", None) or ():
                if t is not None and _root_array(t._array) is root:
                    return True
    return False


def _root_array(a):
    """The array that owns `a`'s memory (`a` itself, or the end of its chain of bases)."""
    b = a.base
    while b is not None:  # a NumPy base may be a bytes object: it has no .base
        a, b = b, getattr(b, "base", None)
    return a


def _add(a, b):
    """Sum two gradients of one tensor (same shape, dtype, device: the check guarantees it)."""
    if a is None:
        return b
    if type(a) is not Tensor:
        return a + b  # a Function's multi-output gradient bundle sums itself
    backend = a._device._backend
    if not graph._mode.enabled and backend is not None and not backend.needs_device_context:
        # Outside create_graph the sum is a plain array add: nothing to record, and the
        # check already guaranteed what the op's dispatch would check again.
        return Tensor._wrap(a._array + b._array, a._device)
    if not _ADD:
        from ..ops.registry import OPS, apply  # the ops import the engine's package: look late
        _ADD.extend((apply, OPS["add"]))
    return _ADD[0](_ADD[1], (a, b))  # straight to the op: no promotion or broadcast checks


_ADD = []  # [apply, the add op], filled on first use


def run_backward(roots, root_grads, retain_graph, create_graph, targets=None,
                 accumulate=False):
    """Backpropagate `root_grads` from `roots` (tensors).

    With `targets` (a list of tensors), only gradients that lead to a target are computed,
    and the targets' gradients (after their hooks) are returned instead of accumulating into
    leaves' `.grad` (what `autograd.grad` does); with `accumulate` too, the leaf targets'
    gradients go to their `.grad` (what `backward(inputs=...)` does: non-leaf targets must
    retain their grad). Returns None otherwise.
    """
    prev = graph._mode.enabled
    graph._mode.enabled = bool(create_graph)
    try:
        return _run(roots, root_grads, retain_graph, create_graph, targets, accumulate)
    finally:
        graph._mode.enabled = prev


def _run(roots, root_grads, retain_graph, create_graph, targets, accumulate):
    pending = {}      # node -> gradient of its output so far
    ready = []        # heap of (-node.seq, node): the nodes that have a gradient, latest first
    # Leaves are keys by identity (Tensor's hash is object's), never compared with ==.
    leaf_grads = {}   # leaf -> its summed gradient so far, leaves still collecting
    for t, g in zip(roots, root_grads):
        node = t._node
        if node is None:
            prev = leaf_grads.get(t)
            leaf_grads[t] = g if prev is None else _add(prev, g)
        elif node in pending:
            pending[node] = _add(pending[node], g)
        else:
            pending[node] = g
            heappush(ready, (-node.seq, node))
    # Arrays the caller still holds (root gradients, retained grads) are never adopted as .grad.
    handed_out = set()
    for g in root_grads:
        handed_out.add(id(g._array))
    # A leaf with hooks has them run, and its gradient go to .grad, as soon as its last
    # contribution arrives, not after the whole graph: hooks that start communication (DDP's
    # bucketed allreduce) then overlap the rest of backward. Other leaves wait for the end,
    # when no gradient is in flight any more. autograd.grad (targets) only collects.
    early = targets is None
    anomaly = graph._anomaly
    wanted = None
    uses = {}
    captured = {}     # target node -> its gradient (autograd.grad)
    held = (pending, leaf_grads, captured)  # gradients in flight, for _output_hooks
    if targets is not None or graph._hooked_leaves:
        # Only then is the graph walked ahead: to count the edges that reach each leaf with
        # hooks, and to find the nodes that lead to a target.
        order, uses = _toposort([t._node for t in roots if t._node is not None])
        if targets is not None:
            target_ids = {id(t._node if t._node is not None else t) for t in targets}
            wanted = _leads_to(order, target_ids)
            target_nodes = {t._node for t in targets if t._node is not None}
    # A node's sequence number is higher than those of the nodes it consumes, so taking the
    # highest first runs every node after all its consumers have added their gradients, as
    # PyTorch's ready queue does: no topological sort needed.
    while ready:
        node = heappop(ready)[1]
        g = pending.pop(node)
        if wanted is not None and (node in target_nodes or node not in wanted):
            if node not in wanted:
                # As PyTorch: a target no other target lies behind gets its hooks (and its
                # retained .grad), and what they leave is its gradient. One that leads on to
                # another target is captured as it arrives; its hooks run on the way there.
                if node in target_nodes:
                    if node.pre_hooks is not None or node.retain_ref is not None:
                        g = _output_hooks(node, g, create_graph, handed_out, held)
                    captured[node] = g
                continue
            captured[node] = g
        if node.pre_hooks is not None or node.retain_ref is not None:
            g = _output_hooks(node, g, create_graph, handed_out, held)
        if node.versions is not None or node.out_version is not None or node.freed:
            if node.freed:
                raise node._freed_error()
            node.check_versions()
        attrs = node.attrs
        grads = node.op.vjp(node, g, **attrs) if attrs else node.op.vjp(node, g)
        edges = node.edges
        if type(grads) is not tuple or len(grads) != len(edges) or anomaly.enabled:
            grads = _check_grads(node, grads)
            if anomaly.enabled:
                anomaly.on_backward(node, g, grads)
        if not retain_graph and (node.inputs is not None or node.out_array is not None
                                 or node.res is not None):
            node.release()
        # Every gradient is checked against its input's metadata as it is handed on.
        for e, ge, meta in zip(edges, grads, node.in_meta):
            if e is None or ge is None:
                continue
            if type(ge) is not Tensor or ge._array.shape != meta[0] \
                    or ge._array.dtype != meta[1] or ge._device is not meta[2]:
                _check_grads(node, grads)  # raises, naming the input (or adopts the device)
            if type(e) is Node:
                prev = pending.get(e)
                if prev is None:
                    pending[e] = ge
                    heappush(ready, (-e.seq, e))
                else:
                    pending[e] = _add(prev, ge)
                continue
            prev = leaf_grads.get(e)
            total = leaf_grads[e] = ge if prev is None else _add(prev, ge)
            if early and e in uses:
                left = uses[e] = uses[e] - 1
                if left == 0:
                    del leaf_grads[e]
                    if total is ge and _in_flight(ge, g, grads):
                        # Still flowing on to other inputs: the hooks (which may edit it in
                        # place) and .grad get a copy of their own.
                        total = ge.clone() if create_graph else \
                            Tensor._wrap(ge._array.copy(), ge._device)
                    _accumulate(e, total, create_graph, handed_out, in_flight=True)
    if targets is not None:
        return _target_grads(targets, leaf_grads, captured, create_graph, handed_out,
                             accumulate)
    for leaf, g in leaf_grads.items():  # leaves behind a branch that got no gradient
        _accumulate(leaf, g, create_graph, handed_out)
    return None


def _in_flight(ge, g, grads):
    """Whether a VJP's output `ge` shares its array with gradients still flowing through the
    graph (the VJP's incoming `g` passed on, or viewed, or one output given to two inputs).
    Adopted as a leaf's .grad mid-backward, a later in-place write there (a hook's) would
    change what the rest of the graph reads."""
    root = _root_array(ge._array)
    for x in (g, *grads):
        # g is a bundle (not a Tensor) at a multi-output Function's node: its members flow
        # nowhere else, so only the VJP's other outputs can share with ge there.
        if isinstance(x, Tensor) and x is not ge and _root_array(x._array) is root:
            return True
    return ge is g


def _target_grads(targets, leaf_grads, captured, create_graph, handed_out, accumulate):
    """The targets' gradients, a leaf's after its hooks (run once, however often the leaf is
    listed; as PyTorch, hooks of leaves that are not targets never run). With `accumulate`,
    the leaves' gradients go to their .grad instead (hooks included) and None is returned."""
    done = {}  # leaf -> its gradient after its hooks
    for t in targets:
        if t._node is not None or t in done:
            continue
        g = leaf_grads.get(t)
        if g is not None:
            if accumulate:
                _accumulate(t, g, create_graph, handed_out)
            elif t._hooks:
                g = _call_hooks(t._hooks, g, handed_out)
        done[t] = g
    if accumulate:
        return None
    return [done[t] if t._node is None else captured.get(t._node) for t in targets]


def _accumulate(leaf, g, create_graph, handed_out, in_flight=False):
    """Run the leaf's hooks on its whole gradient `g`, then add it to `leaf.grad`
    (`in_flight`: mid-backward, while other gradients still flow through the graph)."""
    if leaf._hooks:
        g = _call_hooks(leaf._hooks, g, handed_out)
    grad = leaf._grad  # the slot: every gradient here was checked against the leaf
    if grad is None:
        if g._rg and not create_graph:  # a VJP's own results are never on the graph here
            g = g.detach()
        a = g._array
        base = a.base
        # Optimizers update .grad in place, so it may share memory with nothing the caller
        # or another leaf holds, and must be writable (not a broadcast view). A view of a
        # fresh array (the transposed product in a linear layer's gradient) is kept as is:
        # copying it cost as much as the matmul that made it.
        if (id(a) in handed_out or (base is not None and id(base) in handed_out)
                or not getattr(a.flags, "writeable", True)):
            g = g.clone() if create_graph else type(g)._wrap(a.copy(), g._device)
            a, base = g._array, None
        handed_out.add(id(a))
        if base is not None:
            handed_out.add(id(base))
        leaf._grad = g
    elif create_graph or in_flight and id(grad._array) in handed_out:
        # Out of place: under create_graph the sum is differentiable; and mid-backward, a
        # .grad the caller passed in as a root gradient is still read by the rest of the graph.
        leaf._grad = grad + (g if create_graph else g.detach())
    else:  # the common case, a step after the first: a plain array sum, no tensor made
        grad._array += g._array
        grad._vc[0] += 1


def backward(tensor, gradient=None, retain_graph=None, create_graph=False, inputs=None):
    """`tensor.backward(...)`: accumulate gradients into the leaves' `.grad`."""
    if gradient is None and inputs is None and isinstance(tensor, Tensor):
        # loss.backward(), the call made once per training step: no list plumbing.
        g = _root_grad(tensor, None, "backward")
        run_backward((tensor,), (g,), create_graph if retain_graph is None else retain_graph,
                     create_graph)
        return
    tensors = list(tensor) if isinstance(tensor, (list, tuple)) else [tensor]
    if gradient is None:
        gradients = [None] * len(tensors)
    elif isinstance(gradient, (list, tuple)):
        gradients = list(gradient)
    else:
        gradients = [gradient]
    grads = [_root_grad(t, g, "backward") for t, g in zip(tensors, gradients)]
    if retain_graph is None:
        retain_graph = create_graph
    if inputs is not None:
        inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
        for t in inputs:
            if t._node is not None:
                t.retain_grad()  # as PyTorch: a non-leaf input keeps its .grad from now on
        run_backward(tensors, grads, retain_graph, create_graph, targets=inputs,
                     accumulate=True)
        return
    run_backward(tensors, grads, retain_graph, create_graph)


def _root_grad(t, g, who):
    if not t._rg:
        raise GraphError(f"{who}: element 0 of tensors does not require grad and does not "
                         "have a grad_fn\n  hint: make a leaf with requires_grad=True, and do "
                         "not compute the loss under tg.no_grad()")
    if g is None:
        if t._array.size != 1:
            raise ShapeError(f"{who}: grad can be implicitly created only for scalar outputs; "
                             f"this output has shape {tuple(t.shape)}\n  hint: reduce it first "
                             "(loss.sum(), loss.mean()) or pass gradient=")
        xp = (t._device._backend or t._backend).xp
        ones = xp.empty_like(t._array)
        ones.fill(1)  # twice as fast as xp.ones_like on the one-element arrays met here
        return Tensor._wrap(ones, t._device)
    if not isinstance(g, Tensor):
        from ..creation import tensor as make
        g = make(g, dtype=t.dtype, device=t.device)
    if g.shape != t.shape:
        raise ShapeError(f"{who}: the gradient has shape {tuple(g.shape)} but the output has "
                         f"shape {tuple(t.shape)}\n  hint: pass a gradient shaped like the output")
    if g.dtype is not t.dtype:
        raise DTypeError(f"{who}: the gradient has dtype {g.dtype.name} but the output has "
                         f"dtype {t.dtype.name}\n  hint: pass gradient.to(tg.{t.dtype.name})")
    if g.device != t.device:
        raise DeviceError(f"{who}: the gradient is on {g.device} but the output is on "
                          f"{t.device}\n  hint: pass gradient.to('{t.device}')")
    return g
