"""backends/cupy_memory.py on the CPU, against a stand-in for the few CuPy names it uses.

The stand-in's pool counts live blocks as CuPy's MemoryPool does (sizes rounded to 512 bytes,
a block freed when its last reference goes), so the tracker's peak can be compared with the
true running maximum over random allocation patterns, and the capture bookkeeping (blocks
kept alive, the stream made current and restored, the cyclic GC paused) can be checked
without a GPU. The real thing runs in tests/test_cuda_api.py's GPU tests.
"""

import gc
import random
import sys
from types import SimpleNamespace

import pytest
from tensorgrad.backends.cupy_memory import GraphCapture, PoolTracker

import tensorgrad as tg


class _Mem:
    def __init__(self, size):
        self.size = size


class _Pointer:
    def __init__(self, pool, size, device_id):
        self.mem, self.device_id, self._pool = _Mem(size), device_id, pool
        pool.live[id(self)] = (device_id, size)

    def __del__(self):
        self._pool.live.pop(id(self), None)


class FakeCupy:
    """cupy.cuda's allocator, pool, device, stream and runtime, as far as cupy_memory uses them."""

    def __init__(self, devices=2):
        fake = self
        self.current_device, self.events = 0, []

        class MemoryPool:
            def __init__(self):
                self.live, self.used_calls, self.freed = {}, 0, []

            def malloc(self, size):
                return _Pointer(self, (size + 511) // 512 * 512, fake.current_device)

            def used_bytes(self):
                self.used_calls += 1
                return sum(s for d, s in self.live.values() if d == fake.current_device)

            def total_bytes(self):
                return self.used_bytes() + 4096

            def free_all_blocks(self):
                self.freed.append(fake.current_device)

        class Device:
            def __init__(self, index=None):
                self.id = fake.current_device if index is None else index

            def __enter__(self):
                self._previous, fake.current_device = fake.current_device, self.id

            def __exit__(self, *exc):
                fake.current_device = self._previous

        class Stream:
            def __init__(self, non_blocking=False):
                self.capturing = False
                fake.events.append(("stream", fake.current_device, non_blocking))

            def __enter__(self):
                fake.events.append("stream current")

            def __exit__(self, *exc):
                fake.events.append("stream restored")

            def begin_capture(self, mode):
                self.capturing = True
                fake.events.append(("begin", mode, gc.isenabled()))

            def end_capture(self):
                self.capturing = False
                fake.events.append("end")
                if fake.fail_end:
                    raise RuntimeError("cudaErrorStreamCaptureInvalidated")
                return SimpleNamespace(launch=lambda: fake.events.append(
                    ("launch", fake.current_device)))

        self.fail_end = False
        self.pool = MemoryPool()
        self.allocator = self.pool.malloc
        runtime = SimpleNamespace(
            getDevice=lambda: fake.current_device, getDeviceCount=lambda: devices,
            deviceSynchronize=lambda: fake.events.append("synchronize"),
            streamCaptureModeRelaxed=2)
        self.cuda = SimpleNamespace(
            MemoryPool=MemoryPool, Device=Device, Stream=Stream, runtime=runtime,
            get_allocator=lambda: fake.allocator,
            set_allocator=lambda a: setattr(fake, "allocator", a))

    def alloc(self, size):
        return self.allocator(size)  # what CuPy does for every new array


# ---- the peak -------------------------------------------------------------------------------
def test_the_tracker_wraps_the_pool_allocator():
    cp = FakeCupy()
    tracker = PoolTracker(cp)
    assert cp.allocator == tracker.malloc and tracker.pool is cp.pool


@pytest.mark.parametrize("seed", range(5))
def test_the_peak_is_the_true_running_maximum(seed):
    cp = FakeCupy()
    tracker = PoolTracker(cp)
    rng = random.Random(seed)
    live, true_peak = [], 0
    for _ in range(2000):
        if live and rng.random() < 0.45:
            live.pop(rng.randrange(len(live)))
        else:
            live.append(cp.alloc(rng.choice([100, 512, 4000, 70_000])))
        true_peak = max(true_peak, sum(p.mem.size for p in live))
    stats = tracker.stats(0)
    assert stats["peak_allocated_bytes"] == true_peak
    assert stats["allocated_bytes"] == sum(p.mem.size for p in live)
    assert stats["reserved_bytes"] == stats["allocated_bytes"] + 4096


def test_a_steady_loop_reads_the_pool_rarely():
    # A training loop allocates and frees the same volume each step: below the recorded
    # peak, allocations do not walk the pool's blocks.
    cp = FakeCupy()
    tracker = PoolTracker(cp)
    params = [cp.alloc(4096) for _ in range(8)]
    mallocs = 0
    for _ in range(200):
        step = [cp.alloc(2048) for _ in range(10)]
        mallocs += 10
        del step
    assert cp.pool.used_calls < mallocs / 4
    assert tracker.stats(0)["peak_allocated_bytes"] == 8 * 4096 + 10 * 2048
    del params


def test_reset_and_devices():
    cp = FakeCupy()
    tracker = PoolTracker(cp)
    big = cp.alloc(10_000)
    del big
    small = cp.alloc(512)
    assert tracker.stats(0)["peak_allocated_bytes"] == 10_240
    tracker.reset_peak(0)
    assert tracker.stats(0)["peak_allocated_bytes"] == 512
    with cp.cuda.Device(1):
        other = cp.alloc(1024)
    assert tracker.stats(1) == {"allocated_bytes": 1024, "peak_allocated_bytes": 1024,
                                "reserved_bytes": 1024 + 4096}
    assert tracker.stats(None)["allocated_bytes"] == 512  # None: the current device (0)
    tracker.empty_cache()
    assert cp.pool.freed == [0, 1]  # every device's cache
    del small, other


def test_a_replaced_allocator_is_reported():
    cp = FakeCupy()
    cp.allocator = lambda size: None  # what cupy.cuda.set_allocator(custom) leaves
    tracker = PoolTracker(cp)
    assert tracker.pool is None
    with pytest.raises(tg.DeviceError, match="not a cupy.cuda.MemoryPool"):
        tracker.stats(0)


# ---- capture --------------------------------------------------------------------------------
def test_a_capture_keeps_its_blocks_and_restores_the_stream():
    cp = FakeCupy()
    tracker = PoolTracker(cp)
    before = cp.alloc(512)
    capture = GraphCapture(cp, tracker, 1, "relaxed")
    assert not gc.isenabled()  # no cyclic collection (and its destructors) while capturing
    with cp.cuda.Device(1):
        tmp = cp.alloc(2048)  # an intermediate, dropped inside the capture
        out = cp.alloc(512)
    del tmp
    with pytest.raises(tg.DeviceError, match="capture is in progress"):
        tracker.empty_cache()
    graph = capture.end()
    assert gc.isenabled()
    assert cp.events[:4] == ["synchronize", ("stream", 1, True), "stream current",
                             ("begin", 2, False)]
    assert cp.events[4:] == ["end", "stream restored"]
    assert len(graph.kept) == 2 and tracker.captures == []
    with cp.cuda.Device(1):
        assert cp.pool.used_bytes() == 2048 + 512  # the intermediate is still reserved
    graph.replay()
    assert cp.events[-1] == ("launch", 1)
    del graph, capture, out
    with cp.cuda.Device(1):
        assert cp.pool.used_bytes() == 0  # dropping the graph gives its blocks back
    del before


def test_a_failed_capture_still_leaves_capture_mode():
    cp = FakeCupy()
    tracker = PoolTracker(cp)
    capture = GraphCapture(cp, tracker, 0, "global")
    cp.fail_end = True
    with pytest.raises(RuntimeError, match="Invalidated"):
        capture.end()
    assert cp.events[-2:] == ["end", "stream restored"]
    assert tracker.captures == [] and gc.isenabled()
    assert ("begin", 0, False) in cp.events  # "global" has no name here: CUDA's value 0


def test_the_backend_wires_the_kernels_and_the_tracker(monkeypatch):
    from tensorgrad.backends.cupy_backend import CupyBackend
    cp = FakeCupy()
    monkeypatch.setitem(sys.modules, "cupy", cp)  # what `import cupy` in _probe then finds
    backend = CupyBackend()
    assert backend.availability() == (True, "2 CUDA device(s)")
    assert backend.overrides is CupyBackend.kernel_table()
    assert cp.allocator == backend._tracker.malloc
    block = cp.alloc(1000)
    assert backend.memory_stats(0)["allocated_bytes"] == 1024
    backend.reset_peak_memory_stats(0)
    backend.empty_cache()
    graph = backend.end_graph_capture(backend.begin_graph_capture(0, "relaxed"))
    graph.replay()
    assert cp.events[-1] == ("launch", 0)
    del block
