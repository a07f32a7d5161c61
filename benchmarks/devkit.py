"""The devices a benchmark runs on: arrays, tensors, synchronization and peak memory per device.

A `BenchDevice` wraps one tensorgrad device ("cpu", "cuda", "cuda:1", or any registered
device type such as the tests' "alt"):

- `xp`: the array namespace of its backend (NumPy on the CPU, CuPy on CUDA). The hand-written
  baselines (`baselines.py`, `baselines_nn.py`, `optim_cases.py`) take it as `xp=`, so the
  "by hand" column is NumPy on the CPU and CuPy on the GPU;
- `array(a)` / `tensor(lib, a)`: a host float32 array on the device, as an `xp` array or as a
  tensorgrad / PyTorch tensor (on the CPU, no copy: the three implementations share inputs);
- `torch_device`: where PyTorch runs the same case, or None with `torch_missing` saying why
  (PyTorch not installed, a CPU-only build, or a device type PyTorch does not have);
- `synchronize()`: waits for queued GPU work (tensorgrad's backend and PyTorch), so that a
  timed region covers the work and not only its launch;
- `peak_memory(impl, name)`: peak bytes allocated during one call, tracemalloc on host memory
  (PyTorch's CPU allocator is invisible to it: None), CuPy's memory pool and
  `torch.cuda.max_memory_allocated` on CUDA.

`open_device(name)` raises `DeviceError` (with the backend's reason) when the device is not
usable; `report.py` turns that into "skipped: <reason>".
"""

import gc
import tracemalloc

import numpy as np

import tensorgrad as tg
from tensorgrad import backend_api

try:
    import torch as TORCH
except ImportError:  # PyTorch is never a dependency: its columns read "n/a"
    TORCH = None

TORCH_MISSING = "PyTorch not installed"


class BenchDevice:
    """One device of a benchmark run; see the module docstring."""

    def __init__(self, name, use_torch=True):
        self.name = name
        self.type, _, index = self.name.partition(":")
        self.index = int(index) if index else None
        self.backend = backend_api.usable_backend(self.type)  # DeviceError with the reason
        self.xp = self.backend.xp
        self.tg_device = tg.device(self.name)
        self.host = self.xp is np           # host memory: NumPy arrays, tracemalloc sees them
        self.torch_device, self.torch_missing = _torch_device(self, use_torch)

    def __repr__(self):
        return f"BenchDevice({self.name!r})"

    @property
    def hand_label(self):
        """Who writes the baseline here: 'NumPy' or 'CuPy' (the xp module's name)."""
        mod = getattr(self.xp, "__name__", "xp").split(".")[0]
        return {"numpy": "NumPy", "cupy": "CuPy"}.get(mod, mod)

    # ---- data -------------------------------------------------------------------------------
    def array(self, a):
        """A host array on this device as an `xp` array (the same object on the CPU)."""
        if self.type == "cpu":
            return a
        return self.backend.asarray(a, a.dtype, self.index)

    def tensor(self, lib, a):
        """A host array as a tensorgrad (`lib is tg`) or PyTorch tensor on this device."""
        if lib is tg:
            t = tg.from_numpy(a)
            return t if self.type == "cpu" else t.to(self.tg_device)
        t = lib.from_numpy(a)
        return t if self.torch_device == "cpu" else t.to(self.torch_device)

    def module(self, lib, model):
        """Move a tensorgrad or PyTorch module here (in place; returns it)."""
        dev = self.tg_device if lib is tg else self.torch_device
        if str(dev) != "cpu":
            model.to(dev)
        return model

    # ---- timing and memory ----------------------------------------------------------------
    def synchronize(self):
        if self.type == "cpu":
            return
        self.backend.synchronize(self.index)
        if TORCH is not None and self.torch_device is not None and self.type == "cuda":
            TORCH.cuda.synchronize(self.torch_device)

    def peak_memory(self, impl, name):
        """Peak bytes allocated during one `impl.step()`, from a clean start; None if this
        device cannot see that implementation's allocator."""
        if self.host:
            return None if name == "torch" else impl.peak_memory()
        if self.type != "cuda":
            return None
        impl.reset()
        gc.collect()
        self.synchronize()
        if name == "torch":
            TORCH.cuda.reset_peak_memory_stats(self.torch_device)
            before = TORCH.cuda.memory_allocated(self.torch_device)
            out = impl.step()
            self.synchronize()
            peak = TORCH.cuda.max_memory_allocated(self.torch_device) - before
        else:
            # CuPy's pool keeps freed blocks and grows only when none fits: emptied first,
            # the bytes it holds after one call are that call's peak (rounded to blocks).
            pool = self.xp.get_default_memory_pool()
            pool.free_all_blocks()
            before = pool.total_bytes()
            out = impl.step()
            self.synchronize()
            peak = pool.total_bytes() - before
        del out
        impl.reset()
        return peak

    def describe(self):
        """Name of the hardware behind this device (the GPU's name on CUDA)."""
        if self.type == "cuda":
            try:
                props = self.xp.cuda.runtime.getDeviceProperties(self.index or 0)
                name = props["name"]
                return name.decode() if isinstance(name, bytes) else str(name)
            except Exception as exc:  # noqa: BLE001 - informational only
                return f"CUDA device (name unavailable: {type(exc).__name__})"
        return self.type

    def versions(self):
        mod = getattr(self.xp, "__name__", "")
        return {"xp": mod, "xp_version": getattr(self.xp, "__version__", None)}


def _torch_device(dev, use_torch):
    if TORCH is None or not use_torch:
        return None, TORCH_MISSING if TORCH is None else "PyTorch left out (--no-torch)"
    if dev.type == "cpu":
        return "cpu", None
    if dev.type == "cuda":
        if not TORCH.cuda.is_available():
            return None, f"PyTorch {TORCH.__version__} has no usable CUDA"
        return dev.name if dev.index is not None else "cuda", None
    return None, f"PyTorch has no {dev.type!r} device"


_OPEN = {}


def open_device(name="cpu", use_torch=True):
    """The `BenchDevice` for `name` (cached); DeviceError when it is not usable."""
    key = (name, use_torch)
    if key not in _OPEN:
        _OPEN[key] = BenchDevice(name, use_torch)
    return _OPEN[key]


def cpu():
    return open_device("cpu")


def tracemalloc_peak(step, reset):
    """Peak bytes traced by tracemalloc during one `step()`, from a clean start."""
    reset()
    gc.collect()
    tracemalloc.start()
    try:
        out = step()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    del out
    reset()
    return peak
