"""The autograd graph's node and the grad-mode switch.

A `Node` records one op application: the op, one edge per input (the input's node, the input
itself when it is a leaf that requires grad, or None), the metadata the engine checks each
gradient against, and the residuals the VJP needs. It holds its output only as an array
(never the output Tensor), so a graph has no reference cycles and reference counting alone
frees it.

Imports nothing from tensorgrad but errors.
"""

import functools
import inspect
import itertools
import threading
import weakref

from ..errors import GraphError


class _GradMode(threading.local):
    def __init__(self):
        self.enabled = True
        self.inference = False


_mode = _GradMode()


def is_grad_enabled():
    """True where ops record the graph (the default)."""
    return _mode.enabled


def is_inference_mode_enabled():
    """True inside `tg.inference_mode()`."""
    return _mode.inference


def _decorate(make_ctx, fn):
    """`fn` run inside a fresh `make_ctx()`: a generator function's body too, at each resume."""
    if inspect.isgeneratorfunction(fn):
        return _wrap_generator(make_ctx, fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with make_ctx():
            return fn(*args, **kwargs)
    return wrapper


def _wrap_generator(make_ctx, fn):
    # As PyTorch's: the mode is set while the generator's body runs and restored at each
    # yield, so between `next()` calls the caller's mode applies; send, throw and close are
    # forwarded to the body, inside the mode.
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        gen = fn(*args, **kwargs)
        try:
            with make_ctx():
                response = gen.send(None)
            while True:
                try:
                    request = yield response
                except GeneratorExit:
                    with make_ctx():
                        gen.close()
                    raise
                except BaseException as exc:
                    with make_ctx():
                        response = gen.throw(exc)
                else:
                    with make_ctx():
                        response = gen.send(request)
        except StopIteration as stop:
            return stop.value
    return wrapper


class _ModeContext:
    """A grad-mode context manager that also decorates functions and generator functions."""

    def __call__(self, fn):
        return _decorate(self._clone, fn)

    def _clone(self):
        return self.__class__()


class set_grad_enabled(_ModeContext):
    """Context manager (and decorator) that turns recording on or off.

    >>> import tensorgrad as tg
    >>> with tg.set_grad_enabled(False):
    ...     tg.is_grad_enabled()
    False
    """

    def __init__(self, mode):
        if not isinstance(mode, bool):  # as PyTorch: not an int, nor a NumPy or tensor bool
            kind = type(mode)
            name = kind.__qualname__
            if kind.__module__ != "builtins":
                name = f"{kind.__module__}.{name}"
            raise TypeError(f"set_grad_enabled: mode must be a bool, got {name}\n  hint: pass "
                            "True or False, e.g. tg.set_grad_enabled(bool(flag))")
        self.mode = mode
        self.prev = _mode.enabled
        _mode.enabled = mode  # PyTorch's set_grad_enabled also acts as a plain call

    def __enter__(self):
        _mode.enabled = self.mode
        return self

    def __exit__(self, *exc):
        _mode.enabled = self.prev
        return False

    def __call__(self, fn):
        _mode.enabled = self.prev  # as a decorator, the mode applies only inside fn
        return super().__call__(fn)

    def _clone(self):
        return set_grad_enabled(self.mode)


class _FixedMode(_ModeContext):
    """no_grad and enable_grad: one fixed mode, entered anew by each `with`."""

    mode = True

    def __new__(cls, fn=None):
        # `@tg.no_grad` without parentheses decorates too, as in PyTorch.
        self = super().__new__(cls)
        return self if fn is None else self(fn)

    def __init__(self, fn=None):
        pass

    def __enter__(self):
        self.prev = _mode.enabled
        _mode.enabled = self.mode
        return self

    def __exit__(self, *exc):
        _mode.enabled = self.prev
        return False


class no_grad(_FixedMode):
    """Ops inside record nothing: `with tg.no_grad(): w -= lr * w.grad`."""

    mode = False


class enable_grad(_FixedMode):
    """Turn recording back on inside a `no_grad` block."""

    mode = True


class inference_mode(_ModeContext):
    """PyTorch's `inference_mode`; here the same as `no_grad` (mode=False: as `enable_grad`).

    PyTorch's inference tensors (no version counter, no later use in recorded ops) are an
    optimisation tensorgrad has no counterpart for, so this only switches recording off and
    makes `tg.is_inference_mode_enabled()` true.

    >>> import tensorgrad as tg
    >>> x = tg.ones(2, requires_grad=True)
    >>> with tg.inference_mode():
    ...     (x * 2).requires_grad, tg.is_inference_mode_enabled()
    (False, True)
    """

    def __new__(cls, mode=True):
        if isinstance(mode, bool):
            return super().__new__(cls)
        return cls()(mode)  # bare `@tg.inference_mode`, as in PyTorch

    def __init__(self, mode=True):
        self.mode = mode

    def __enter__(self):
        self.prev = _mode.enabled, _mode.inference
        _mode.enabled, _mode.inference = not self.mode, self.mode
        return self

    def __exit__(self, *exc):
        _mode.enabled, _mode.inference = self.prev
        return False

    def _clone(self):
        return inference_mode(self.mode)


class Node:
    """One recorded op application (PyTorch's `grad_fn`)."""

    __slots__ = ("op", "edges", "in_meta", "needs_input_grad", "attrs", "inputs", "versions",
                 "out_array", "out_meta", "out_version", "res", "freed", "pre_hooks",
                 "retain_ref", "trace", "seq", "__weakref__")

    def __init__(self, op, edges, in_meta, needs_input_grad, attrs):
        # PyTorch's sequence number: a node is made after the nodes of its inputs, so it is
        # higher than theirs, and the engine runs nodes highest first (see engine.py).
        self.seq = _next_seq()
        self.op = op
        self.edges = edges
        self.in_meta = in_meta
        self.needs_input_grad = needs_input_grad
        self.attrs = attrs
        self.inputs = None        # saved inputs (tensors and scalars) if the op asked for them
        self.versions = None      # (version counter, version at save) per saved tensor
        self.out_array = None     # saved output array if the op asked for it
        self.out_meta = None      # (shape, dtype, device) of the output
        self.out_version = None
        self.res = None           # the forward's non-differentiable residuals
        self.freed = False
        self.pre_hooks = None     # hooks registered on the (non-leaf) output tensor
        self.retain_ref = None    # weakref to the output tensor when it retains its grad
        self.trace = None         # creation stack, recorded in anomaly mode

    def name(self):
        n = self.op.name
        if n.lstrip("_")[:1].isupper():  # a custom Function, named by its (CamelCase) class
            return f"{n}Backward"
        # PyTorch's naming scheme (MulBackward0), from tensorgrad's op names: where PyTorch
        # dispatches to another kernel the name differs (MatmulBackward0 for its MmBackward0).
        return f"{n.title().replace('_', '')}Backward0"

    def __repr__(self):
        return f"<{self.name()}>"

    # -- what VJPs read ------------------------------------------------------------------
    @property
    def out(self):
        """The op's output as a Tensor; graph-connected to this node under create_graph."""
        Tensor = _tensor_class()
        if self.out_array is None:
            raise self._freed_error() if self.freed else GraphError(
                f"{self.op.name}: the VJP reads ctx.out but the op did not save its output "
                "(register it with save_out=True)")
        shape, dtype, device = self.out_meta
        if _mode.enabled:
            return Tensor._wrap(self.out_array, device, True, self, self.out_version[0])
        return Tensor._wrap(self.out_array, device, False, None, self.out_version[0])

    @property
    def saved_tensors(self):
        return self.inputs

    def _freed_error(self):
        return GraphError(
            f"{self.op.name}: trying to backward through the graph a second time (or to read "
            "saved values after they were freed); the saved values were released by the first "
            "backward.\n  hint: pass retain_graph=True to the first backward() or "
            "autograd.grad() call if you need to backward through the graph twice")

    def check_versions(self):
        """GraphError if a tensor this node saved was modified in place since."""
        if self.versions:
            for i, (vc, version) in enumerate(self.versions):
                if vc is not None and vc[0] != version:
                    # A Function saves what ctx.save_for_backward got: inputs or outputs.
                    which = "saved tensor" if self.op.family == "function" else "input"
                    raise self._version_error(f"{which} {i}", version, vc[0])
        if self.out_version is not None:
            vc, version = self.out_version
            if vc[0] != version:
                raise self._version_error("its output", version, vc[0])

    def _version_error(self, which, saved, now):
        return GraphError(
            f"{self.op.name}: one of the tensors needed for gradient computation ({which} of "
            f"{self.name()}) has been modified by an in-place operation: it was at version "
            f"{saved} when saved and is now at version {now}.\n  hint: use the out-of-place "
            "op (x = x + y instead of x += y), or .clone() the tensor before modifying it")

    def release(self):
        """Drop the residuals once the VJP has run (unless retain_graph)."""
        if self.inputs is not None or self.out_array is not None or self.res is not None:
            self.freed = True
        self.inputs = self.versions = self.out_array = self.out_version = self.res = None


_next_seq = itertools.count().__next__


# The leaves that have (or had) hooks, by id: while there are none, backward needs no count
# of how many edges reach each leaf, and skips the walk over the graph that makes it.
_hooked_leaves = {}


def _note_hooked_leaf(t):
    key = id(t)
    if key not in _hooked_leaves:
        _hooked_leaves[key] = weakref.ref(t, lambda _, key=key: _hooked_leaves.pop(key, None))


class _AnomalyState:
    """Whether anomaly mode is on; `autograd/anomaly.py` installs the checks it runs."""

    enabled = False

    def on_forward(self, node, inputs, out):
        pass

    def on_backward(self, node, g, grads):
        pass


_anomaly = _AnomalyState()


def _tensor_class():
    # graph.py is imported before tensor.py exists; look the class up once, then keep it.
    global _Tensor
    if _Tensor is None:
        from ..tensor import Tensor
        _Tensor = Tensor
    return _Tensor


_Tensor = None
