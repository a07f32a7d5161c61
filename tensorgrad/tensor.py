"""The Tensor: an array on a device, plus what autograd needs to know about it.

This module holds storage and metadata only: no math. Operators and math methods are
attached by `tensorgrad.ops` (each op family lists its methods), so an op is defined once.

Imports core modules (dtypes, devices, backend_api, autograd.graph); never a backend module.
"""

import weakref

from . import backend_api
from .autograd import graph
from .devices import as_device, device
from .dtypes import _FROM_NP
from .errors import DeviceError, DTypeError, GraphError

_CPU = device("cpu")


class Tensor:
    """An n-dimensional array that records the ops applied to it for autograd.

    Create tensors with `tg.tensor`, `tg.zeros`, `tg.randn`, ...:

    >>> import tensorgrad as tg
    >>> x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> (x * x).sum().backward()
    >>> x.grad
    tensor([2., 4., 6.])
    """

    # `_base` is set only on views (the tensor whose storage they view): read with getattr.
    __slots__ = ("_array", "_device", "_rg", "_node", "_grad", "_vc", "_hooks", "_base",
                 "__weakref__")
    __array_priority__ = 1000  # numpy scalars defer to our reflected operators

    def __init__(self, data, *, dtype=None, device=None, requires_grad=False):
        from .creation import tensor
        from .dtypes import get_default_dtype
        # As torch.Tensor(data): the default dtype whatever the data (tg.tensor infers it).
        t = tensor(data, dtype=dtype or get_default_dtype(), device=device,
                   requires_grad=requires_grad)
        self._array, self._device, self._rg = t._array, t._device, t._rg
        self._node, self._grad, self._vc, self._hooks = None, None, [0], None

    @classmethod
    def _wrap(cls, array, device, requires_grad=False, node=None, vc=None):
        """Wrap a backend array without copying (internal)."""
        t = object.__new__(cls)
        t._array = array
        t._device = device
        t._rg = requires_grad
        t._node = node
        t._grad = None
        t._vc = [0] if vc is None else vc
        t._hooks = None
        return t

    # -- metadata --------------------------------------------------------------------------
    @property
    def shape(self):
        return self._array.shape

    def size(self, dim=None):
        return self._array.shape if dim is None else self._array.shape[dim]

    @property
    def ndim(self):
        return self._array.ndim

    def dim(self):
        return self._array.ndim

    def numel(self):
        return self._array.size

    nelement = numel

    @property
    def dtype(self):
        return _FROM_NP[self._array.dtype]

    @property
    def device(self):
        return self._device

    @property
    def is_cuda(self):
        return self._device.type == "cuda"

    def is_floating_point(self):
        return self.dtype.is_floating_point

    def element_size(self):
        return self._array.itemsize

    @property
    def itemsize(self):
        return self._array.itemsize

    @property
    def nbytes(self):
        return self._array.nbytes

    @property
    def _backend(self):
        return backend_api.get_backend(self._device.type)

    @property
    def array(self):
        """The raw backend array (`numpy.ndarray` or `cupy.ndarray`), sharing storage."""
        return self._array

    @property
    def data(self):
        """A tensor sharing storage, detached from the graph; assigning replaces the storage.

        As in PyTorch, autograd does not see writes through `.data`: it has a version counter
        of its own (`.detach()` shares this tensor's), and assigning it bumps no version.
        """
        return Tensor._wrap(self._array, self._device)

    @data.setter
    def data(self, other):
        if not isinstance(other, Tensor):
            raise TypeError(f"Tensor.data: expected a Tensor, got {type(other).__name__}")
        if self._rg and not other.dtype.is_floating_point:
            raise DTypeError(
                f"Tensor.data: this tensor requires grad, so its data must be floating point, "
                f"got {other.dtype.name}\n  hint: convert it first, e.g. x.data = new.float()")
        self._array = other._array
        self._device = other._device

    @property
    def _version(self):
        return self._vc[0]

    # -- autograd state ---------------------------------------------------------------------
    @property
    def grad(self):
        """The gradient accumulated by backward (None until then), a Tensor like this one."""
        return self._grad

    @grad.setter
    def grad(self, g):
        # Only what fits may be assigned: the engine adds into .grad in place, and optimizers
        # update this tensor with it. Hot code that sets a checked gradient writes `_grad`.
        if g is not None and (type(g) is not Tensor or g._array.shape != self._array.shape
                              or g._array.dtype != self._array.dtype
                              or g._device is not self._device):
            _check_grad(self, g)
        self._grad = g

    @grad.deleter
    def grad(self):
        self._grad = None

    @property
    def requires_grad(self):
        return self._rg

    @requires_grad.setter
    def requires_grad(self, flag):
        self.requires_grad_(flag)

    def requires_grad_(self, requires_grad=True):
        if self._node is not None and not requires_grad:
            raise GraphError(
                "requires_grad_: you can only change requires_grad of leaf tensors; this one was "
                f"made by {self._node.op.name}\n  hint: use .detach() for a tensor without grad")
        if requires_grad and not self.dtype.is_floating_point:
            raise DTypeError(
                f"requires_grad_: only floating-point tensors can require gradients, this one is "
                f"{self.dtype}\n  hint: convert first, e.g. x.float().requires_grad_()")
        self._rg = bool(requires_grad)
        return self

    @property
    def is_leaf(self):
        return self._node is None

    @property
    def grad_fn(self):
        return self._node

    def detach(self):
        """The same storage, cut from the graph."""
        return Tensor._wrap(self._array, self._device, False, None, self._vc)

    def detach_(self):
        self._node = None
        self._rg = False
        return self

    def retain_grad(self):
        """Keep `.grad` on this non-leaf tensor after backward."""
        if not self._rg:
            raise GraphError("retain_grad: can't retain_grad on Tensor that has "
                             "requires_grad=False\n  hint: only tensors that require grad get "
                             "a gradient; call it on a tensor computed from one that does")
        if self._node is None:
            return self  # leaves keep their grad anyway
        self._node.retain_ref = weakref.ref(self)
        return self

    @property
    def retains_grad(self):
        n = self._node
        return n is not None and n.retain_ref is not None and n.retain_ref() is self

    def register_hook(self, hook):
        """Call `hook(grad)` when this tensor's gradient is computed; it may return a new one.

        A hook on a leaf used several times fires once, with the summed gradient.
        """
        if not self._rg:
            raise GraphError("register_hook: cannot register a hook on a tensor that does not "
                             "require grad\n  hint: call .requires_grad_() on the leaf first")
        if self._node is None:
            if self._hooks is None:
                self._hooks = {}
                graph._note_hooked_leaf(self)
            hooks = self._hooks
        else:
            if self._node.pre_hooks is None:
                self._node.pre_hooks = {}
            hooks = self._node.pre_hooks
        return _HookHandle(hooks, hook)

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """Accumulate d(self)/d(leaf) into every leaf's `.grad` (see tg.autograd.backward)."""
        engine = _ENGINE or _load_engine()
        engine.backward(self, gradient, retain_graph, create_graph, inputs=inputs)

    # -- conversion to Python and NumPy -----------------------------------------------------
    def numpy(self, *, force=False):
        """The data as a `numpy.ndarray` (shares storage on the CPU, copies with force=True)."""
        if self._rg and not force:
            raise GraphError("numpy: can't call numpy() on a tensor that requires grad\n"
                             "  hint: use tensor.detach().numpy()")
        if self._device.type != "cpu" and not force:
            raise DeviceError(f"numpy: the tensor is on {self._device}; NumPy arrays live on "
                              "the CPU\n  hint: use tensor.cpu().numpy()")
        return self._backend.to_numpy(self._array)

    def __array__(self, dtype=None, copy=None):
        if self._device.type != "cpu":
            raise DeviceError(f"__array__: the tensor is on {self._device}; convert it with "
                              ".cpu() first (NumPy arrays live on the CPU)")
        a = self._array
        return a if dtype is None else a.astype(dtype, copy=False)

    def item(self):
        if self._array.size != 1:
            from .errors import ShapeError
            raise ShapeError(f"item: only one-element tensors can be converted to a Python "
                             f"number, this one has shape {tuple(self.shape)}\n  hint: reduce "
                             "it first (.sum(), .mean()) or index one element")
        return self._array.reshape(-1)[0].item()

    def tolist(self):
        return self._backend.to_numpy(self._array).tolist()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self.dtype.is_floating_point or self._array.size != 1:
            raise TypeError("only integer tensors of a single element can be used as an index")
        return int(self.item())

    def __bool__(self):
        if self._array.size != 1:
            raise RuntimeError(f"the truth value of a tensor with {self._array.size} elements "
                               "is ambiguous\n  hint: use .any() or .all()")
        return bool(self.item())

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

    __hash__ = object.__hash__

    def __deepcopy__(self, memo):
        """A copy with its own storage (leaves only, as in PyTorch): copy.deepcopy(model)."""
        if self._node is not None:
            raise GraphError("deepcopy: only leaf tensors (made by the user, not by an op) "
                             "can be deep-copied\n  hint: .detach() it first")
        new = type(self)._wrap(self._array.copy(), self._device, self._rg)
        memo[id(self)] = new
        if self._grad is not None:
            new._grad = self._grad.__deepcopy__(memo)
        return new

    def __reduce_ex__(self, protocol):
        """Pickling and copy.copy, as PyTorch's: the values, device and requires_grad, as a
        leaf. The graph, .grad and hooks stay behind: a graph's nodes are numbered per
        process, in the order they were made (the engine relies on it)."""
        return _rebuild, (type(self), self._array, str(self._device), self._rg)

    # -- DLPack --------------------------------------------------------------------------
    def __dlpack__(self, *args, **kwargs):
        return self._array.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self._array.__dlpack_device__()

    # -- devices ---------------------------------------------------------------------------
    def to(self, *args, dtype=None, device=None, copy=False, non_blocking=False):
        """`t.to("cuda")`, `t.to(tg.float64)`, `t.to(other)`, `t.to("cpu", tg.float16)`."""
        from .dtypes import dtype as dtype_cls
        for a in args:
            if isinstance(a, dtype_cls):
                dtype = a
            elif isinstance(a, Tensor):
                device, dtype = a.device, a.dtype
            else:
                device = a
        from .ops.shape import _to_device, to_dtype
        out = self
        if device is not None:
            target = as_device(device)
            if target != self._device:
                out = _to_device(out, target)
        if dtype is not None:
            out = to_dtype(out, dtype)
        if copy and out is self:
            out = self.clone()
        return out

    def cpu(self):
        return self.to(_CPU)

    def cuda(self, device=None):
        return self.to("cuda" if device is None else
                       (f"cuda:{device}" if isinstance(device, int) else device))

    def type(self, dtype=None):
        if dtype is None:
            return f"tensorgrad.{self.dtype.name}"
        return self.to(dtype)

    # -- display ---------------------------------------------------------------------------
    def __repr__(self):
        from .display import tensor_repr
        return tensor_repr(self)

    def __format__(self, spec):
        if self.ndim == 0 and spec:
            return format(self.item(), spec)
        return repr(self)


