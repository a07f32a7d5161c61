"""tg.cuda's memory statistics and CUDA graphs (PyTorch's names), through the registry.

On CI there is no GPU, so the plumbing is checked by serving the device type "cuda" with test
backends (tests/alt_backend.py's fake memory counter; a fake capturing backend below) and by
the errors a machine without a GPU gives. The GPU tests at the bottom run the real thing
(CuPy's pool, stream capture) and skip, with the reason, where no GPU is usable.
"""

import numpy as np
import pytest
from alt_backend import AltBackend

import tensorgrad as tg
import tensorgrad.nn.functional as F
from tensorgrad import backend_api
from tensorgrad.backend_api import CAP_CUDA_GRAPHS, CAP_DLPACK

CUDA_OK, CUDA_WHY = backend_api.availability("cuda")
needs_gpu = pytest.mark.skipif(not CUDA_OK, reason=f"cuda not usable: {CUDA_WHY}")
no_gpu_only = pytest.mark.skipif(CUDA_OK, reason="a GPU is usable here")

MEMORY_CALLS = [lambda: tg.cuda.memory_allocated(), lambda: tg.cuda.max_memory_allocated(),
                lambda: tg.cuda.memory_reserved(), lambda: tg.cuda.reset_peak_memory_stats(),
                lambda: tg.cuda.empty_cache(), lambda: tg.cuda.CUDAGraph()]


# ---- test backends serving "cuda" -------------------------------------------------------------
class FakeCuda(AltBackend):
    """The alt backend under the device type "cuda" (memory counter included)."""

    name = "fake_cuda"
    device_types = ("cuda",)


class _NoMemory(FakeCuda):
    name = "fake_cuda_plain"
    memory_stats = reset_peak_memory_stats = empty_cache = None


class _Recorded:
    def __init__(self, log):
        self.log = log

    def replay(self):
        self.log.append("replay")


class FakeCapturing(FakeCuda):
    """Declares CAP_CUDA_GRAPHS; its "capture" records the calls and runs the work eagerly."""

    name = "fake_cuda_graphs"
    capabilities = frozenset({CAP_DLPACK, CAP_CUDA_GRAPHS})

    def __init__(self):
        super().__init__()
        self.log = []
        self.fail_end = False

    def begin_graph_capture(self, index, mode):
        self.log.append(("begin", index, mode))
        return "handle"

    def end_graph_capture(self, handle):
        self.log.append(("end", handle))
        if self.fail_end:
            raise RuntimeError("cudaErrorStreamCaptureInvalidated")
        return _Recorded(self.log)


@pytest.fixture
def serve_cuda():
    """Serve "cuda" with a test backend for one test, then restore the real one."""
    original = backend_api.get_backend("cuda")
    names = []

    def serve(backend):
        backend_api.register_backend(backend, replace=True)
        names.append(backend.name)
        return backend
    yield serve
    for name in names:
        backend_api.unregister_backend(name)
    backend_api.register_backend(original, replace=True)


# ---- without a GPU --------------------------------------------------------------------------
@no_gpu_only
@pytest.mark.parametrize("call", MEMORY_CALLS, ids=["memory_allocated", "max_memory_allocated",
                                                    "memory_reserved", "reset_peak",
                                                    "empty_cache", "CUDAGraph"])
def test_without_a_gpu_each_call_says_why(call):
    with pytest.raises(tg.DeviceError) as info:
        call()
    msg = str(info.value)
    assert "device 'cuda' is not usable" in msg and CUDA_WHY.splitlines()[0] in msg
    with pytest.raises(tg.DeviceError, match="not usable"):
        tg.cuda.synchronize()  # the same error the rest of tg.cuda gives
    assert tg.cuda.is_current_stream_capturing() is False


# ---- memory, through a backend's optional members -------------------------------------------
def test_memory_functions_read_the_backend(serve_cuda):
    fake = serve_cuda(FakeCuda())
    fake.memory.update(allocated_bytes=1024, peak_allocated_bytes=4096, reserved_bytes=8192)
    assert tg.cuda.memory_allocated() == 1024
    assert tg.cuda.max_memory_allocated() == 4096
    assert tg.cuda.memory_reserved() == 8192
    tg.cuda.reset_peak_memory_stats()
    assert tg.cuda.max_memory_allocated() == 1024
    tg.cuda.empty_cache()
    assert tg.cuda.memory_reserved() == 1024
    assert ("empty_cache", None) in fake.memory_calls


@pytest.mark.parametrize("device,index", [(None, None), (0, 0), (2, 2), ("cuda", 0),
                                          ("cuda:1", 1), (tg.device("cuda:3"), 3)])
def test_memory_functions_take_a_device(serve_cuda, device, index):
    fake = serve_cuda(FakeCuda())
    tg.cuda.memory_allocated(device)
    tg.cuda.reset_peak_memory_stats(device)
    assert fake.memory_calls == [("memory_stats", index), ("reset_peak_memory_stats", index)]


