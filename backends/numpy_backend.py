"""The "cpu" backend: NumPy arrays in host memory.

Imports numpy and tensorgrad's backend_api only.
"""

import numpy as np

from tensorgrad.backend_api import CAP_DLPACK


class NumpyBackend:
    name = "numpy"
    device_types = ("cpu",)
    capabilities = frozenset({CAP_DLPACK})
    overrides = {}
    needs_device_context = False  # lets dispatch skip entering a context on the hot path

    def __init__(self):
        self._rng = np.random.default_rng()

    @property
    def xp(self):
        return np

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
