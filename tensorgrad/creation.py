"""Factories: tensor, zeros/ones/full/empty, arange/linspace/eye, rand/randn/randint/randperm
(from the device's generator, or a given `tg.Generator`), the `*_like` forms,
from_numpy/from_dlpack/frombuffer, and manual_seed.

Host data is turned into a NumPy array first, then handed to the target device's backend.
"""

import numpy as np

from . import backend_api
from .devices import as_device
from .dtypes import _FLOAT, as_dtype, from_numpy_dtype, get_default_dtype, int64
from .errors import DTypeError
from .tensor import Tensor


def _backend(device):
    return backend_api.usable_backend(device.type)


def _host(data, dtype):
    """`data` (nested lists, numbers, NumPy arrays, Tensors) as a NumPy array."""
    if isinstance(data, Tensor):
        arr = data._backend.to_numpy(data._array)
    elif isinstance(data, np.ndarray) or np.isscalar(data) and isinstance(data, np.generic):
        arr = np.asarray(data)
    elif hasattr(data, "__cuda_array_interface__") or hasattr(data, "__dlpack_device__") \
            and not isinstance(data, (list, tuple)):
        return data  # a device array: the backend takes it as it is
    else:
        arr = _from_python(data, dtype)
    if dtype is not None:
        arr = arr.astype(dtype.np, copy=False)
    return arr


def _from_python(data, dtype=None):
    if isinstance(data, (list, tuple)) and any(isinstance(x, Tensor) for x in _flat(data)):
        data = _tensors_to_lists(data)
    arr = np.asarray(data)
    if arr.dtype.kind == "f":
        if dtype is None:  # an explicit dtype must not be rounded through the default first
            arr = arr.astype(get_default_dtype().np)  # Python floats get the default dtype
    elif arr.dtype.kind in "iu":
        arr = arr.astype(np.int64)
    elif arr.dtype.kind not in "b":
        raise DTypeError(f"tensor: could not infer a dtype for {type(data).__name__} data "
                         f"(NumPy made it {arr.dtype})\n  hint: pass numbers, nested lists of "
                         "numbers, or a NumPy array")
    return arr


def _flat(data):
    for x in data:
        if isinstance(x, (list, tuple)):
            yield from _flat(x)
        else:
            yield x


def _tensors_to_lists(data):
    if isinstance(data, Tensor):
        return data.tolist()
    if isinstance(data, (list, tuple)):
        return [_tensors_to_lists(x) for x in data]
    return data


def tensor(data, *, dtype=None, device=None, requires_grad=False):
    """A new tensor holding a copy of `data`.

    A NumPy array keeps its dtype; Python floats get the default dtype (float32), ints int64.

    >>> import tensorgrad as tg
    >>> tg.tensor([[1, 2], [3, 4]]).dtype, tg.tensor(2.5).dtype
    (tensorgrad.int64, tensorgrad.float32)
    """
    dtype = None if dtype is None else as_dtype(dtype)
    dev = as_device(device if device is not None or not isinstance(data, Tensor)
                    else data.device)
    host = _host(data, dtype)
    arr = _backend(dev).asarray(host, None, dev.index)
    source = data._array if isinstance(data, Tensor) else data
    if isinstance(arr, np.ndarray) and isinstance(source, np.ndarray) \
            and np.may_share_memory(arr, source):
        arr = arr.copy()  # tensor() always copies, as torch.tensor does
    from_numpy_dtype(arr.dtype)  # refuse unsupported dtypes (complex, strings) here
    t = Tensor._wrap(arr, dev)
    if requires_grad:
        t.requires_grad_(True)
    return t


as_tensor = tensor


def from_numpy(ndarray):
    """A CPU tensor sharing memory with `ndarray` (as torch.from_numpy)."""
    if not isinstance(ndarray, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(ndarray).__name__}")
    from_numpy_dtype(ndarray.dtype)
    return Tensor._wrap(ndarray, as_device("cpu"))