def test_memory_functions_refuse_a_cpu_device(serve_cuda):
    serve_cuda(FakeCuda())
    with pytest.raises(tg.DeviceError, match="expected a cuda device, got cpu"):
        tg.cuda.memory_allocated("cpu")


def test_a_backend_without_memory_members_is_named(serve_cuda):
    serve_cuda(_NoMemory())
    for call, member in [(tg.cuda.memory_allocated, "memory_stats"),
                         (tg.cuda.reset_peak_memory_stats, "reset_peak_memory_stats"),
                         (tg.cuda.empty_cache, "empty_cache")]:
        with pytest.raises(tg.DeviceError) as info:
            call()
        assert "'fake_cuda_plain'" in str(info.value) and f"{member}()" in str(info.value)


def test_the_protocols_describe_the_optional_members():
    assert isinstance(FakeCuda(), backend_api.SupportsMemoryStats)
    assert isinstance(FakeCapturing(), backend_api.SupportsGraphCapture)
    assert not isinstance(AltBackend(), backend_api.SupportsGraphCapture)
    cupy = backend_api.registered_backends()["cupy"]
    assert isinstance(cupy, backend_api.SupportsMemoryStats)
    assert isinstance(cupy, backend_api.SupportsGraphCapture)
    assert CAP_CUDA_GRAPHS in cupy.capabilities


# ---- CUDA graphs: the plumbing ----------------------------------------------------------------
def test_a_backend_without_the_capability_cannot_capture(serve_cuda):
    serve_cuda(FakeCuda())
    with pytest.raises(tg.DeviceError) as info:
        tg.cuda.CUDAGraph()
    assert "'fake_cuda'" in str(info.value) and CAP_CUDA_GRAPHS in str(info.value)


def test_capture_and_replay_call_the_backend(serve_cuda):
    fake = serve_cuda(FakeCapturing())
    g = tg.cuda.CUDAGraph()
    assert repr(g) == "CUDAGraph(empty)"
    with tg.cuda.graph(g) as same:
        assert same is g and tg.cuda.is_current_stream_capturing()
        assert repr(g) == "CUDAGraph(capturing)"
    assert not tg.cuda.is_current_stream_capturing()
    assert fake.log == [("begin", 0, "relaxed"), ("end", "handle")]
    g.replay()
    g.replay()
    assert fake.log[2:] == ["replay", "replay"]
    with pytest.raises(tg.DeviceError, match="reset"):
        g.capture_begin()  # one capture per graph until reset()
    g.reset()
    with pytest.raises(tg.DeviceError, match="nothing captured"):
        g.replay()


def test_capture_arguments_are_checked(serve_cuda):
    serve_cuda(FakeCapturing())
    g = tg.cuda.CUDAGraph()
    with pytest.raises(ValueError, match="capture_error_mode"):
        g.capture_begin(capture_error_mode="strict")
    with pytest.raises(ValueError, match="pool"):
        g.capture_begin(pool=object())
    with pytest.raises(ValueError, match="stream"):
        tg.cuda.graph(g, stream=object())
    with pytest.raises(TypeError, match="CUDAGraph"):
        tg.cuda.graph("g")
    with pytest.raises(tg.DeviceError, match="no capture in progress"):
        g.capture_end()
    g.capture_begin(capture_error_mode="global")
    with pytest.raises(tg.DeviceError, match="in progress"):
        g.reset()
    g.capture_end()


def test_an_error_inside_the_capture_ends_it_and_propagates(serve_cuda):
    fake = serve_cuda(FakeCapturing())
    g = tg.cuda.CUDAGraph()
    with pytest.raises(ZeroDivisionError) as info:
        with tg.cuda.graph(g):
            raise ZeroDivisionError("inside")
    assert fake.log[-1] == ("end", "handle")  # the stream left capture mode
    assert not tg.cuda.is_current_stream_capturing()
    if hasattr(info.value, "__notes__"):
        assert "tg.cuda.graph" in info.value.__notes__[0]
    with pytest.raises(tg.DeviceError, match="nothing captured"):
        g.replay()  # an incomplete capture is dropped


def test_a_capture_failing_at_its_end_is_a_device_error(serve_cuda):
    fake = serve_cuda(FakeCapturing())
    fake.fail_end = True
    g = tg.cuda.CUDAGraph()
    with pytest.raises(tg.DeviceError, match="capture failed.*Invalidated") as info:
        with tg.cuda.graph(g):
            pass
    assert ".item()" in str(info.value)
    assert not tg.cuda.is_current_stream_capturing()


