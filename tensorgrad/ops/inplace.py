"""In-place methods (`add_`, `mul_`, `zero_`, ...), augmented assignment and `x[idx] = v`.

Following PyTorch (shared/DESIGN.md section 4):
- where no gradient is recorded, the new value is written into the array itself, so views
  see it, and the tensor's version counter is bumped;
- where a gradient is recorded, the new value is computed out of place and the tensor object
  is rebased onto it (it becomes a non-leaf whose node is that op); the old storage's version
  is bumped too, so a node that saved the old value refuses to use it;
- where a gradient is recorded and the tensor is a view (`a[:2].mul_(2)`, `buf[1:].copy_(y)`),
  the tensor it views is rebased too, onto itself with the view's elements replaced, so it
  sees the write and both get their gradients, as with PyTorch's CopySlices. Other views
  taken earlier keep the old storage (as for any rebased tensor);
- on a leaf that requires grad, or a view of one, in grad mode, they raise GraphError.
"""

from ..autograd import graph
from ..errors import DTypeError, GraphError
from ..tensor import Tensor
from . import binary, elementwise, shape
from .broadcast import broadcast_shapes
from .registry import _backend_for


def _records(self, others):
    return graph._mode.enabled and (self._rg or any(
        isinstance(o, Tensor) and o._rg for o in others))


def _inplace(self, name, compute, others=()):
    """Apply `compute(x)` (an out-of-place expression of x and others) to self, in place."""
    if _records(self, others):
        if self._node is None and self._rg:
            raise GraphError(
                f"{name}: a leaf tensor that requires grad is being used in an in-place "
                "operation\n  hint: wrap parameter updates in `with tg.no_grad():`, or use the "
                "out-of-place op (x = x + y)")
        base = _base_of(self)
        if any(o is self or (base is not None and o is base) for o in others):
            # The op would save the very object it is about to rebase: its gradient would read
            # the new value. PyTorch refuses this at backward; refuse it here.
            raise GraphError(
                f"{name}: the tensor written in place (or the tensor it views) is also an "
                "operand, while recording a gradient\n  hint: use the out-of-place op "
                "(h = h * h), or pass a copy (h.mul_(h.clone()))")
        if base is not None:
            return _through_view(self, base, name, compute)
        _rebase(self, _computed(self, name, compute))
        return self
    with graph.no_grad():
        result = compute(self)
    _check_cast(name, result, self)
    _write(self, result._array)
    return self


def _computed(self, name, compute):
    """`compute` of self's current value, in self's dtype; self's old value is marked stale
    (its version bumped: nodes that saved it must refuse to use it)."""
    self._vc[0] += 1
    old = Tensor._wrap(self._array, self._device, self._rg, self._node, self._vc)
    result = compute(old)
    _check_cast(name, result, self)
    return result if result.dtype is self.dtype else shape.to_dtype(result, self.dtype)


def _rebase(self, result, vc=None):
    """Make the tensor object `self` hold `result` (its array and node); a retained .grad
    follows the object, as in PyTorch."""
    node = self._node
    self._array, self._node, self._rg = result._array, result._node, result._rg
    self._vc = result._vc if vc is None else vc
    if node is not None and node.retain_ref is not None and node.retain_ref() is self:
        self._node.retain_ref, node.retain_ref = node.retain_ref, None


# ---- in-place through a view, while recording: the base sees it, as in PyTorch ----------------
def _base_of(view):
    """The tensor whose storage `view` (made by a view op) still lies in, or None. A base
    rebased since (recorded in-place ops move it to new storage) no longer counts; nor does a
    read-only expanded view, which stays out of place (DESIGN section 4)."""
    base = getattr(view, "_base", None)
    if base is None or not getattr(view._array.flags, "writeable", True):
        return None
    xp = _backend_for(base._device).xp
    return base if xp.may_share_memory(view._array, base._array) else None