def frombuffer(buffer, *, dtype, count=-1, offset=0, requires_grad=False):
    """A 1-D CPU tensor over the bytes of `buffer` (as torch.frombuffer), sharing its memory.

    `count` elements (-1: all) are read from byte `offset` on, in the machine's byte order.
    A read-only buffer (`bytes`) gives a read-only tensor; pass a `bytearray` to write.

    >>> import tensorgrad as tg
    >>> tg.frombuffer(bytearray([1, 2, 255]), dtype=tg.uint8).tolist()
    [1, 2, 255]
    """
    dtype = as_dtype(dtype)
    arr = np.frombuffer(buffer, dtype=dtype.np, count=count, offset=offset)
    t = Tensor._wrap(arr, as_device("cpu"))
    if requires_grad:
        t.requires_grad_(True)
    return t


def from_dlpack(ext_tensor):
    """Zero-copy import of any object with `__dlpack__` (NumPy, CuPy, PyTorch arrays)."""
    kind, index = ext_tensor.__dlpack_device__()
    dev = as_device("cpu" if int(kind) == 1 else f"cuda:{index}")
    arr = _backend(dev).from_dlpack(ext_tensor, dev.index)
    from_numpy_dtype(arr.dtype)
    return Tensor._wrap(arr, dev)


def _sizes(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    return tuple(int(s) for s in size)


def _make(fill, size, dtype, device, requires_grad, default=None):
    dtype = as_dtype(dtype) if dtype is not None else (default or get_default_dtype())
    dev = as_device(device)
    backend = _backend(dev)
    ctx = backend_api.device_context(backend, dev.index)
    with ctx:
        arr = fill(backend.xp, dtype.np)
    t = Tensor._wrap(arr, dev)
    if requires_grad:
        t.requires_grad_(True)
    return t


def zeros(*size, dtype=None, device=None, requires_grad=False):
    size = _sizes(size)
    return _make(lambda xp, dt: xp.zeros(size, dt), size, dtype, device, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False):
    size = _sizes(size)
    return _make(lambda xp, dt: xp.ones(size, dt), size, dtype, device, requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False):
    size = _sizes(size)
    return _make(lambda xp, dt: xp.empty(size, dt), size, dtype, device, requires_grad)


def full(size, fill_value, *, dtype=None, device=None, requires_grad=False):
    size = _sizes((size,))
    if dtype is None:
        dtype = (get_default_dtype() if isinstance(fill_value, float) else
                 "bool" if isinstance(fill_value, bool) else int64)
    return _make(lambda xp, dt: xp.full(size, fill_value, dt), size, dtype, device,
                 requires_grad)


def eye(n, m=None, *, dtype=None, device=None, requires_grad=False):
    return _make(lambda xp, dt: xp.eye(n, m, dtype=dt), None, dtype, device, requires_grad)


def arange(start, end=None, step=1, *, dtype=None, device=None, requires_grad=False):
    """Values from start (default 0) up to, not including, end; int64 unless a float is given."""
    if end is None:
        start, end = 0, start
    if dtype is None and all(isinstance(v, int) for v in (start, end, step)):
        dtype = int64
    return _make(lambda xp, dt: xp.arange(start, end, step, dtype=dt), None, dtype, device,
                 requires_grad)


def linspace(start, end, steps, *, dtype=None, device=None, requires_grad=False):
    return _make(lambda xp, dt: xp.linspace(start, end, steps, dtype=dt), None, dtype, device,
                 requires_grad)


# ---- random -------------------------------------------------------------------------------
def _random(draw, size, dtype, device, requires_grad, default=None, generator=None, op=None):
    size = _sizes(size)
    dtype = as_dtype(dtype) if dtype is not None else (default or get_default_dtype())
    dev = as_device(device)
    backend = _backend(dev)
    with backend_api.device_context(backend, dev.index):
        gen = (backend.generator(dev.index) if generator is None
               else generator._native_for(dev, op))  # a tg.Generator (tensorgrad.random)
        arr = draw(gen, size, dtype.np)
    t = Tensor._wrap(arr, dev)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _float_draw(method):
    def draw(gen, size, dt):
        # Generators draw float32/float64 directly; float16 goes through float32.
        work = dt if dt.itemsize >= 4 else np.dtype(np.float32)
        return getattr(gen, method)(size, dtype=work).astype(dt, copy=False)
    return draw


def rand(*size, generator=None, dtype=None, device=None, requires_grad=False):
    """Uniform samples on [0, 1), from `generator` (a tg.Generator on the tensor's device) or
    else the device's generator (seeded by tg.manual_seed)."""
    _check_float(dtype, "rand")
    return _random(_float_draw("random"), size, dtype, device, requires_grad,
                   generator=generator, op="rand")


def randn(*size, generator=None, dtype=None, device=None, requires_grad=False):
    """Standard normal samples, from `generator` or else the device's generator."""
    _check_float(dtype, "randn")
    return _random(_float_draw("standard_normal"), size, dtype, device, requires_grad,
                   generator=generator, op="randn")


def randint(low, high=None, size=None, *, generator=None, dtype=None, device=None,
            requires_grad=False):
    if size is None and isinstance(high, (tuple, list)):
        high, size = None, high  # randint(high, size), as PyTorch
    if high is None:
        low, high = 0, low
    if size is None:
        raise TypeError("randint(): missing the 'size' argument, e.g. randint(0, 10, (3,))")
    return _random(lambda gen, s, dt: gen.integers(low, high, s).astype(dt, copy=False),
                   (size,), dtype, device, requires_grad, default=int64, generator=generator,
                   op="randint")


def randperm(n, *, generator=None, dtype=None, device=None, requires_grad=False):
    return _random(lambda gen, s, dt: gen.permutation(n).astype(dt, copy=False), (n,), dtype,
                   device, requires_grad, default=int64, generator=generator, op="randperm")


def _check_float(dtype, op):
    if dtype is not None and as_dtype(dtype).category != _FLOAT:
        raise DTypeError(f"{op}: expects a floating dtype, got {as_dtype(dtype)}")


def manual_seed(seed):
    """Seed the generators of every backend (CPU and each GPU)."""
    backend_api.manual_seed(seed)


# ---- *_like -----------------------------------------------------------------------------
def _like(factory):
    def like(input, *, dtype=None, device=None, requires_grad=False):
        return factory(input.shape, dtype=dtype or input.dtype, device=device or input.device,
                       requires_grad=requires_grad)
    like.__name__ = factory.__name__ + "_like"
    return like


zeros_like, ones_like, empty_like, rand_like, randn_like = (
    _like(f) for f in (zeros, ones, empty, rand, randn))


def full_like(input, fill_value, *, dtype=None, device=None, requires_grad=False):
    return full(input.shape, fill_value, dtype=dtype or input.dtype,
                device=device or input.device, requires_grad=requires_grad)


def randint_like(input, low, high=None, *, dtype=None, device=None):
    return randint(low, high, input.shape, dtype=dtype or input.dtype,
                   device=device or input.device)


def _new(factory):
    def new(self, *size, dtype=None, device=None, requires_grad=False):
        return factory(*size, dtype=dtype or self.dtype, device=device or self.device,
                       requires_grad=requires_grad)
    return new


METHODS = {
    "new_zeros": _new(zeros), "new_ones": _new(ones), "new_empty": _new(empty),
    "new_full": lambda self, size, fill_value, dtype=None, device=None, requires_grad=False:
    full(size, fill_value, dtype=dtype or self.dtype, device=device or self.device,
         requires_grad=requires_grad),
    "new_tensor": lambda self, data, dtype=None, device=None, requires_grad=False:
    tensor(data, dtype=dtype or self.dtype, device=device or self.device,
           requires_grad=requires_grad),
}