def test_cross_entropy_reads_nothing_on_the_host_inside_a_capture(serve_cuda, monkeypatch):
    serve_cuda(FakeCapturing())
    x = tg.randn(6, 4, device="cuda", requires_grad=True)
    y = tg.tensor([0, 3, -100, 1, 2, 3], device="cuda")
    eager = F.cross_entropy(x, y)

    def no_host_reads(self):
        raise AssertionError("a host read (.item()) inside a capture")
    monkeypatch.setattr(tg.Tensor, "item", no_host_reads)
    with tg.cuda.graph(tg.cuda.CUDAGraph()):
        captured = F.cross_entropy(x, y)
        captured.backward()
    np.testing.assert_allclose(captured.detach().cpu().numpy(), eager.detach().cpu().numpy(),
                               rtol=1e-6)


# ---- on the GPU ---------------------------------------------------------------------------------
@needs_gpu
def test_gpu_memory_statistics_follow_allocations():
    tg.cuda.synchronize()
    tg.cuda.reset_peak_memory_stats()
    before = tg.cuda.memory_allocated()
    x = tg.empty(1024, 1024, device="cuda")  # 4 MiB of float32
    assert tg.cuda.memory_allocated() - before >= 4 * 1024 * 1024
    peak = tg.cuda.max_memory_allocated()
    assert peak >= before + 4 * 1024 * 1024
    del x
    assert tg.cuda.memory_allocated() == before
    assert tg.cuda.max_memory_allocated() == peak  # the peak stays until reset
    tg.cuda.reset_peak_memory_stats()
    assert tg.cuda.max_memory_allocated() == before
    assert tg.cuda.memory_reserved() >= before
    tg.cuda.empty_cache()
    assert tg.cuda.memory_reserved() <= peak


@needs_gpu
def test_gpu_peak_sees_a_transient_intermediate():
    x = tg.randn(512, 512, device="cuda")
    tg.cuda.synchronize()
    tg.cuda.reset_peak_memory_stats()
    start = tg.cuda.memory_allocated()
    y = (x * 2 + 1).sum()  # two 1 MiB temporaries, freed by the end of the line
    assert tg.cuda.max_memory_allocated() >= start + 512 * 512 * 4
    del y


def _mlp(seed):
    tg.manual_seed(seed)
    model = tg.nn.Sequential(tg.nn.Linear(16, 32), tg.nn.GELU(), tg.nn.Linear(32, 32),
                             tg.nn.ReLU(), tg.nn.Linear(32, 4)).to("cuda")
    return model, tg.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)


def _batches(n):
    rng = np.random.default_rng(0)
    return [(rng.normal(size=(64, 16)).astype(np.float32), rng.integers(0, 4, 64))
            for _ in range(n)]


@needs_gpu
def test_gpu_captured_training_step_replays_like_eager_steps():
    n = 12
    batches = _batches(n + 1)
    model, opt = _mlp(0)
    for xb, yb in batches:  # eager: a warm-up step, then n steps
        opt.zero_grad(set_to_none=False)
        x, y = tg.tensor(xb, device="cuda"), tg.tensor(yb, device="cuda")
        F.cross_entropy(model(x), y).backward()
        opt.step()
    eager = [p.cpu().numpy() for p in model.parameters()]

    model, opt = _mlp(0)
    static_x = tg.zeros(64, 16, device="cuda")
    static_y = tg.zeros(64, dtype=tg.int64, device="cuda")

    def step():
        opt.zero_grad(set_to_none=False)
        loss = F.cross_entropy(model(static_x), static_y)
        loss.backward()
        opt.step()
        return loss

    static_x.copy_(tg.tensor(batches[0][0], device="cuda"))
    static_y.copy_(tg.tensor(batches[0][1], device="cuda"))
    step()  # the warm-up step, eagerly
    g = tg.cuda.CUDAGraph()
    with tg.cuda.graph(g):
        assert tg.cuda.is_current_stream_capturing()
        static_loss = step()  # recorded, not run
    for xb, yb in batches[1:]:
        static_x.copy_(tg.tensor(xb, device="cuda"))
        static_y.copy_(tg.tensor(yb, device="cuda"))
        g.replay()
    tg.cuda.synchronize()
    assert np.isfinite(static_loss.item())
    for p, want in zip(model.parameters(), eager):
        np.testing.assert_allclose(p.cpu().numpy(), want, rtol=1e-5, atol=1e-6)
    g.reset()


@needs_gpu
def test_gpu_host_read_inside_a_capture_fails_and_leaves_the_stream_usable():
    x = tg.randn(8, device="cuda")
    (x * 2).sum().item()  # warm-up
    g = tg.cuda.CUDAGraph()
    with pytest.raises(Exception) as info:
        with tg.cuda.graph(g):
            (x * 2).sum().item()
    if hasattr(info.value, "__notes__"):
        assert any("tg.cuda.graph" in n for n in info.value.__notes__)
    assert not tg.cuda.is_current_stream_capturing()
    assert (x * 2).sum().item() == pytest.approx(2 * x.sum().item(), rel=1e-5)  # eager again


def test_module_doctests():
    # On a GPU the docstring examples run for real (the capture example included).
    import doctest

    import tensorgrad.cuda
    result = doctest.testmod(tensorgrad.cuda)
    assert result.failed == 0 and result.attempted >= 4
