"""A second CPU-resident backend, registered the way a third party would (register_backend).

It serves the device type "alt". Its arrays are NumPy arrays, but tensorgrad treats "alt" as
a device of its own, so device-mixing, transfer and override logic run on CI without a GPU.
It overrides a few ops with forwards written differently from the generic ones, so the
override-parity check in the harness has something to compare. It also has a fake memory
counter (`memory`, set by the tests), the optional memory members a GPU backend provides, so
tests/test_cuda_api.py can serve "cuda" with it and check tg.cuda's memory functions on CI.
"""

import numpy as np

from tensorgrad.backend_api import CAP_DLPACK


def _relu_override(xp, x):
    out = x.copy()
    out[out < 0] = 0  # a different formulation from the generic xp.maximum(x, 0)
    return out


def _sigmoid_override(xp, x):
    return (0.5 * (1 + xp.tanh(0.5 * x))).astype(x.dtype, copy=False)


class AltBackend:
    name = "alt"
    device_types = ("alt",)
    capabilities = frozenset({CAP_DLPACK})
    overrides = {"relu": _relu_override, "sigmoid": _sigmoid_override}
    needs_device_context = True  # exercise the context path on CI

    def __init__(self):
        self._rng = np.random.default_rng()
        self.contexts_entered = 0
        self.memory = {"allocated_bytes": 0, "peak_allocated_bytes": 0, "reserved_bytes": 0}
        self.memory_calls = []  # (member, device index), in call order

    @property
    def xp(self):
        return np

    def availability(self):
        return True, "the test backend is always usable"

    def device_context(self, index):
        backend = self

        class _Ctx:
            def __enter__(self):
                backend.contexts_entered += 1

            def __exit__(self, *exc):
                return False
        return _Ctx()

    def synchronize(self, index=None):
        pass

    def asarray(self, data, dtype, index):
        return np.array(data, dtype=dtype)  # always a copy: "alt" memory is not host memory

    def to_numpy(self, array):
        return np.array(array)

    def from_dlpack(self, obj, index):
        return np.from_dlpack(obj)

    def generator(self, index):
        return self._rng

    def manual_seed(self, seed):
        self._rng = np.random.default_rng(seed + 1)

    # -- a fake memory counter: backend_api.SupportsMemoryStats --------------------------------
    def memory_stats(self, index=None):
        self.memory_calls.append(("memory_stats", index))
        return dict(self.memory)

    def reset_peak_memory_stats(self, index=None):
        self.memory_calls.append(("reset_peak_memory_stats", index))
        self.memory["peak_allocated_bytes"] = self.memory["allocated_bytes"]

    def empty_cache(self):
        self.memory_calls.append(("empty_cache", None))
        self.memory["reserved_bytes"] = self.memory["allocated_bytes"]
