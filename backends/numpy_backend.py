"""The "cpu" backend: NumPy arrays in host memory.

Imports numpy and tensorgrad's backend_api only.
"""

import numpy as np

from tensorgrad.backend_api import CAP_DLPACK


def _broadcast_to(xp, x, shape):
    """np.broadcast_to's view, built directly: ~0.4 us instead of ~2 us (it runs in every
    reduction's VJP). Falls back to NumPy where the buffer is not contiguous."""
    if x.ndim == 0:
        strides = (0,) * len(shape)  # a full reduction's gradient, the common case
    elif x.flags.c_contiguous:
        lead = len(shape) - x.ndim
        strides = [0] * lead + [0 if d == 1 and s != 1 else st
                                for d, s, st in zip(x.shape, shape[lead:], x.strides)]
    else:
        return np.broadcast_to(x, shape)
    out = np.ndarray(shape, x.dtype, x, 0, strides)
    out.setflags(write=False)  # as np.broadcast_to: writes would alias repeated elements
    return out


class NumpyBackend:
    name = "numpy"
    device_types = ("cpu",)
    capabilities = frozenset({CAP_DLPACK})
    overrides = {"broadcast_to": _broadcast_to}
    needs_device_context = False  # lets dispatch skip entering a context on the hot path

    def __init__(self):
        self._rng = np.random.default_rng()

    xp = np  # a plain attribute: dispatch reads it on every op

    def availability(self):
        return True, "NumPy is always usable"

    def device_context(self, index):
        from contextlib import nullcontext
        return nullcontext()

    def synchronize(self, index=None):
        pass

    def asarray(self, data, dtype, index):
        if hasattr(data, "get") and not isinstance(data, np.ndarray):  # a CuPy array
            data = data.get()
        return np.asarray(data, dtype=dtype)

    def to_numpy(self, array):
        return array

    def from_dlpack(self, obj, index):
        return np.from_dlpack(obj)

    def generator(self, index):
        return self._rng

    def manual_seed(self, seed):
        self._rng = np.random.default_rng(seed)