def _through_view(view, base, name, compute):
    """`view` <- compute(view), written into its base: the base becomes `base` with the view's
    elements replaced (index_put, so both get their gradients), and the view a view of that.
    PyTorch does the same with its CopySlices node. Other views of the base taken earlier keep
    the old storage, as after any recorded in-place op on a tensor (DESIGN section 4)."""
    if base._rg and base._node is None:
        raise GraphError(
            f"{name}: a view of a leaf tensor that requires grad is being used in an in-place "
            "operation\n  hint: wrap parameter updates in `with tg.no_grad():`, or clone the "
            "leaf first (y = x.clone(); y[:2].mul_(2))")
    if base._rg and not view._rg:
        raise GraphError(
            f"{name}: this view was made under no_grad from a tensor that requires grad, and is "
            "being modified in place with grad mode on: its base's gradient would miss the "
            "write (PyTorch refuses this too)\n  hint: make the view with grad mode on, or "
            "write through the base (base[idx] = value)")
    xp = _backend_for(base._device).xp
    old_array = view._array
    where = _positions(xp, old_array, base._array)
    if where is None:
        raise GraphError(
            f"{name}: an in-place op on a view of a tensor of shape {tuple(base.shape)} whose "
            "elements overlap in memory is not supported while recording a gradient\n  hint: "
            "clone the base first (base = base.clone())")
    from .indexing import getitem, index_put
    new_view = _computed(view, name, compute)
    index = Tensor._wrap(where, base._device)
    flat = index_put(shape.reshape(base, (-1,)), (index,), new_view)
    _rebase(base, shape.reshape(flat, base.shape))
    # The view's graph is the gather of its elements from the new base. Its array is the same
    # elements as a view of the new storage where they form one (so later writes through
    # either are seen by both), else the gathered copy.
    gathered = getitem(flat, index)
    _rebase(view, gathered, vc=base._vc)
    strided = _strided_view(xp, base._array, where)
    if strided is not None:
        view._array = strided
    return view