def _check_grad(t, g):
    """Raise if `g` cannot be `t`'s gradient (the setter's slow path; equal devices pass)."""
    if not isinstance(g, Tensor):
        kind = type(g)
        name = kind.__qualname__
        if kind.__module__ != "builtins":
            name = f"{kind.__module__}.{name}"
        raise TypeError(f"grad: assigned grad expected to be a Tensor or None but got grad of "
                        f"type {name}\n  hint: wrap it first, e.g. x.grad = tg.as_tensor(g)")
    if g.shape != t.shape:
        from .errors import ShapeError
        raise ShapeError(f"grad: assigned grad has shape {tuple(g.shape)} but the tensor has "
                         f"shape {tuple(t.shape)}\n  hint: assign a gradient of shape "
                         f"{tuple(t.shape)}, or None")
    if g.dtype is not t.dtype:
        raise DTypeError(f"grad: assigned grad has dtype {g.dtype.name} but the tensor has "
                         f"dtype {t.dtype.name}\n  hint: convert it first, e.g. "
                         f"x.grad = g.to(tg.{t.dtype.name})")
    if g.device != t.device:
        raise DeviceError(f"grad: assigned grad is on {g.device} but the tensor is on "
                          f"{t.device}\n  hint: move it first, e.g. x.grad = g.to('{t.device}')")


def _rebuild(cls, array, device_name, requires_grad):
    return cls._wrap(array, as_device(device_name), requires_grad)


class _HookHandle:
    """What `register_hook` returns: `.remove()` unregisters the hook."""

    _next_id = 0

    def __init__(self, hooks, fn):
        _HookHandle._next_id += 1
        self.id = _HookHandle._next_id
        self._hooks = hooks
        hooks[self.id] = fn

    def remove(self):
        self._hooks.pop(self.id, None)


def _load_engine():
    # The engine imports this module, so it is looked up on first use and then kept: an
    # import statement per backward() cost more than the rest of the call.
    global _ENGINE
    from .autograd import engine
    _ENGINE = engine
    return engine


_ENGINE = None


def is_tensor(obj):
    return isinstance(obj, Tensor)
