"""In-place methods (`add_`, `mul_`, `zero_`, ...), augmented assignment and `x[idx] = v`.

Following PyTorch (shared/DESIGN.md section 4):
- where no gradient is recorded, the new value is written into the array itself, so views
  see it, and the tensor's version counter is bumped;
- where a gradient is recorded, the new value is computed out of place and the tensor object
  is rebased onto it (it becomes a non-leaf whose node is that op); the old storage's version
  is bumped too, so a node that saved the old value refuses to use it;
- on a leaf that requires grad, in grad mode, they raise GraphError.
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
        # The object stops holding its old value: nodes that saved it must refuse to use it.
        self._vc[0] += 1
        old = Tensor._wrap(self._array, self._device, self._rg, self._node, self._vc)
        result = compute(old)
        _check_cast(name, result, self)
        if result.dtype is not self.dtype:
            result = shape.to_dtype(result, self.dtype)
        self._array, self._node, self._rg, self._vc = (
            result._array, result._node, result._rg, result._vc)
        return self
    with graph.no_grad():
        result = compute(self)
    _check_cast(name, result, self)
    _write(self, result._array)
    return self


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
    return fill_(self, 0)


def fill_(self, value):
    if isinstance(value, Tensor) and _records(self, (value,)):
        return _inplace(self, "fill_", lambda x: value.expand(x.shape) + x * 0, (value,))
    if _records(self, ()):
        return _inplace(self, "fill_", lambda x: x * 0 + value)
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