def _positions(xp, view_array, base_array):
    """The flat (C-order) indices into the base of the view's elements, in the view's shape;
    None where the base's elements overlap in memory (a zero stride). Works for any base
    layout: the base's logical indices are written into an image of its memory, and the image
    is read back through the view's strides."""
    item = base_array.itemsize
    steps = [st // item for st in base_array.strides]
    if any(st == 0 and n > 1 for st, n in zip(steps, base_array.shape)):
        return None
    low = sum((n - 1) * st for n, st in zip(base_array.shape, steps) if st < 0)
    high = sum((n - 1) * st for n, st in zip(base_array.shape, steps) if st > 0)
    image = xp.empty(high - low + 1, dtype=xp.int64)
    size = image.itemsize
    strided = xp.lib.stride_tricks.as_strided
    strided(image[-low:], base_array.shape, [st * size for st in steps])[...] = \
        xp.arange(base_array.size, dtype=xp.int64).reshape(base_array.shape)
    start = (_address(view_array) - _address(base_array)) // item - low
    return strided(image[start:], view_array.shape,
                   [st // item * size for st in view_array.strides]).copy()


def _strided_view(xp, new_base, where):
    """A view of the C-contiguous `new_base` holding the elements at flat indices `where`, or
    None when they do not form one (no constant stride per axis)."""
    if where.size == 0:
        return None
    first = int(where.reshape(-1)[0])
    steps = []
    for axis, n in enumerate(where.shape):
        corner = [0] * where.ndim
        corner[axis] = 1 if n > 1 else 0
        steps.append(int(where[tuple(corner)]) - first)
    strided = xp.lib.stride_tricks.as_strided
    size = 8  # int64 positions
    check = strided(xp.arange(new_base.size, dtype=xp.int64)[first:], where.shape,
                    [st * size for st in steps])
    if not bool((check == where).all()):
        return None
    item = new_base.itemsize
    return strided(new_base.reshape(-1)[first:], where.shape, [st * item for st in steps])


def _address(array):
    face = getattr(array, "__array_interface__", None) or array.__cuda_array_interface__
    return face["data"][0]


def _check_cast(name, result, self):
    if result.dtype.category > self.dtype.category:
        raise DTypeError(f"{name}: result type {result.dtype} can't be cast to the desired "
                         f"output type {self.dtype}\n  hint: convert the tensor first, e.g. "
                         "x = x.float()")


def _write(self, array, index=Ellipsis):
    a = self._array
    if not a.flags.writeable:
        raise GraphError("in-place write: this tensor is a read-only view (made by expand or "
                         "broadcast_to)\n  hint: .clone() it first")
    a[index] = array
    self._vc[0] += 1


def _method(name, fn):
    def method(self, *args, **kwargs):
        return _inplace(self, name, lambda x: fn(x, *args, **kwargs), args)
    method.__name__ = name
    return method


def zero_(self):
    return fill_(self, 0, name="zero_")


def fill_(self, value, *, name="fill_"):
    if isinstance(value, Tensor) and _records(self, (value,)):
        return _inplace(self, name, lambda x: value.expand(x.shape) + x * 0, (value,))
    if _records(self, ()):
        return _inplace(self, name, lambda x: x * 0 + value)
    _write(self, value._array if isinstance(value, Tensor) else value)
    return self


def copy_(self, src):
    """Copy `src` (broadcast, cast, moved across devices) into self."""
    if not isinstance(src, Tensor):
        raise TypeError(f"copy_: expected a Tensor, got {type(src).__name__}")
    if _records(self, (src,)):
        def compute(x):
            # `+ x * 0` keeps x in the graph (a zero gradient) as PyTorch's copy_ does.
            return src.to(x.device).to(x.dtype).expand(x.shape) + x * 0
        return _inplace(self, "copy_", compute, (src,))
    with graph.no_grad():
        s = src.to(self.device)
    _write(self, s._array.astype(self._array.dtype, copy=False))
    return self


def setitem(self, index, value):
    """`x[index] = value`: in place, or out of place and rebased where a gradient is recorded."""
    from .indexing import index_put, normalize_index
    idx = normalize_index(index, self)
    if _records(self, (value,)):
        return _inplace(self, "__setitem__", lambda x: index_put(x, idx, value), (value,))
    v = value
    if isinstance(v, Tensor):
        with graph.no_grad():
            v = v.to(self.device)
        v = v._array
    _write(self, v, idx)


def _iop(fn, name):
    def iop(self, other):
        return _inplace(self, name, lambda x: fn(x, other), (other,))
    iop.__name__ = name
    return iop


# ---- arithmetic straight into the array (no gradient recorded) -----------------------------
def _direct(self, ufunc, other, alpha):
    """`self op= other * alpha` with the ufunc's `out=`: no temporary, one pass (what an
    optimizer's update or `w -= lr * w.grad` needs). None where the general path must run:
    a recorded op, another device or dtype, a result that would not fit self's shape."""
    if not (self._array.dtype.kind == "f" and not _records(self, (other,))):
        return None
    if isinstance(other, Tensor):
        if other._device is not self._device or other._array.dtype != self._array.dtype:
            return None
        b = other._array
        if b.shape != self._array.shape and broadcast_shapes(
                b.shape, self._array.shape) != self._array.shape:
            return None
    elif isinstance(other, (int, float)) and not isinstance(other, bool):
        b = other
    else:
        return None
    a = self._array
    if not a.flags.writeable:
        return None
    if alpha != 1:
        b = b * alpha  # NumPy keeps b's dtype for a Python scalar
    getattr(_backend_for(self._device).xp, ufunc)(a, b, out=a)
    self._vc[0] += 1
    return self


def _arith(name, fn, ufunc):
    def method(self, other, *, alpha=1):
        done = _direct(self, ufunc, other, alpha)
        if done is not None:
            return done
        kw = {} if alpha == 1 else {"alpha": alpha}
        return _inplace(self, name, lambda x: fn(x, other, **kw), (other,))
    method.__name__ = name
    return method


def _arith_iop(name, fn, ufunc):
    def iop(self, other):
        done = _direct(self, ufunc, other, 1)
        return done if done is not None else _inplace(self, name, lambda x: fn(x, other),
                                                      (other,))
    iop.__name__ = name
    return iop


METHODS = {
    "add_": _arith("add_", binary.add, "add"),
    "sub_": _arith("sub_", binary.sub, "subtract"),
    "mul_": _method("mul_", binary.mul), "div_": _method("div_", binary.div),
    "pow_": _method("pow_", binary.pow), "clamp_": _method("clamp_", elementwise.clamp),
    "relu_": _method("relu_", elementwise.relu), "neg_": _method("neg_", elementwise.neg),
    "exp_": _method("exp_", elementwise.exp), "log_": _method("log_", elementwise.log),
    "sqrt_": _method("sqrt_", elementwise.sqrt), "abs_": _method("abs_", elementwise.abs),
    "sigmoid_": _method("sigmoid_", elementwise.sigmoid),
    "tanh_": _method("tanh_", elementwise.tanh),
    "clip_": _method("clip_", elementwise.clamp),
    "zero_": zero_, "fill_": fill_, "copy_": copy_, "__setitem__": setitem,
    "__iadd__": _arith_iop("__iadd__", binary.add, "add"),
    "__isub__": _arith_iop("__isub__", binary.sub, "subtract"),
    "__imul__": _arith_iop("__imul__", binary.mul, "multiply"),
    "__itruediv__": _arith_iop("__itruediv__", binary.div, "true_divide"),
    "__ipow__": _iop(binary.pow, "__ipow__"),
}
