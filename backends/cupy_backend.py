"""The "cuda" backend: CuPy arrays on NVIDIA GPUs.

CuPy is imported lazily, on first use, so `import tensorgrad` never needs it. When the
import or the device query fails, the reason is kept and reported by `availability()`:
CuPy not installed (with the extra to install), no CUDA device, or a driver/runtime error.
Every op runs inside `device_context(i)`, because CuPy's array module alone does not pin
the GPU an array is allocated on.

Once CuPy imports, the backend overrides ops with the fused kernels of cupy_kernels.py, and
wraps CuPy's allocator (cupy_memory.PoolTracker) for tg.cuda's memory statistics and for
CUDA graph capture: the optional members of backend_api.SupportsMemoryStats and
SupportsGraphCapture.

Imports tensorgrad's backend_api and errors only; cupy lazily.
"""

from tensorgrad.backend_api import CAP_CUDA_GRAPHS, CAP_DLPACK, CAP_FUSED_OPTIM


class CupyBackend:
    name = "cupy"
    device_types = ("cuda",)
    capabilities = frozenset({CAP_DLPACK, CAP_CUDA_GRAPHS, CAP_FUSED_OPTIM})
    overrides = {}
    needs_device_context = True

    def __init__(self):
        self._cupy = None
        self._status = None  # (ok, reason), computed once
        self._rngs = {}
        self._seed = None
        self._tracker = None  # cupy_memory.PoolTracker, once CuPy imports

    # -- lazy import and availability -------------------------------------------------
    def _import(self):
        if self._status is None:
            self._status = self._probe()
        return self._cupy

    def _probe(self):
        try:
            import cupy
        except ImportError as e:
            return False, (f"CuPy is not installed ({e}); "
                           "install the extra matching your CUDA: pip install -e .[cuda12] "
                           "or .[cuda13]")
        except Exception as e:  # noqa: BLE001 - a broken CUDA install raises anything
            return False, f"CuPy failed to import: {type(e).__name__}: {e}"
        try:
            n = cupy.cuda.runtime.getDeviceCount()
        except Exception as e:  # noqa: BLE001
            return False, f"the CUDA driver/runtime failed: {type(e).__name__}: {e}"
        if n == 0:
            return False, "CuPy is installed but no CUDA device is visible"
        self._cupy = cupy
        self.overrides = self.kernel_table()
        from .cupy_memory import PoolTracker
        self._tracker = PoolTracker(cupy)  # from the first use on, so the peak covers it all
        return True, f"{n} CUDA device(s)"

    @staticmethod
    def kernel_table():
        """The fused kernels (cupy_kernels.OVERRIDES). Imported here, not at the top: this
        module loads while tensorgrad itself is importing, before the ops exist."""
        from .cupy_kernels import OVERRIDES
        return OVERRIDES

    def availability(self):
        self._import()
        return self._status

    def device_count(self):
        return cupy_device_count(self)

    @property
    def xp(self):
        cp = self._import()
        if cp is None:
            from tensorgrad.errors import DeviceError
            raise DeviceError(f"device 'cuda' is not usable: {self._status[1]}")
        return cp

    # -- devices and transfers -------------------------------------------------------
    def device_context(self, index):
        return self.xp.cuda.Device(index or 0)

    def synchronize(self, index=None):
        with self.device_context(index):
            self.xp.cuda.Stream.null.synchronize()

    def asarray(self, data, dtype, index):
        with self.device_context(index):
            return self.xp.asarray(data, dtype=dtype)

    def to_numpy(self, array):
        return self.xp.asnumpy(array)

    def from_dlpack(self, obj, index):
        with self.device_context(index):
            return self.xp.from_dlpack(obj)

    # -- memory (backend_api.SupportsMemoryStats) --------------------------------------
    def _memory(self):
        self.xp  # noqa: B018 - raises the DeviceError saying why CuPy is unusable
        return self._tracker

    def memory_stats(self, index=None):
        return self._memory().stats(index)

    def reset_peak_memory_stats(self, index=None):
        self._memory().reset_peak(index)

    def empty_cache(self):
        self._memory().empty_cache()

    # -- CUDA graphs (backend_api.SupportsGraphCapture) ----------------------------------
    def begin_graph_capture(self, index, mode):
        from .cupy_memory import GraphCapture
        return GraphCapture(self.xp, self._memory(), index, mode)

    def end_graph_capture(self, handle):
        return handle.end()

    # -- random numbers ----------------------------------------------------------------
    def generator(self, index):
        index = index or 0
        rng = self._rngs.get(index)
        if rng is None:
            with self.device_context(index):
                seed = None if self._seed is None else self._seed + index
                rng = self._rngs[index] = self.xp.random.default_rng(seed)
        return rng

    def manual_seed(self, seed):
        self._seed = int(seed)
        self._rngs.clear()


def cupy_device_count(backend):
    ok, _ = backend.availability()
    return backend.xp.cuda.runtime.getDeviceCount() if ok else 0
