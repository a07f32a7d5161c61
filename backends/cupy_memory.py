"""GPU memory for the "cuda" backend: the peak-tracking allocator and CUDA graph capture.

`PoolTracker` wraps CuPy's allocator (normally the default MemoryPool's `malloc`):
- for `tg.cuda.max_memory_allocated`: the pool reports the bytes in use now
  (`used_bytes()`), never its peak, so the wrapper records one;
- for CUDA graphs: every block handed out while a capture runs is kept alive with the graph.
  A captured graph replays at the addresses it was captured with; a block freed during the
  capture (an intermediate) and handed to someone else afterwards would be overwritten by
  every replay. Keeping them all, for as long as the graph lives, is PyTorch's private graph
  pool by other means (it costs the step's intermediates, not just their peak).

`GraphCapture` begins and ends a stream capture on a fresh non-blocking stream, made current
on the device in between, so every op tensorgrad runs there is recorded instead of executed.

Imports nothing at module level from CuPy: the backend passes in the module it imported.
"""

import gc

from tensorgrad.errors import DeviceError

# CUDA's cudaStreamCaptureMode values, should this CuPy not name them.
_MODES = {"global": ("streamCaptureModeGlobal", 0),
          "thread_local": ("streamCaptureModeThreadLocal", 1),
          "relaxed": ("streamCaptureModeRelaxed", 2)}


class PoolTracker:
    """CuPy's allocator, wrapped: the peak of the pool's used bytes, and capture retention.

    Why this is exact and cheap: the used bytes only rise at an allocation, so the peak is the
    largest reading taken right after one. `used_bytes()` walks every live block, so it is
    read only when this allocation could set a new peak: the last reading plus the bytes
    handed out since bounds the use from above (frees only lower it), and while that bound
    stays under the recorded peak an allocation costs a Python call and two additions.
    """

    def __init__(self, cupy):
        self._cupy = cupy
        self._inner = cupy.cuda.get_allocator()
        pool = getattr(self._inner, "__self__", None)
        self.pool = pool if isinstance(pool, cupy.cuda.MemoryPool) else None
        self._peak, self._base, self._since = {}, {}, {}
        self.captures = []  # one list per capture in progress, collecting its blocks
        try:
            cupy.cuda.set_allocator(self.malloc)
        except ValueError:  # inside cupy.cuda.using_allocator: left alone, no peak then
            self._inner = None

    def malloc(self, size):
        mem = self._inner(size)
        for kept in self.captures:
            kept.append(mem)
        if self.pool is not None:
            dev = mem.device_id
            since = self._since.get(dev, 0) + mem.mem.size
            if self._base.get(dev, 0) + since > self._peak.get(dev, 0):
                used = self.pool.used_bytes()  # of the current device: this block's
                self._base[dev], since = used, 0
                if used > self._peak.get(dev, 0):
                    self._peak[dev] = used
            self._since[dev] = since
        return mem

    def _need_pool(self, what):
        if self.pool is None:
            raise DeviceError(f"{what}: CuPy's allocator is not a cupy.cuda.MemoryPool (it was "
                              "replaced with cupy.cuda.set_allocator), so tensorgrad cannot "
                              "count its memory\n  hint: keep CuPy's default memory pool")
        return self.pool

    def _read(self, index, what):
        pool = self._need_pool(what)
        cuda = self._cupy.cuda
        with cuda.Device(index):  # None: the current device, as in PyTorch
            return cuda.runtime.getDevice(), pool.used_bytes(), pool.total_bytes()

    def stats(self, index):
        dev, used, reserved = self._read(index, "memory_stats")
        return {"allocated_bytes": used,
                "peak_allocated_bytes": max(self._peak.get(dev, 0), used),
                "reserved_bytes": reserved}

    def reset_peak(self, index):
        dev, used, _ = self._read(index, "reset_peak_memory_stats")
        self._peak[dev] = self._base[dev] = used
        self._since[dev] = 0

    def empty_cache(self):
        pool = self._need_pool("empty_cache")
        if self.captures:
            raise DeviceError("empty_cache: a CUDA graph capture is in progress; freeing cached "
                              "blocks now would free memory the graph is being recorded with\n"
                              "  hint: call it before or after `with tg.cuda.graph(...)`")
        cuda = self._cupy.cuda
        for i in range(cuda.runtime.getDeviceCount()):
            with cuda.Device(i):
                pool.free_all_blocks()


class GraphCapture:
    """One stream capture in progress on one device (`SupportsGraphCapture`'s handle)."""

    def __init__(self, cupy, tracker, index, mode):
        name, value = _MODES[mode]
        cuda = self._cuda = cupy.cuda
        self.device = cuda.Device(index)
        self.kept = []
        self._tracker = tracker
        with self.device:
            # Work queued before the capture finishes first: the captured stream does not wait
            # for the legacy stream, and the graph may read what that work writes.
            cuda.runtime.deviceSynchronize()
            self.stream = cuda.Stream(non_blocking=True)
            self.stream.__enter__()  # current on this device until end()
        tracker.captures.append(self.kept)
        # A cyclic collection inside the capture could run a destructor that calls CUDA (a
        # cudaFree, an event destroyed), which a capturing stream does not allow.
        self._gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            with self.device:
                self.stream.begin_capture(getattr(cuda.runtime, name, value))
        except BaseException:
            self._leave()
            raise

    def _leave(self):
        with self.device:
            self.stream.__exit__(None, None, None)
        self._tracker.captures[:] = [k for k in self._tracker.captures if k is not self.kept]
        if self._gc_was_enabled:
            gc.enable()

    def end(self):
        """End the capture (always: the stream must leave capture mode) -> CapturedGraph."""
        try:
            with self.device:
                graph = self.stream.end_capture()
        finally:
            self._leave()
        return CapturedGraph(graph, self)


class CapturedGraph:
    """An instantiated graph, the stream it was captured on, and the blocks it addresses."""

    def __init__(self, graph, capture):
        self.graph = graph
        self.device = capture.device
        self.stream = capture.stream  # kept alive: its arena still holds the capture's blocks
        self.kept = capture.kept

    def replay(self):
        """Launch the whole graph on the device's current stream (asynchronous, as PyTorch)."""
        with self.device:
            self.graph.launch()

    def __repr__(self):
        return f"CapturedGraph(device={self.device.id}, blocks={len(self.kept)})"
